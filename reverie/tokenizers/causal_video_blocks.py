"""The causal building blocks of the Cosmos video tokenizers ([25] NVIDIA 2025, Sec. 4, "Tokenizer"):
a residual block, space-time attention, and the hybrid down- and upsamplers, every one of them
causal in time, so that a tokenizer built from them encodes any prefix of a clip into the prefix of
its latents. All take and return videos (B, C, T, H, W).

- `FrameNorm`: GroupNorm with one group over (C, H, W) of each frame alone; a norm whose statistics
  pooled over time would let a later frame change an earlier frame's latent.
- `CausalResBlock`: x + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))), each conv the factorised causal
  1x3x3 + 3x1x1 pair; a 1x1x1 conv on the skip path when the width changes.
- `SpaceTimeAttention`: one-head self-attention among the positions of each frame, then causal
  self-attention along time at each position (frame t attends to frames <= t), each pre-normed and
  residual: Cosmos's `CausalAttnBlock` followed by its `CausalTemporalAttnBlock`.
- `CausalDownsample`: halves H and W (a stride-2 1x3x3 conv plus a 2x2 average pool) and/or time
  (a stride-2 causal 3x1x1 conv plus a 2-frame average pool), then a 1x1x1 conv. Time goes from
  1 + 2k to 1 + k frames with the first frame alone: latent j reads frames <= 2j.
- `CausalUpsample`: the mirror: time 1 + k -> 1 + 2k by repeating every frame twice and dropping the
  first copy (so frame 0 stays alone), plus a causal 3x1x1 conv; space by nearest 2x repetition
  plus a 1x3x3 conv; then a 1x1x1 conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from reverie.nn.attention_masks import block_causal_mask
from reverie.nn.causal_conv3d import CausalConv3d, factorized_causal_conv3d
from reverie.nn.transformer import Attention


class FrameNorm(nn.Module):
    """GroupNorm(1) over (C, H, W) of every frame on its own."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels, eps=1e-6)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        normed = self.norm(rearrange(video, "b c t h w -> (b t) c h w"))
        return rearrange(normed, "(b t) c h w -> b c t h w", t=video.shape[2])


class CausalResBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.norm1, self.conv1 = FrameNorm(fan_in), factorized_causal_conv3d(fan_in, fan_out)
        self.norm2, self.conv2 = FrameNorm(fan_out), factorized_causal_conv3d(fan_out, fan_out)
        self.skip = CausalConv3d(fan_in, fan_out, 1) if fan_in != fan_out else nn.Identity()

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        hidden = self.conv1(F.silu(self.norm1(video)))
        return self.skip(video) + self.conv2(F.silu(self.norm2(hidden)))


class SpaceTimeAttention(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.spatial_norm, self.spatial = FrameNorm(width), Attention(width, heads=1)
        self.temporal_norm, self.temporal = FrameNorm(width), Attention(width, heads=1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        batch, _, frames, height, _ = video.shape
        tokens = rearrange(self.spatial_norm(video), "b c t h w -> (b t) (h w) c")
        attended, _ = self.spatial(tokens)
        video = video + rearrange(attended, "(b t) (h w) c -> b c t h w", b=batch, h=height)
        tokens = rearrange(self.temporal_norm(video), "b c t h w -> (b h w) t c")
        attended, _ = self.temporal(tokens, mask=block_causal_mask(frames, 1, device=video.device))
        return video + rearrange(attended, "(b h w) t c -> b c t h w", b=batch, h=height)


class CausalDownsample(nn.Module):
    def __init__(self, width: int, spatial: bool, temporal: bool):
        super().__init__()
        self.spatial = CausalConv3d(width, width, (1, 3, 3), stride=(1, 2, 2), spatial_padding=0) if spatial else None
        self.temporal = CausalConv3d(width, width, (3, 1, 1), stride=(2, 1, 1)) if temporal else None
        self.mix = CausalConv3d(width, width, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if self.spatial is not None:  # right and bottom padding: a 3x3 stride-2 kernel then gives H / 2 of even H
            video = self.spatial(F.pad(video, (0, 1, 0, 1))) + F.avg_pool3d(video, (1, 2, 2))
        if self.temporal is not None:  # the pool averages frames 2j - 1 and 2j, frame -1 being frame 0
            with_first = torch.cat([video[:, :, :1], video], dim=2)
            video = self.temporal(video) + F.avg_pool3d(with_first, (2, 1, 1))
        return self.mix(video)


class CausalUpsample(nn.Module):
    def __init__(self, width: int, spatial: bool, temporal: bool):
        super().__init__()
        self.temporal = CausalConv3d(width, width, (3, 1, 1)) if temporal else None
        self.spatial = CausalConv3d(width, width, (1, 3, 3)) if spatial else None
        self.mix = CausalConv3d(width, width, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if self.temporal is not None:
            video = video.repeat_interleave(2, dim=2)[:, :, 1:]
            video = video + self.temporal(video)
        if self.spatial is not None:
            video = repeat(video, "b c t h w -> b c t (h i) (w j)", i=2, j=2)
            video = video + self.spatial(video)
        return self.mix(video)
