"""The embedding of a noise level: sinusoidal features of a scalar, then a two-layer SiLU MLP, as
[16] DIAMOND embeds c_noise (its FourierFeatures, then Linear-SiLU-Linear) and DiT (Peebles & Xie
2023) its timestep (TimestepEmbedder).

A level l becomes [cos(w_1 l), ..., cos(w_k l), sin(w_1 l), ..., sin(w_k l)], k = features / 2, with
angular frequencies w_i either
- "random": 2 pi z_i, z_i ~ N(0, 1) drawn once and saved with the model (DIAMOND's random Fourier
  features, for O(1) levels such as EDM's c_noise = ln(s) / 4), or
- "geometric": max_period^(-(i - 1) / k) (DiT's, the transformer's position code, for integer
  timesteps in [0, T)).
DIAMOND adds its actions' embedding to these features before the MLP; `context` is that sum's other
term.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FREQUENCIES = ("random", "geometric")


class NoiseLevelEmbedding(nn.Module):
    def __init__(self, dim: int, features: int | None = None, frequencies: str = "random", max_period: float = 10_000.0):
        """dim: the output width (DIAMOND's cond_channels, DiT's hidden size); features: the sinusoids'
        count, even (default dim; DiT uses 256); max_period: the geometric frequencies' longest period."""
        super().__init__()
        features = features or dim
        if features % 2:
            raise ValueError(f"NoiseLevelEmbedding: features must be even (a cos and a sin per frequency), got {features}")
        if frequencies == "random":
            angular = 2 * math.pi * torch.randn(features // 2)
        elif frequencies == "geometric":
            angular = torch.exp(-math.log(max_period) * torch.arange(features // 2) / (features // 2))
        else:
            raise ValueError(f"NoiseLevelEmbedding: frequencies must be one of {FREQUENCIES}, got {frequencies!r}")
        self.register_buffer("frequencies", angular)  # (features / 2,) radians per unit level
        self.fc1 = nn.Linear(features, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, levels: Tensor, context: Tensor | None = None) -> Tensor:
        """levels (...,), context (..., features) or None -> (..., dim)."""
        # in float32 at least: large timesteps times high frequencies lose their phase in half precision
        dtype = torch.promote_types(self.frequencies.dtype, torch.float32)
        angles = levels[..., None].to(dtype) * self.frequencies.to(dtype)  # (..., features / 2)
        embedded = torch.cat([angles.cos(), angles.sin()], dim=-1).to(self.fc1.weight.dtype)
        if context is not None:
            embedded = embedded + context
        return self.fc2(F.silu(self.fc1(embedded)))
