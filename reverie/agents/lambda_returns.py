"""TD(lambda) returns of an imagined trajectory, the critic's target and the actor's advantage in
the agents that learn behaviour inside a world model: [11] Dreamer (Hafner et al. 2020, eq. 6),
[14] IRIS (Micheli et al. 2023, Sec. 2.3) and [16] DIAMOND (Alonso et al. 2024, Sec. 3.4).

For steps t = 0 .. H-1 with reward r_t, episode end d_t and the value V(s_{t+1}) of the state
each step leads to,

    G_{H-1} = r_{H-1} + gamma (1 - d_{H-1}) V(s_H)
    G_t     = r_t + gamma (1 - d_t) [(1 - lambda) V(s_{t+1}) + lambda G_{t+1}]

so lambda = 0 gives one-step TD targets, lambda = 1 the discounted return bootstrapped at the
horizon, and an episode that ends at step t stops both the bootstrap and the later returns.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_returns(rewards: Tensor, ends: Tensor, next_values: Tensor, gamma: float, lambda_: float) -> Tensor:
    """rewards, ends (0 or 1) and next_values V(s_{t+1}), each (B, H) -> G (B, H)."""
    if not (rewards.shape == ends.shape == next_values.shape) or rewards.ndim != 2:
        raise ValueError(f"rewards {tuple(rewards.shape)}, ends {tuple(ends.shape)} and next values {tuple(next_values.shape)}: give three (B, H) tensors")
    continues = gamma * (1.0 - ends.to(rewards.dtype))
    returns = torch.empty_like(rewards)
    following = next_values[:, -1]
    for t in reversed(range(rewards.shape[1])):
        following = rewards[:, t] + continues[:, t] * ((1 - lambda_) * next_values[:, t] + lambda_ * following)
        returns[:, t] = following
    return returns
