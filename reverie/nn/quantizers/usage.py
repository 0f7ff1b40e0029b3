"""Codebook usage of a tokenizer's indices: the share of codes it hits and the perplexity of its
code histogram, the two numbers VQ papers report to show a codebook has not collapsed.

    perplexity = exp(H(p)),  p_k = (positions on code k) / (all positions)

runs from 1 (every position on one code) to `codebook_size` (all codes used equally often).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor


def usage(indices: Tensor, codebook_size: int) -> tuple[Tensor, Tensor]:
    """indices (any shape) in [0, codebook_size) -> (fraction of codes hit, perplexity), scalars."""
    if indices.numel() == 0 or indices.dtype.is_floating_point:
        raise ValueError(f"usage: indices must be a non-empty integer tensor, got {indices.dtype} {tuple(indices.shape)}")
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= codebook_size:
        raise ValueError(f"usage: indices must lie in [0, codebook_size={codebook_size}), got {low}..{high}")
    counts = torch.bincount(rearrange(indices.long(), "... -> (...)"), minlength=codebook_size)
    probabilities = counts / counts.sum()
    fraction_hit = (counts > 0).float().mean()
    perplexity = torch.special.entr(probabilities).sum().exp()
    return fraction_hit, perplexity
