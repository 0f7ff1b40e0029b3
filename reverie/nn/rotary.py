"""Rotary position embeddings (RoPE): queries and keys rotated by angles that grow with a token's
position, so that the attention score q.k of two tokens depends only on the offset between them.

A `Rotation` is the (cos, sin) of those angles for a set of tokens, computed once per forward pass
and applied by every attention layer with `rotate`. `Rotary3D` is the 3D RoPE of V-JEPA 2 ([26]
Assran et al. 2025): each head's dimensions are split into three equal groups, rotated by the
token's time, row and column index.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

Rotation = tuple[torch.Tensor, torch.Tensor]  # cos, sin: (B, 1, K, rotated_dims / 2)


def rotate(heads: torch.Tensor, rotation: Rotation) -> torch.Tensor:
    """Rotate consecutive pairs (x_2i, x_2i+1) of heads (B, heads, K, head_dim) by the angles of
    `rotation`; dimensions past 2 * (rotation's width) pass unchanged."""
    cos, sin = rotation
    rotated_dims = 2 * cos.shape[-1]
    turned, passed = heads[..., :rotated_dims], heads[..., rotated_dims:]
    even, odd = turned[..., 0::2], turned[..., 1::2]
    turned = rearrange(torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1), "... pairs two -> ... (pairs two)")
    return torch.cat([turned, passed], dim=-1)


class Rotary3D(nn.Module):
    """3D RoPE: head dims [0, 3a) rotate in pairs by time, row and column (a each); the rest pass."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.axis_dim = 2 * ((head_dim // 3) // 2)
        if self.axis_dim == 0:
            raise ValueError(f"3D RoPE needs a head dimension of at least 6, not {head_dim}")
        exponents = torch.arange(self.axis_dim // 2, dtype=torch.float32) / (self.axis_dim // 2)
        self.register_buffer("frequencies", base**-exponents, persistent=False)

    def rotation(self, coordinates: torch.Tensor) -> Rotation:
        """(B, K, 3) token coordinates (time, row, column) -> the (cos, sin) every attention layer applies."""
        angles = coordinates[..., None] * self.frequencies  # (B, K, 3, a/2)
        angles = rearrange(angles, "b k coordinate f -> b 1 k (coordinate f)")
        return angles.cos(), angles.sin()
