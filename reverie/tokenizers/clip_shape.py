"""The clip shapes a video tokenizer takes, checked once for every tokenizer: frames (B, T, C, H, W)
with the model's channel count, at least one frame, and a height and width that the tokenizer's
spatial step (a compression, a patch size) divides. Anything else is a `FrameShapeError` that
names the sizes."""

from __future__ import annotations

import torch


class FrameShapeError(ValueError):
    """Frames or latents of a shape the tokenizer cannot take; names the sizes."""


def check_clip_size(frames: int, height: int, width: int, step: int, step_name: str) -> None:
    """`frames` frames of height x width, which `step` (called `step_name`) must divide."""
    if frames < 1 or height % step or width % step:
        why = "no frames" if frames < 1 else f"height and width must divide by the {step_name} {step}"
        raise FrameShapeError(f"{frames} frames of {height}x{width}: {why}")


def clip_size(frames: torch.Tensor, image_channels: int, step: int, step_name: str) -> tuple[int, int, int]:
    """(T, H, W) of frames (B, T, image_channels, H, W), checked as `check_clip_size` does."""
    if frames.ndim != 5 or frames.shape[2] != image_channels:
        raise FrameShapeError(f"frames of shape {tuple(frames.shape)}: expected (B, T, {image_channels}, H, W)")
    count, _, height, width = frames.shape[1:]
    check_clip_size(count, height, width, step, step_name)
    return count, height, width
