"""The one kind of space the continuous-control agents take, a flat Box, and how a checkpoint
records it.

Not from a paper: these are gymnasium's `Box` spaces, limited to one axis because every agent here
reads a state vector."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def flat_box(space: gym.Space, agent: str, what: str) -> gym.spaces.Box:
    """`space` itself, or a TypeError naming the `agent` and which space (`what`) is not a flat Box."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"{agent} needs a flat Box {what} space, got {space}")
    return space


def box_fields(observation_dim: int, low, high) -> dict:
    """What a checkpoint records of an agent's spaces: the observation width and the action bounds."""
    return {"observation_dim": int(observation_dim), "low": [float(value) for value in low], "high": [float(value) for value in high]}


def boxes_from_fields(fields: dict) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """The (observation, action) spaces `box_fields` recorded."""
    observation_space = gym.spaces.Box(-np.inf, np.inf, (fields["observation_dim"],), np.float64)
    action_space = gym.spaces.Box(np.array(fields["low"], np.float32), np.array(fields["high"], np.float32))
    return observation_space, action_space
