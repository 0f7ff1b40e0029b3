"""The one kind of space the continuous-control agents take: a flat Box."""

from __future__ import annotations

import gymnasium as gym


def flat_box(space: gym.Space, agent: str, what: str) -> gym.spaces.Box:
    """`space` itself, or a TypeError naming the `agent` and which space (`what`) is not a flat Box."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"{agent} needs a flat Box {what} space, got {space}")
    return space
