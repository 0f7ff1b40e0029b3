"""Context-noise augmentation of [23] GameNGen (Valevski et al. 2024, "Diffusion Models Are
Real-Time Game Engines", Sec. 3.2.1): against the drift of autoregressive sampling, where a model
that only ever saw real context frames meets its own imperfect ones, the context frames are
corrupted in training by Gaussian noise of a random level, and the model is told that level.

    training:   level ~ U[0, max_level] per sample,   context <- context + level eps,  eps ~ N(0, I)
    bucket = min(floor(level / max_level * buckets), buckets - 1),   embedding = E[bucket]
    inference:  level = inference_level, fixed

GameNGen's values are max_level 0.7 and 10 buckets, with one learned embedding per bucket; here
the embedding is added into the conditioning vector of the denoiser (as DIAMOND adds its action
embedding, [16]). Where this differs from GameNGen: it noises pixels in [-1, 1] with std `level`
(GameNGen noises Stable Diffusion latents), and the inference level, 0.1 by default, is reverie's
choice, to be picked by rollout evaluation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ContextNoiseError(ValueError):
    """Context-noise settings that do not make sense; names the field."""


class ContextNoise(nn.Module):
    """Draws and embeds context noise levels; one embedding (dim wide) per bucket."""

    def __init__(self, dim: int, max_level: float = 0.7, buckets: int = 10, inference_level: float = 0.1):
        super().__init__()
        if max_level <= 0:
            raise ContextNoiseError(f"context_noise_max {max_level}: must be above 0")
        if buckets < 1:
            raise ContextNoiseError(f"context_noise_buckets {buckets}: must be at least 1")
        if not 0 <= inference_level <= max_level:
            raise ContextNoiseError(f"context_noise_inference {inference_level}: must lie in [0, context_noise_max = {max_level}]")
        self.max_level, self.buckets, self.inference_level = max_level, buckets, inference_level
        self.embedding = nn.Embedding(buckets, dim)

    def bucket(self, levels: Tensor) -> Tensor:
        """(B,) levels in [0, max_level] -> (B,) int64 buckets in [0, buckets)."""
        return (levels / self.max_level * self.buckets).floor().long().clamp(0, self.buckets - 1)

    def noised(self, context: Tensor, levels: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """context (B, K, C, H, W), levels (B,) -> (context + level eps, buckets (B,))."""
        noise = torch.randn(context.shape, generator=generator, device=context.device, dtype=context.dtype)
        return context + levels.view(-1, *[1] * (context.ndim - 1)) * noise, self.bucket(levels)

    def training_noise(self, context: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Noise each sample's context at its own level drawn from U[0, max_level]."""
        levels = self.max_level * torch.rand(context.shape[0], generator=generator, device=context.device, dtype=context.dtype)
        return self.noised(context, levels, generator)

    def inference_noise(self, context: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Noise every sample's context at the fixed inference level."""
        levels = torch.full((context.shape[0],), self.inference_level, device=context.device, dtype=context.dtype)
        return self.noised(context, levels, generator)

    def forward(self, buckets: Tensor) -> Tensor:
        """(B,) buckets -> (B, dim) embeddings."""
        return self.embedding(buckets)
