"""Diffusion levels (sigma or timestep) given per sample, (B,), or per frame, (B, T), laid against the
tensor they noise, (B, ...) or (B, T, ...): the levels' shape must be the tensor's leading shape."""

from __future__ import annotations

from torch import Tensor


def expand_like(levels: Tensor, like: Tensor) -> Tensor:
    """levels (L...) -> (L..., 1, ..., 1), broadcastable against like (L..., rest...)."""
    if levels.shape != like.shape[: levels.ndim]:
        raise ValueError(f"diffusion levels of shape {tuple(levels.shape)} do not lead a tensor of shape {tuple(like.shape)}")
    return levels.reshape(*levels.shape, *[1] * (like.ndim - levels.ndim))
