"""The temporally causal 3D convolution of the Cosmos tokenizers ([25] NVIDIA 2025, Sec. 4, "Tokenizer").

A `CausalConv3d` is an `nn.Conv3d` over (B, C, T, H, W) videos that never looks ahead in time: it
pads only the past side of the time axis, with k_T - 1 copies of the first frame (replicated, not
zeros, so the first frame looks like a still video), and no future side. Output frame j then reads
input frames j s_T - (k_T - 1) .. j s_T, so that

    frames_out = 1 + (frames_in - 1) // s_T,

a clip of 1 + k s_T frames gives 1 + k frames, output frame 0 depends on input frame 0 alone, and
the output of a prefix of the clip is the prefix of the output: what a causal tokenizer needs to
encode an image as a one-frame video and to stream a video frame by frame. Height and width are
zero-padded by k // 2 on both sides unless told otherwise (a strided downsampler pads itself).

`factorized_causal_conv3d` is Cosmos's factorised 3D convolution: a 1 x 3 x 3 spatial convolution
followed by a 3 x 1 x 1 temporal one, cheaper than a full 3 x 3 x 3 kernel and as causal.
"""

from __future__ import annotations

import torch
from torch import nn


def triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value, value, value) if isinstance(value, int) else tuple(value)


class CausalConv3d(nn.Module):
    """A Conv3d over (B, C, T, H, W) that sees the present and past frames only."""

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        kernel_size: int | tuple[int, int, int] = 3,  # (k_T, k_H, k_W)
        stride: int | tuple[int, int, int] = 1,  # (s_T, s_H, s_W)
        spatial_padding: int | None = None,  # zeros on each side of H and W; None: k // 2
    ):
        super().__init__()
        kernel_time, kernel_height, kernel_width = triple(kernel_size)
        self.time_padding = kernel_time - 1
        padding = (0, kernel_height // 2, kernel_width // 2) if spatial_padding is None else (0, spatial_padding, spatial_padding)
        self.conv = nn.Conv3d(fan_in, fan_out, (kernel_time, kernel_height, kernel_width), stride=triple(stride), padding=padding)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C_out, 1 + (T - 1) // s_T, H', W')."""
        past = video[:, :, :1].expand(-1, -1, self.time_padding, -1, -1)
        return self.conv(torch.cat([past, video], dim=2))


def factorized_causal_conv3d(fan_in: int, fan_out: int) -> nn.Sequential:
    """A causal 3 x 3 x 3 convolution as Cosmos factorises it: 1 x 3 x 3 in space, then 3 x 1 x 1 in time."""
    return nn.Sequential(CausalConv3d(fan_in, fan_out, (1, 3, 3)), CausalConv3d(fan_out, fan_out, (3, 1, 1)))
