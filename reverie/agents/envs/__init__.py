"""Continuous-control tasks for model-based agents, and the known reward each planner uses.

PETS ([9] Chua et al. 2018) plans with a learned dynamics model but the task's true reward, a
function of the action and the predicted next state. `MODEL_TASKS` maps a gymnasium id to that
reward (torch, batched), an optional termination test on the next state, and the features the
dynamics model reads from an observation.

- `reverie/CartpoleSwingup-v0` (registered here): the paper's continuous cart-pole swing-up.
- `Reacher-v5`: reward -|fingertip - target| - |a|^2, read from the next observation's last two
  entries (the fingertip-to-target vector, whose height component is always 0).
- `InvertedPendulum-v5`: reward 1 while |pole angle| <= 0.2, and the episode ends past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import torch
from torch import Tensor

from reverie.agents.envs.cartpole_swingup import swingup_model_input, swingup_reward

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


MODEL_TASKS: dict[str, ModelTask] = {
    "reverie/CartpoleSwingup-v0": ModelTask(swingup_reward, model_input=swingup_model_input),
    "Reacher-v5": ModelTask(reacher_reward),
    "InvertedPendulum-v5": ModelTask(pendulum_reward, termination_fn=pendulum_fallen),
}


def model_task(env_id: str) -> ModelTask:
    if env_id not in MODEL_TASKS:
        raise KeyError(f"no known reward for env {env_id!r}; model-based planners know: {', '.join(sorted(MODEL_TASKS))}")
    return MODEL_TASKS[env_id]


if "reverie/CartpoleSwingup-v0" not in gym.registry:
    gym.register(id="reverie/CartpoleSwingup-v0", entry_point="reverie.agents.envs.cartpole_swingup:CartpoleSwingupEnv", max_episode_steps=200)
