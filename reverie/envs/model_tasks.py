"""Continuous-control tasks for model-based agents, and the known reward each planner uses.

PETS ([9] Chua et al. 2018) plans with a learned dynamics model but the task's true reward, a
function of the action and the predicted next state. `MODEL_TASKS` maps a gymnasium id to that
reward (torch, batched), an optional termination test on the next state, and the features the
dynamics model reads from an observation.

- `reverie/CartpoleSwingup-v0` (`reverie.envs`): the paper's continuous cart-pole swing-up.
- `reverie/PilcoCartpole-v0` (`reverie.envs`): PILCO's cart-pole swing-up (dt 0.1 s, 40 steps),
  reward 1 - its saturating cost of the pole tip's distance to upright.
- `Reacher-v5`: reward -|fingertip - target| - |a|^2, read from the next observation's last two
  entries (the fingertip-to-target vector, whose height component is always 0).
- `InvertedPendulum-v5`: reward 1 while |pole angle| <= 0.2, and the episode ends past it.
- `Pendulum-v1`: reward -(theta^2 + 0.1 theta_dot^2 + 0.001 a^2) of the state before the step, with
  theta = atan2(sin, cos) read from the observation (cos theta, sin theta, theta_dot).
- `HalfCheetah-v5`: reward = forward speed - 0.1 |a|^2. The observation holds no x position, so the
  speed (x' - x) / dt is taken as the mean of the x velocities (obs[8]) before and after the step
  (trapezoid rule): on uniform random actions it is off by 0.14 per step on average (the reward's
  std is 0.65), and sums over 10 steps correlate with the true ones at 0.994.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from reverie.envs.cartpole_swingup import swingup_model_input, swingup_reward
from reverie.envs.pilco_cartpole import pilco_cartpole_model_input, pilco_cartpole_reward

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (obs (..., D), actions (..., A), next_obs (..., D)) -> (...)


@dataclass(frozen=True)
class ModelTask:
    reward_fn: RewardFn
    termination_fn: Callable[[Tensor], Tensor] | None = None  # next_obs (..., D) -> (...) bool
    model_input: Callable[[Tensor], Tensor] = lambda observations: observations  # obs (..., D) -> (..., F)


def reacher_reward(observations: Tensor, actions: Tensor, next_observations: Tensor) -> Tensor:
    return -next_observations[..., 8:10].norm(dim=-1) - (actions**2).sum(-1)


def pendulum_fallen(next_observations: Tensor) -> Tensor:
    return ~(next_observations.isfinite().all(-1) & (next_observations[..., 1].abs() <= 0.2))


def pendulum_reward(observations: Tensor, actions: Tensor, next_observations: Tensor) -> Tensor:
    return (~pendulum_fallen(next_observations)).to(next_observations.dtype)


def half_cheetah_reward(observations: Tensor, actions: Tensor, next_observations: Tensor) -> Tensor:
    forward_speed = (observations[..., 8] + next_observations[..., 8]) / 2
    return forward_speed - 0.1 * (actions**2).sum(-1)


def pendulum_swing_up_reward(observations: Tensor, actions: Tensor, next_observations: Tensor) -> Tensor:
    angle = torch.atan2(observations[..., 1], observations[..., 0])
    return -(angle**2 + 0.1 * observations[..., 2] ** 2 + 0.001 * (actions.clamp(-2.0, 2.0) ** 2).sum(-1))


MODEL_TASKS: dict[str, ModelTask] = {
    "reverie/CartpoleSwingup-v0": ModelTask(swingup_reward, model_input=swingup_model_input),
    "reverie/PilcoCartpole-v0": ModelTask(pilco_cartpole_reward, model_input=pilco_cartpole_model_input),
    "Reacher-v5": ModelTask(reacher_reward),
    "InvertedPendulum-v5": ModelTask(pendulum_reward, termination_fn=pendulum_fallen),
    "Pendulum-v1": ModelTask(pendulum_swing_up_reward),
    "HalfCheetah-v5": ModelTask(half_cheetah_reward),
}


def model_task(env_id: str) -> ModelTask:
    if env_id not in MODEL_TASKS:
        raise KeyError(f"no known reward for env {env_id!r}; model-based planners know: {', '.join(sorted(MODEL_TASKS))}")
    return MODEL_TASKS[env_id]

