"""The one interface of reverie's generative world models: autoregressive over tokens ([14] IRIS,
[25] Cosmos), pixel diffusion ([16] DIAMOND, [23] GameNGen), latent diffusion ([24] Oasis, [19]
Genie 2) and Genie's dynamics ([18]). The learned gymnasium env, `reverie play`, rollout evaluation
and the imagination agents use only this, so a new model works with all of them.

A rollout is started from real context and then stepped one action at a time:

    model.start(context_frames, context_actions, generator)   # frames 0 .. K-1, actions 0 .. K-2
    step = model.step(actions_k)                               # frame K, reward K-1, termination K-1
    step = model.step(actions_k_plus_1)                        # frame K + 1, ...

The time convention is the recorded episodes' (`reverie.pipelines.record`): frame t is seen before
action t, and action t leads to frame t + 1 with reward t. So K context frames come with the K - 1
actions between them, and the action of `step` is taken at the last frame the model has, real or
generated. Everything is batched over B worlds; frames are (B, 3, H, W) floats in [0, 1]; actions
are (B, *action_shape) as the model's training data held them (int64 codes for discrete spaces).

Sampling draws only from the `generator` given to `start` (a CPU or device `torch.Generator`), so
the same context, actions and seed give the same rollout.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass
class WorldStep:
    frame: torch.Tensor  # (B, 3, H, W) in [0, 1]: the frame the action led to
    reward: torch.Tensor | None = None  # (B,) float, from a reward head; None without one
    terminated: torch.Tensor | None = None  # (B,) bool, from a termination head; None without one


class ContextError(ValueError):
    """Context that a world model cannot start from: names the mismatch (shapes, lengths, action space)."""


class WorldModel(ABC):
    """What every generative world model implements; see the module docstring for the convention."""

    max_context: int  # the most frames `start` takes (and that the model attends to when stepping)
    predicts_rewards: bool = False  # True where `step` gives the reward (and termination) of the model's own heads

    @abstractmethod
    def start(self, context_frames: torch.Tensor, context_actions: torch.Tensor | None, generator: torch.Generator | None = None) -> None:
        """Begin B rollouts from context_frames (B, K, 3, H, W) in [0, 1], 1 <= K <= max_context, and
        the K - 1 actions between them, (B, K - 1, *action_shape) (None or empty for K = 1, and for
        models trained without actions). ContextError names what does not fit."""

    @abstractmethod
    def step(self, action: torch.Tensor | None) -> WorldStep:
        """Take `action` (B, *action_shape) at the last frame in every world; the next frame and what
        the heads say. None only for models trained without actions."""


def check_context(context_frames: torch.Tensor, context_actions: torch.Tensor | None, max_context: int, frame_shape: tuple[int, ...]) -> int:
    """K, after checking context_frames is (B, K, *frame_shape) with 1 <= K <= max_context and the
    actions cover the K - 1 transitions of the same B worlds; ContextError naming the mismatch."""
    if context_frames.ndim != 2 + len(frame_shape) or tuple(context_frames.shape[2:]) != tuple(frame_shape):
        raise ContextError(f"context frames of shape {tuple(context_frames.shape)}: expected (B, K, {', '.join(map(str, frame_shape))})")
    batch, frames = context_frames.shape[:2]
    if not 1 <= frames <= max_context:
        raise ContextError(f"context of {frames} frames: this model takes 1 to {max_context}")
    if context_actions is not None and context_actions.numel() > 0:
        if tuple(context_actions.shape[:2]) != (batch, frames - 1):
            raise ContextError(f"context actions of shape {tuple(context_actions.shape)}: expected ({batch}, {frames - 1}, ...) for {frames} frames")
    return frames


def rollout(model: WorldModel, context_frames: torch.Tensor, context_actions: torch.Tensor | None, actions: torch.Tensor | None,
            steps: int, generator: torch.Generator | None = None) -> list[WorldStep]:  # fmt: skip
    """Start from the context and take actions[:, i] (B, steps, *action_shape; None without actions)
    for i < steps: the `steps` WorldSteps in order."""
    model.start(context_frames, context_actions, generator)
    return [model.step(None if actions is None else actions[:, index]) for index in range(steps)]
