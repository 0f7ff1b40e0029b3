"""The U-Net of [16] DIAMOND's denoiser (Alonso et al. 2024, "Diffusion for World Modeling: Visual
Details Matter in Atari", Sec. 3 and its appendix on the architecture): the network F that EDM's
preconditioning wraps (`reverie.nn.diffusion.edm`), over one noisy next frame and the K frames
before it stacked in channels.

    x = conv_in([context_1 .. context_K, noisy])         3 (K + 1) channels -> channels[0]
    down:   level i: (downsample unless i = 0), res_blocks ResBlocks at channels[i]
    middle: two ResBlocks at channels[-1], with self-attention
    up:     level i, deepest first: res_blocks + 1 ResBlocks, each fed one skip (concatenated), then
            an upsample (unless i = 0); the last ResBlock of level i goes back to channels[i - 1]
    F = conv_out(SiLU(GroupNorm(x)))                      channels[0] -> 3

A ResBlock is h = conv2(SiLU(AdaGN(conv1(SiLU(AdaGN(x, c))), c))) + proj(x), then optional
self-attention, where every norm is an `AdaGroupNorm` of the one conditioning vector c (the noise
level's, the actions' and, with GameNGen's augmentation, the context noise level's embedding; the
world model builds it). Downsampling is a stride-2 3x3 convolution, upsampling nearest-neighbour x2
then a 3x3 convolution. As in DIAMOND, conv2 of every ResBlock, the attention's output projection
and conv_out start at zero (every block starts as its skip path, F as zero), GroupNorms take a
group per 32 channels, and attention heads are 8 wide. DIAMOND's Atari network: channels
[64, 64, 64, 64], 2 ResBlocks per level, cond_channels 256, no attention at the levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from reverie.nn.diffusion import AdaGroupNorm
from reverie.nn.transformer import Attention

GROUP_SIZE = 32  # channels per GroupNorm group (at least one group)
HEAD_DIM = 8  # channels per attention head


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // GROUP_SIZE), channels)


def conv3x3(fan_in: int, fan_out: int) -> nn.Conv2d:
    return nn.Conv2d(fan_in, fan_out, 3, padding=1)


class SelfAttention2d(nn.Module):
    """Residual multi-head self-attention over the H W positions of a feature map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.attention = Attention(channels, max(1, channels // HEAD_DIM))
        nn.init.zeros_(self.attention.proj.weight)
        nn.init.zeros_(self.attention.proj.bias)

    def forward(self, features: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        height = features.shape[2]
        tokens = rearrange(self.norm(features), "b c h w -> b (h w) c")
        attended, _ = self.attention(tokens)
        return features + rearrange(attended, "b (h w) c -> b c h w", h=height)


class ResBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, cond_channels: int, attention: bool):
        super().__init__()
        self.skip = nn.Conv2d(fan_in, fan_out, 1) if fan_in != fan_out else nn.Identity()
        self.norm1 = AdaGroupNorm(fan_in, cond_channels, GROUP_SIZE)
        self.conv1 = conv3x3(fan_in, fan_out)
        self.norm2 = AdaGroupNorm(fan_out, cond_channels, GROUP_SIZE)
        self.conv2 = conv3x3(fan_out, fan_out)
        nn.init.zeros_(self.conv2.weight)
        self.attention = SelfAttention2d(fan_out) if attention else nn.Identity()

    def forward(self, features: Tensor, condition: Tensor) -> Tensor:
        """features (B, fan_in, H, W), condition (B, cond_channels) -> (B, fan_out, H, W)."""
        hidden = self.conv1(F.silu(self.norm1(features, condition)))
        hidden = self.conv2(F.silu(self.norm2(hidden, condition)))
        return self.attention(self.skip(features) + hidden)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, features: Tensor) -> Tensor:
        return self.conv(features)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, features: Tensor) -> Tensor:
        return self.conv(F.interpolate(features, scale_factor=2.0, mode="nearest"))


class DownLevel(nn.Module):
    """ResBlocks at one resolution; keeps its input and each block's output for the up path."""

    def __init__(self, fan_in: int, channels: int, res_blocks: int, cond_channels: int, attention: bool):
        super().__init__()
        widths = [fan_in] + [channels] * res_blocks
        self.blocks = nn.ModuleList(ResBlock(a, b, cond_channels, attention) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, features: Tensor, condition: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = [features]
        for block in self.blocks:
            features = block(features, condition)
            skips.append(features)
        return features, skips


class UpLevel(nn.Module):
    """res_blocks + 1 ResBlocks at one resolution, each taking the last unused skip of its down level."""

    def __init__(self, fan_out: int, channels: int, res_blocks: int, cond_channels: int, attention: bool):
        super().__init__()
        fan_ins = [2 * channels] * res_blocks + [channels + fan_out]
        fan_outs = [channels] * res_blocks + [fan_out]
        self.blocks = nn.ModuleList(ResBlock(a, b, cond_channels, attention) for a, b in zip(fan_ins, fan_outs))

    def forward(self, features: Tensor, condition: Tensor, skips: list[Tensor]) -> Tensor:
        for block, skip in zip(self.blocks, reversed(skips)):
            features = block(torch.cat([features, skip], dim=1), condition)
        return features


class DiamondUNet(nn.Module):
    """F of DIAMOND's denoiser; see the module docstring. Frames must divide by 2^(levels - 1)."""

    def __init__(
        self,
        context_frames: int,
        channels: list[int],
        res_blocks: int,
        cond_channels: int,
        attention: list[bool],
        image_channels: int = 3,
    ):
        super().__init__()
        if len(attention) != len(channels):
            raise ValueError(f"DiamondUNet: attention {attention} needs one entry per level of channels {channels}")
        self.levels = len(channels)
        self.conv_in = conv3x3((context_frames + 1) * image_channels, channels[0])
        fan_ins = [channels[0], *channels[:-1]]
        self.downsamples = nn.ModuleList([nn.Identity()] + [Downsample(width) for width in channels[:-1]])
        self.down = nn.ModuleList(
            DownLevel(fan_in, width, res_blocks, cond_channels, on) for fan_in, width, on in zip(fan_ins, channels, attention)
        )
        self.middle = nn.ModuleList(ResBlock(channels[-1], channels[-1], cond_channels, attention=True) for _ in range(2))
        self.up = nn.ModuleList(
            UpLevel(fan_out, width, res_blocks, cond_channels, on) for fan_out, width, on in zip(fan_ins, channels, attention)
        )
        self.upsamples = nn.ModuleList([nn.Identity()] + [Upsample(width) for width in channels[:-1]])
        self.norm_out = group_norm(channels[0])
        self.conv_out = conv3x3(channels[0], image_channels)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, noisy: Tensor, context: Tensor, condition: Tensor) -> Tensor:
        """noisy (B, 3, H, W), context (B, K, 3, H, W), condition (B, cond_channels) -> (B, 3, H, W)."""
        stride = 2 ** (self.levels - 1)
        if noisy.shape[-2] % stride or noisy.shape[-1] % stride:
            raise ValueError(f"DiamondUNet of {self.levels} levels: frames of {noisy.shape[-2]}x{noisy.shape[-1]} must divide by {stride}")
        features = self.conv_in(torch.cat([rearrange(context, "b k c h w -> b (k c) h w"), noisy], dim=1))
        level_skips = []
        for downsample, level in zip(self.downsamples, self.down):
            features, skips = level(downsample(features), condition)
            level_skips.append(skips)
        for block in self.middle:
            features = block(features, condition)
        for index in reversed(range(self.levels)):
            features = self.up[index](features, condition, level_skips[index])
            features = self.upsamples[index](features)
        return self.conv_out(F.silu(self.norm_out(features)))
