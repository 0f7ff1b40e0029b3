"""The ST-transformer of Genie ([18] Bruce et al. 2024, Sec. 2, "ST-transformer" and Fig. 4): a
transformer over a video's (T, h, w) grid of tokens whose attention is factorised into space and
time, so that its cost grows linearly with the number of frames.

Each of its L blocks is, pre-norm,

    tokens = tokens + SpatialAttention(LN(tokens))    # within each frame, over its h x w tokens
    tokens = tokens + TemporalAttention(LN(tokens))   # at each grid position, over its T frames, causal
    tokens = tokens + MLP(LN(tokens))                 # one MLP per block, after both attentions

Temporal attention is causal: a token of frame t attends to the tokens of its position in frames
<= t only (`reverie.nn.attention_masks.block_causal_mask` with one token per frame), so the output
at frame t depends on frames 0 .. t alone. Genie keeps one feed-forward layer per block, after both
attentions, rather than one after each.

The attentions are the shared `reverie.nn.transformer.Attention`, the MLP the shared
`reverie.nn.mlp.mlp` (one GELU hidden layer). Genie does not state its position encoding; here it is
V-JEPA 2's 3D RoPE (`reverie.nn.rotary.Rotary3D`) of each token's (time, row, column). Spatial
attention rotates by (0, row, column) and temporal attention by (time, 0, 0): the time angle is
the same for all tokens of a frame, and the row and column angles for all frames of a position,
so each attention's scores are exactly those of the full 3D rotation.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from reverie.nn.attention_masks import block_causal_mask
from reverie.nn.mlp import mlp
from reverie.nn.rotary import Rotary3D, Rotation
from reverie.nn.transformer import Attention


class STBlock(nn.Module):
    """Spatial attention, causal temporal attention, then the MLP, each added to the residual stream."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, norm_eps: float):
        super().__init__()
        self.spatial_norm = nn.LayerNorm(width, eps=norm_eps)
        self.spatial_attention = Attention(width, heads)
        self.temporal_norm = nn.LayerNorm(width, eps=norm_eps)
        self.temporal_attention = Attention(width, heads)
        self.mlp_norm = nn.LayerNorm(width, eps=norm_eps)
        self.mlp = mlp(width, width, int(width * mlp_ratio), 1, nn.GELU)

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T, h, w, width)
        spatial_rotation: Rotation,  # (cos, sin), each (1, 1, h w, rotated_dims / 2)
        temporal_rotation: Rotation,  # (cos, sin), each (1, 1, T, rotated_dims / 2)
        causal_mask: torch.Tensor,  # (T, T) bool, True where frame t may see frame t'
    ) -> torch.Tensor:
        """-> (B, T, h, w, width)."""
        batch, frames, height, width = tokens.shape[:4]
        within_frames = rearrange(self.spatial_norm(tokens), "b t h w d -> (b t) (h w) d")
        attended, _ = self.spatial_attention(within_frames, spatial_rotation)
        tokens = tokens + rearrange(attended, "(b t) (h w) d -> b t h w d", b=batch, h=height)
        over_time = rearrange(self.temporal_norm(tokens), "b t h w d -> (b h w) t d")
        attended, _ = self.temporal_attention(over_time, temporal_rotation, causal_mask)
        tokens = tokens + rearrange(attended, "(b h w) t d -> b t h w d", b=batch, h=height, w=width)
        return tokens + self.mlp(self.mlp_norm(tokens))


class STTransformer(nn.Module):
    """`depth` ST blocks over (B, T, h, w, width) tokens, then a LayerNorm."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-5):
        super().__init__()
        self.blocks = nn.ModuleList(STBlock(width, heads, mlp_ratio, norm_eps) for _ in range(depth))
        self.rotary = Rotary3D(width // heads)
        self.norm = nn.LayerNorm(width, eps=norm_eps)

    def rotations(self, frames: int, height: int, width: int, device: torch.device, frame_token: bool = False) -> tuple[Rotation, Rotation]:
        """The spatial rotation, by (0, row, column), and the temporal one, by (time, 0, 0); with
        `frame_token`, a frame's extra token first, at (0, -1, -1), one step before the grid's corner."""
        rows, columns = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
        spatial = rearrange(torch.stack([torch.zeros_like(rows), rows, columns], dim=-1), "h w coordinate -> (h w) coordinate")
        if frame_token:
            spatial = torch.cat([torch.tensor([[0, -1, -1]], device=device), spatial])
        times = torch.arange(frames, device=device)
        temporal = torch.stack([times, torch.zeros_like(times), torch.zeros_like(times)], dim=-1)
        dtype = self.rotary.frequencies.dtype
        return self.rotary.rotation(spatial[None].to(dtype)), self.rotary.rotation(temporal[None].to(dtype))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, h, w, width) -> (B, T, h, w, width); the output at frame t depends on frames <= t only."""
        frames, height, width = tokens.shape[1:4]
        spatial_rotation, temporal_rotation = self.rotations(frames, height, width, tokens.device)
        causal_mask = block_causal_mask(frames, 1, device=tokens.device)
        for block in self.blocks:
            tokens = block(tokens, spatial_rotation, temporal_rotation, causal_mask)
        return self.norm(tokens)

    def with_frame_tokens(self, tokens: torch.Tensor, frame_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, T, h, w, width) and one more token per frame (B, T, width), attended with its
        frame's tokens as one row of 1 + h w (Genie's action token) -> (the grid's outputs (B, T, h,
        w, width), the frame tokens' (B, T, width)); outputs at frame t depend on frames <= t only."""
        frames, height, width = tokens.shape[1:4]
        spatial_rotation, temporal_rotation = self.rotations(frames, height, width, tokens.device, frame_token=True)
        causal_mask = block_causal_mask(frames, 1, device=tokens.device)
        row = torch.cat([frame_tokens[:, :, None], rearrange(tokens, "b t h w d -> b t (h w) d")], dim=2)[:, :, None]  # (B, T, 1, 1 + h w, width)
        for block in self.blocks:
            row = block(row, spatial_rotation, temporal_rotation, causal_mask)
        row = self.norm(row)[:, :, 0]
        return rearrange(row[:, :, 1:], "b t (h w) d -> b t h w d", h=height), row[:, :, 0]
