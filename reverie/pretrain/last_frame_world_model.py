"""The "copy the last frame" world model: the trivial baseline that every generative world model is
reported beside in rollout evaluation (`reverie.pretrain.rollout_evaluation`).

It predicts that nothing changes: after any action the next frame is the last frame it has, so an
open-loop rollout from K context frames repeats frame K - 1, and one teacher-forced step from real
frame t predicts frame t itself for frame t + 1. A learned model's next-frame PSNR is worth
reporting only where it beats this one; autoregressive world models are measured against
ground-truth frames per step this way ([23] GameNGen, Sec. 5.1; [16] DIAMOND). It has no reward
or termination heads (its WorldSteps carry None there), no parameters and nothing to train, so it
has no `training_losses`: its model folder holds its config and an empty state dict. It follows
`reverie.nn.world_model`'s interface and time convention; actions are taken and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.nn.world_model import ContextError, WorldModel, WorldStep, check_context


@dataclass
class LastFrameWorldModelConfig:
    height: int = 64  # of the frames it is started from
    width: int = 64
    max_context: int = 1  # it only ever looks at the last frame; more context is taken and dropped


@MODELS.register("last_frame_world_model")
class LastFrameWorldModel(nn.Module, WorldModel):
    registry_name = "last_frame_world_model"
    config_class = LastFrameWorldModelConfig

    def __init__(self, config: LastFrameWorldModelConfig):
        super().__init__()
        if min(config.height, config.width, config.max_context) < 1:
            raise ValueError(f"last_frame_world_model: height {config.height}, width {config.width}, max_context {config.max_context}: each must be at least 1")
        self.config = config
        self.max_context = config.max_context
        self.last_frame: torch.Tensor | None = None  # (B, 3, H, W): rollout state, not a weight

    def start(self, context_frames: torch.Tensor, context_actions: torch.Tensor | None, generator: torch.Generator | None = None) -> None:
        """Begin B rollouts from context_frames (B, K, 3, H, W); only frame K - 1 is kept."""
        check_context(context_frames, context_actions, self.max_context, (3, self.config.height, self.config.width))
        self.last_frame = context_frames[:, -1].clone()

    def step(self, action: torch.Tensor | None) -> WorldStep:
        """The last frame again, whatever `action` (B, *action_shape) is; no reward or termination."""
        if self.last_frame is None:
            raise RuntimeError("last_frame_world_model: step before start; start from context frames first")
        worlds = self.last_frame.shape[0]
        if action is not None and (action.ndim == 0 or action.shape[0] != worlds):
            raise ContextError(f"action of shape {tuple(action.shape)}: expected ({worlds}, ...) for {worlds} worlds")
        return WorldStep(frame=self.last_frame.clone())
