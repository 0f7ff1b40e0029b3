"""Multi-block 3D masks of V-JEPA (Bardes et al. 2024, section 3.2), as V-JEPA 2 ([26] Assran et al.
2025) pretrains with them.

A mask set samples `num_blocks` rectangles on the spatial token grid, each of a random area
(`spatial_scale` times the grid's area) and aspect ratio (height / width in `aspect_ratio`), and
extends each over every tubelet of the clip, so that a masked region is a tube through time and
cannot be filled in by copying the same place from a neighbouring frame. The union of the tubes is
the target (what the predictor must predict); its complement is the context (what the encoder sees).
V-JEPA trains with two mask sets on every clip: short-range (8 blocks of scale 0.15) and
long-range (2 blocks of scale 0.7), which together mask about 90% of the tokens.

Tokens are numbered as the tubelet embedding flattens them: `index = (t * H + h) * W + w` on a
grid of (T, H, W) tubelets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat

SHORT_RANGE = {"num_blocks": 8, "spatial_scale": [0.15, 0.15], "aspect_ratio": [0.75, 1.5]}
LONG_RANGE = {"num_blocks": 2, "spatial_scale": [0.7, 0.7], "aspect_ratio": [0.75, 1.5]}


@dataclass
class MaskSpec:
    num_blocks: int
    spatial_scale: tuple[float, float]  # the block's area as a fraction of the frame's token grid
    aspect_ratio: tuple[float, float] = (0.75, 1.5)  # block height / width

    @classmethod
    def from_dict(cls, entry: dict) -> "MaskSpec":
        return cls(entry["num_blocks"], tuple(entry["spatial_scale"]), tuple(entry.get("aspect_ratio", (0.75, 1.5))))


@dataclass
class MaskBatch:
    """Token indices per clip, sorted, disjoint, equally many in every row of the batch."""

    context: torch.Tensor  # (B, K_context) long
    target: torch.Tensor  # (B, K_target) long


def uniform(low: float, high: float, size: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator)


def block_sizes(spec: MaskSpec, shape: tuple[int, int], count: tuple[int, ...], generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Heights and widths of `count` blocks on an (H, W) grid, each at most one less than the grid
    (a block never spans a whole axis, so two blocks rarely cover a small grid)."""
    height, width = shape
    area = uniform(*spec.spatial_scale, count, generator) * height * width
    ratio = uniform(*spec.aspect_ratio, count, generator)
    block_height = torch.sqrt(area * ratio).round().clamp(1, max(1, height - 1)).long()
    block_width = torch.sqrt(area / ratio).round().clamp(1, max(1, width - 1)).long()
    return block_height, block_width


def sample_target_masks(spec: MaskSpec, batch: int, grid: tuple[int, int, int], generator=None) -> torch.Tensor:
    """(B, T, H, W) bool, True where a token is a target: the union of `num_blocks` tubes.

    A clip whose blocks leave no context is drawn again."""
    frames, height, width = grid
    masks = torch.empty(batch, height, width, dtype=torch.bool)
    todo = torch.arange(batch)
    for _ in range(100):
        masks[todo] = spatial_union(spec, len(todo), (height, width), generator)
        todo = todo[masks[todo].flatten(1).all(dim=1)]
        if len(todo) == 0:
            return repeat(masks, "b h w -> b t h w", t=frames)
    raise RuntimeError(f"mask set {spec} leaves no context on a {height}x{width} token grid; use smaller blocks")


def spatial_union(spec: MaskSpec, batch: int, shape: tuple[int, int], generator=None) -> torch.Tensor:
    """(B, H, W) bool: the union of `num_blocks` random rectangles per clip."""
    height, width = shape
    count = (batch, spec.num_blocks)
    block_height, block_width = block_sizes(spec, shape, count, generator)
    top = (torch.rand(count, generator=generator) * (height - block_height + 1)).long()
    left = (torch.rand(count, generator=generator) * (width - block_width + 1)).long()
    rows = torch.arange(height)
    columns = torch.arange(width)
    in_rows = (rows >= top[..., None]) & (rows < (top + block_height)[..., None])  # (B, n, H)
    in_columns = (columns >= left[..., None]) & (columns < (left + block_width)[..., None])  # (B, n, W)
    blocks = in_rows[..., :, None] & in_columns[..., None, :]  # (B, n, H, W)
    return blocks.any(dim=1)


def equal_count_indices(selected: torch.Tensor, generator=None) -> torch.Tensor:
    """(B, N) bool -> (B, K) sorted indices of K selected tokens per row, K the smallest row count.

    Rows with more are thinned at random (V-JEPA keeps the first K, which drops the last frames'
    tokens more often), so that the batch stacks into one tensor."""
    keep = int(selected.sum(dim=1).min())
    scores = torch.rand(selected.shape, generator=generator).masked_fill(~selected, -1.0)
    indices = scores.topk(keep, dim=1).indices
    return indices.sort(dim=1).values


def sample_masks(spec: MaskSpec, batch: int, grid: tuple[int, int, int], generator=None) -> MaskBatch:
    """Context and target token indices for a batch of clips on a (T, H, W) tubelet grid."""
    target = rearrange(sample_target_masks(spec, batch, grid, generator), "b t h w -> b (t h w)")
    return MaskBatch(context=equal_count_indices(~target, generator), target=equal_count_indices(target, generator))
