"""The 3D Haar wavelet patcher of the Cosmos tokenizers ([25] NVIDIA 2025, Sec. 4, "Tokenizer").

Cosmos encodes in wavelet space: before its first convolution, a video goes through log2(p) levels
of the 3D Haar transform, which downsample time, height and width by p (p = 4 in Cosmos) into
C p^3 channels of sub-bands, and after the decoder the inverse transform (the unpatcher) brings the
sub-bands back to pixels. The transform is lossless; it only hands the network a compact,
decorrelated layout, so that its layers spend their capacity on semantic compression.

One level, along each of t, h and w in turn, takes neighbouring pairs (even, odd) to

    low = (even + odd) / 2,    high = (even - odd) / 2,        inverse: even = low + high, odd = low - high,

which is the orthonormal Haar filter pair (even +- odd) / sqrt(2) rescaled by 1 / sqrt(2) per axis,
as Cosmos rescales it (by 1 / (2 sqrt(2)) per 3D level), so the all-low band stays the mean and
keeps the range of the pixels. Each level applies to every channel, the high bands included (a
full wavelet packet, as Cosmos does). Channels come out band-major: channel (band, c) with
band = 4 b_t + 2 b_h + b_w, where b = 0 for the low and 1 for the high half along that axis.

Time is causal as in the rest of the tokenizer: the first frame is repeated p - 1 times before the
transform, so a clip of 1 + k p frames becomes (1 + k) p frames and then 1 + k band frames, of
which the first holds the first frame alone (an image is a one-frame video); the unpatcher drops
the p - 1 copies again. `unpatch(patch(video))` is `video` up to rounding.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

ANALYSIS = ((0.5, 0.5), (0.5, -0.5))  # rows: low, high; columns: even, odd
SYNTHESIS = ((1.0, 1.0), (1.0, -1.0))  # rows: even, odd; columns: low, high


class HaarShapeError(ValueError):
    """A video the patcher cannot transform at its patch size; names the sizes."""


def levels_of(patch_size: int) -> int:
    if patch_size < 1 or patch_size & (patch_size - 1):
        raise HaarShapeError(f"Haar patch_size {patch_size}: must be a power of two (1, 2, 4, 8, ...)")
    return int(math.log2(patch_size))


def haar_level(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W), T, H, W even -> (B, 8 C, T / 2, H / 2, W / 2): one level of the 3D transform."""
    analysis = video.new_tensor(ANALYSIS)
    pairs = rearrange(video, "b c (t i) (h j) (w k) -> b c i j k t h w", i=2, j=2, k=2)
    bands = torch.einsum("xi,yj,zk,bcijkthw->bxyzcthw", analysis, analysis, analysis, pairs)
    return rearrange(bands, "b x y z c t h w -> b (x y z c) t h w")


def inverse_haar_level(bands: torch.Tensor) -> torch.Tensor:
    """(B, 8 C, T, H, W) -> (B, C, 2 T, 2 H, 2 W): the inverse of `haar_level`."""
    synthesis = bands.new_tensor(SYNTHESIS)
    split = rearrange(bands, "b (x y z c) t h w -> b x y z c t h w", x=2, y=2, z=2)
    pairs = torch.einsum("ix,jy,kz,bxyzcthw->bcijkthw", synthesis, synthesis, synthesis, split)
    return rearrange(pairs, "b c i j k t h w -> b c (t i) (h j) (w k)")


def patch(video: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, 1 + k p, H, W) -> (B, C p^3, 1 + k, H / p, W / p) sub-bands, p = `patch_size`."""
    levels = levels_of(patch_size)
    frames, height, width = video.shape[2:]
    if (frames - 1) % patch_size or height % patch_size or width % patch_size:
        needs = f"1 + k*{patch_size} frames of height and width divisible by {patch_size}"
        raise HaarShapeError(f"Haar patcher with patch_size {patch_size}: needs {needs}, got {frames} frames of {height}x{width}")
    copies = video[:, :, :1].expand(-1, -1, patch_size - 1, -1, -1)
    video = torch.cat([copies, video], dim=2)
    for _ in range(levels):
        video = haar_level(video)
    return video


def unpatch(bands: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C p^3, 1 + k, h, w) -> (B, C, 1 + k p, h p, w p): the inverse of `patch`."""
    for _ in range(levels_of(patch_size)):
        bands = inverse_haar_level(bands)
    return bands[:, :, patch_size - 1 :]
