"""The actor-critic that [14] IRIS (Micheli et al. 2023, Sec. 2.3 and appendix) and [16] DIAMOND
(Alonso et al. 2024, Sec. 3.4 and appendix) train entirely in imagination, and the loss they
train it with.

The network reads frames: a convolutional encoder (a 3x3 convolution, then per level a residual
block and a 2x2 max-pool), an LSTM cell over the flattened features, and two linear heads, the
policy's logits and the value, both starting at zero (a uniform policy and a zero value), as in
both papers.

Imagination (`imagine`): B rollouts start from real windows of K frames. The LSTM is burned in on
the first K - 1 frames (no gradient) and the world model starts from the window, then for t = 0 .. H-1 the actor samples a_t ~ pi(. | x_t),
the world model gives x_{t+1}, r_t and d_t, and the critic gives V(x_t); V(x_H) bootstraps the
last step. A rollout whose episode ends at step t takes no part in the loss after t (a deviation:
DIAMOND restarts it from a new real window).

The loss (`actor_critic_loss`), with G_t the lambda-returns (`reverie.agents.lambda_returns`) of
the sign-clipped rewards:

    L = E_t[ -log pi(a_t | x_t) sg(G_t - V(x_t))  +  w_V (V(x_t) - sg(G_t))^2  -  w_H H(pi(. | x_t)) ]

REINFORCE with the value as baseline, as both papers train it (DIAMOND: gamma 0.985, lambda 0.95,
w_V 1, w_H 0.001, H = 15; IRIS: gamma 0.995, lambda 0.95, w_H 0.001, H = 20).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor, nn

from reverie.agents.lambda_returns import lambda_returns

GROUP_SIZE = 32  # channels per GroupNorm group (at least one group)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // GROUP_SIZE), channels)


class ResidualBlock(nn.Module):
    """x -> proj(x) + conv(SiLU(GN(conv(SiLU(GN(x))))))."""

    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.proj = nn.Conv2d(fan_in, fan_out, 1) if fan_in != fan_out else nn.Identity()
        self.body = nn.Sequential(
            group_norm(fan_in), nn.SiLU(), nn.Conv2d(fan_in, fan_out, 3, padding=1),
            group_norm(fan_out), nn.SiLU(), nn.Conv2d(fan_out, fan_out, 3, padding=1),
        )  # fmt: skip

    def forward(self, features: Tensor) -> Tensor:
        return self.proj(features) + self.body(features)


class ActorCritic(nn.Module):
    """pi(a | x_{<=t}) and V(x_{<=t}) over frames (B, 3, S, S) in [0, 1]; see the module docstring."""

    def __init__(self, frame_size: int, actions: int, channels: list[int], lstm: int):
        super().__init__()
        if frame_size % 2 ** len(channels):
            raise ValueError(f"actor-critic: frames of {frame_size} px must divide by {2 ** len(channels)}, the pooling of {len(channels)} channel levels")
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, padding=1)]
        for fan_in, fan_out in zip([channels[0], *channels[:-1]], channels):
            layers += [ResidualBlock(fan_in, fan_out), nn.MaxPool2d(2)]
        self.encoder = nn.Sequential(*layers, nn.SiLU(), nn.Flatten())
        self.lstm = nn.LSTMCell(channels[-1] * (frame_size // 2 ** len(channels)) ** 2, lstm)
        self.policy = nn.Linear(lstm, actions)
        self.value = nn.Linear(lstm, 1)
        for head in (self.policy, self.value):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def initial_state(self, batch: int) -> tuple[Tensor, Tensor]:
        zeros = self.value.weight.new_zeros(batch, self.lstm.hidden_size)
        return zeros, zeros.clone()

    def forward(self, frames: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """frames (B, 3, S, S) in [0, 1], LSTM state -> logits (B, A), values (B,), the next state."""
        hidden, cell = self.lstm(self.encoder(frames * 2 - 1), state)
        return self.policy(hidden), self.value(hidden)[:, 0], (hidden, cell)

    @torch.no_grad()
    def burn_in(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """The LSTM state after reading frames (B, T, 3, S, S) from a fresh start."""
        state = self.initial_state(frames.shape[0])
        for t in range(frames.shape[1]):
            _, _, state = self(frames[:, t], state)
        return state


class ImaginedWorld(Protocol):
    """What a world model offers imagination: B worlds started from real context, stepped together."""

    def reset(self, frames: Tensor, actions: Tensor) -> Tensor:
        """Start from frames (B, K, 3, S, S) in [0, 1] and the K - 1 actions between them (B, K - 1);
        the frame the actor sees first, (B, 3, S, S) (the last one, as the world model holds it)."""

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """actions (B,) at the last frame -> next frames (B, 3, S, S), rewards (B,), ends (B,) bool."""


@dataclass
class Imagined:
    """H imagined steps of B rollouts, each (B, H), with the gradients of the actor-critic."""

    log_probs: Tensor  # log pi(a_t | x_t)
    entropies: Tensor  # H(pi(. | x_t))
    values: Tensor  # V(x_t)
    next_values: Tensor  # V(x_{t+1}), no gradient
    rewards: Tensor
    ends: Tensor  # float, 1 where the episode ended at step t
    alive: Tensor  # float, 1 where no earlier step ended the episode


def imagine(
    actor_critic: ActorCritic, world: ImaginedWorld, frames: Tensor, actions: Tensor, horizon: int, view: Callable[[Tensor], Tensor] | None = None,
) -> Imagined:
    """Roll the actor out for `horizon` steps in `world` from real windows: frames (B, K, 3, S, S)
    in [0, 1] and actions (B, K - 1) between them. The burn-in frames pass through `view` (B, T,
    3, S, S) -> the same first: IRIS's actor reads frames as its tokenizer reconstructs them."""
    burn_in = frames[:, :-1]
    state = actor_critic.burn_in(burn_in if view is None else view(burn_in))
    frame = world.reset(frames, actions)
    rows: dict[str, list[Tensor]] = {name: [] for name in ("log_probs", "entropies", "values", "rewards", "ends")}
    for _ in range(horizon):
        logits, value, state = actor_critic(frame, state)
        distribution = torch.distributions.Categorical(logits=logits)
        action = distribution.sample()
        frame, reward, end = world.step(action)
        for name, row in zip(rows, (distribution.log_prob(action), distribution.entropy(), value, reward, end)):
            rows[name].append(row)
    with torch.no_grad():
        _, bootstrap, _ = actor_critic(frame, state)
    stacked = {name: torch.stack(row, dim=1) for name, row in rows.items()}
    ends = stacked["ends"].float()
    alive = torch.cat([torch.ones_like(ends[:, :1]), (1 - ends[:, :-1]).cumprod(dim=1)], dim=1)
    next_values = torch.cat([stacked["values"][:, 1:].detach(), bootstrap[:, None]], dim=1)
    return Imagined(stacked["log_probs"], stacked["entropies"], stacked["values"], next_values, stacked["rewards"].float(), ends, alive)


def actor_critic_loss(imagined: Imagined, gamma: float, lambda_: float, value_weight: float, entropy_weight: float) -> dict[str, Tensor]:
    """The loss of the module docstring, averaged over the steps of live rollouts; with its terms."""
    returns = lambda_returns(torch.sign(imagined.rewards), imagined.ends, imagined.next_values, gamma, lambda_)
    weights = imagined.alive / imagined.alive.sum()
    advantages = (returns - imagined.values).detach()
    terms = {
        "policy": -(imagined.log_probs * advantages * weights).sum(),
        "value": value_weight * ((imagined.values - returns) ** 2 * weights).sum(),
        "entropy": -entropy_weight * (imagined.entropies * weights).sum(),
    }
    return terms | {"loss": terms["policy"] + terms["value"] + terms["entropy"], "return": (returns * weights).sum().detach()}
