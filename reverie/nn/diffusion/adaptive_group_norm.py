"""Adaptive group normalisation, [16] DIAMOND's AdaGroupNorm: a GroupNorm without its own affine
parameters, whose per-channel scale and shift come from a conditioning vector (the noise level's
and actions' embedding) through one Linear:

    y = (1 + scale(c)) GroupNorm(x) + shift(c),    [scale(c), shift(c)] = W c + b

With DIAMOND's constants: a group per 32 channels (at least one), eps 1e-5, and the Linear's
default initialisation, so a zero condition gives (1 + b_scale) GroupNorm(x) + b_shift.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from reverie.nn.diffusion.broadcast import expand_like


class AdaGroupNorm(nn.Module):
    def __init__(self, channels: int, condition_dim: int, group_size: int = 32, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.groups = max(1, channels // group_size)
        self.eps = eps
        self.linear = nn.Linear(condition_dim, 2 * channels)

    def forward(self, features: Tensor, condition: Tensor) -> Tensor:
        """features (B, C, H, W) (or any (B, C, ...)), condition (B, D) -> (B, C, H, W)."""
        if features.shape[1] != self.channels:
            raise ValueError(f"AdaGroupNorm over {self.channels} channels got features of shape {tuple(features.shape)}")
        normalized = F.group_norm(features, self.groups, eps=self.eps)
        scale, shift = rearrange(self.linear(condition), "b (two c) -> two b c", two=2)
        return (1 + expand_like(scale, features)) * normalized + expand_like(shift, features)
