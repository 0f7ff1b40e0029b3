"""The video ViT of V-JEPA 2 ([26] Assran et al. 2025; V-JEPA 1: Bardes et al. 2024): encoder and
narrow predictor, both stacks of `reverie.nn.transformer.TransformerBlock` (LayerNorm eps 1e-6).

Tubelet embedding: a Conv3d with kernel = stride = (t, p, p) turns a clip (B, T, C, H, W) into
(T/t) x (H/p) x (W/p) tokens, numbered `(t * H' + h) * W' + w`. Positions are either 3D rotary
embeddings (V-JEPA 2, `reverie.nn.rotary.Rotary3D`: each attention head's dimensions are split into
three equal groups rotated by the token's time, row and column index, so that q.k depends only on
the offset between two tokens) or a learned table added to the tokens (a config switch). The
encoder may see only some tokens (`keep`, the context of a mask); the predictor sees the encoder's
context tokens, projected to its narrower width, plus one learned mask token at every target
position, and predicts the encoder-width features there.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from reverie.nn.rotary import Rotary3D
from reverie.nn.transformer import TransformerBlock

NORM_EPS = 1e-6  # V-JEPA's LayerNorms


def token_grid(clip_shape: torch.Size | tuple[int, ...], patch_size: int, tubelet_size: int) -> tuple[int, int, int]:
    """The (T', H', W') tubelet grid of a (B, T, C, H, W) clip."""
    frames, height, width = clip_shape[1], clip_shape[-2], clip_shape[-1]
    if frames % tubelet_size or height % patch_size or width % patch_size:
        raise ValueError(
            f"a clip of {frames} frames of {height}x{width} px does not tile into tubelets of "
            f"{tubelet_size} frames x {patch_size}x{patch_size} px"
        )
    return frames // tubelet_size, height // patch_size, width // patch_size


def token_coordinates(index: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Token indices (..., K) -> their (time, row, column) on `grid`, (..., K, 3) float."""
    _, height, width = grid
    time, within_frame = index // (height * width), index % (height * width)
    return torch.stack([time, within_frame // width, within_frame % width], dim=-1).float()


def all_tokens(batch: int, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    count = grid[0] * grid[1] * grid[2]
    return torch.arange(count, device=device).expand(batch, count)


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, D), index (B, K) -> (B, K, D)."""
    return tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))


def init_linear(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights and zero biases, as ViTs and V-JEPA start."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class LearnedPositions(nn.Module):
    """A (T', H', W', D) table of position vectors; clips with fewer tubelets use its first ones."""

    def __init__(self, grid: tuple[int, int, int], dim: int):
        super().__init__()
        self.table = nn.Parameter(torch.empty(*grid, dim))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, index: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Position vectors of tokens `index` (B, K) on `grid` -> (B, K, D)."""
        frames, height, width = grid
        table_frames, table_height, table_width = self.table.shape[:3]
        if frames > table_frames or (height, width) != (table_height, table_width):
            raise ValueError(
                f"learned positions cover {table_frames}x{table_height}x{table_width} tubelets, not a "
                f"{frames}x{height}x{width} clip; use positions: rope for other sizes"
            )
        table = rearrange(self.table[:frames], "t h w d -> (t h w) d")
        return table[index]


class TubeletEmbedding(nn.Module):
    """Clip -> tokens: a Conv3d over (t, p, p) tubelets, plus learned positions when asked."""

    def __init__(self, dim: int, patch_size: int, tubelet_size: int, in_channels: int, position_grid: tuple[int, int, int] | None):
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.conv = nn.Conv3d(in_channels, dim, kernel_size=kernel, stride=kernel)
        self.positions = LearnedPositions(position_grid, dim) if position_grid is not None else None

    def forward(self, clip: torch.Tensor, keep: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """clip (B, T, C, H, W), keep (B, K) token indices -> their embeddings (B, K, D)."""
        tokens = rearrange(self.conv(rearrange(clip, "b t c h w -> b c t h w")), "b d t h w -> b (t h w) d")
        tokens = gather_tokens(tokens, keep)
        return tokens if self.positions is None else tokens + self.positions(keep, grid)


class FeatureNorm(nn.LayerNorm):
    """The encoder's output LayerNorm. A class of its own so that, with `TubeletEmbedding` and
    `TransformerBlock`, every encoder parameter sits in a module of those types: wrapping a model by
    block type then splits the online and target encoders alike, and the EMA update can pair their
    parameters one to one."""


class VideoViT(nn.Module):
    """The V-JEPA encoder: tubelet embedding, positions, `depth` blocks, a final LayerNorm."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        patch_size: int,
        tubelet_size: int,
        positions: str = "rope",
        position_grid: tuple[int, int, int] = (8, 16, 16),
        mlp_ratio: float = 4.0,
        in_channels: int = 3,
    ):
        super().__init__()
        if positions not in ("rope", "learned"):
            raise ValueError(f"positions must be rope or learned, not {positions!r}")
        self.embed_dim, self.patch_size, self.tubelet_size = embed_dim, patch_size, tubelet_size
        learned_grid = position_grid if positions == "learned" else None
        self.embed = TubeletEmbedding(embed_dim, patch_size, tubelet_size, in_channels, learned_grid)
        self.rotary = Rotary3D(embed_dim // num_heads) if positions == "rope" else None
        self.blocks = nn.ModuleList([TransformerBlock(embed_dim, num_heads, mlp_ratio, NORM_EPS) for _ in range(depth)])
        self.norm = FeatureNorm(embed_dim, eps=NORM_EPS)
        self.apply(init_linear)

    def forward(self, clip: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """clip (B, T, C, H, W), normalised pixels; keep (B, K) token indices or None for all.

        Returns the features of the kept tokens, (B, K, D)."""
        grid = token_grid(clip.shape, self.patch_size, self.tubelet_size)
        keep = all_tokens(len(clip), grid, clip.device) if keep is None else keep
        tokens = self.embed(clip, keep, grid)
        rotation = self.rotary.rotation(token_coordinates(keep, grid)) if self.rotary is not None else None
        for block in self.blocks:
            tokens, _ = block(tokens, rotation)
        return self.norm(tokens)


class Predictor(nn.Module):
    """The narrow V-JEPA predictor: context features and mask tokens in, target features out.

    One learned mask token per mask set (V-JEPA 2), zero at the start."""

    def __init__(
        self,
        embed_dim: int,
        predictor_dim: int,
        depth: int,
        num_heads: int,
        num_mask_tokens: int,
        positions: str = "rope",
        position_grid: tuple[int, int, int] = (8, 16, 16),
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.embed = nn.Linear(embed_dim, predictor_dim)
        self.mask_tokens = nn.Parameter(torch.zeros(num_mask_tokens, predictor_dim))
        self.rotary = Rotary3D(predictor_dim // num_heads) if positions == "rope" else None
        self.positions = LearnedPositions(position_grid, predictor_dim) if positions == "learned" else None
        self.blocks = nn.ModuleList([TransformerBlock(predictor_dim, num_heads, mlp_ratio, NORM_EPS) for _ in range(depth)])
        self.norm = nn.LayerNorm(predictor_dim, eps=NORM_EPS)
        self.proj = nn.Linear(predictor_dim, embed_dim)
        self.apply(init_linear)

    def forward(
        self,
        context: torch.Tensor,
        context_index: torch.Tensor,
        target_index: torch.Tensor,
        grid: tuple[int, int, int],
        mask_set: int = 0,
    ) -> torch.Tensor:
        """context (B, Kc, D) encoder features at `context_index` (B, Kc); returns (B, Kt, D)
        predictions at `target_index` (B, Kt) on the (T', H', W') `grid`."""
        batch, target_count = target_index.shape
        context = self.embed(context)
        masks = self.mask_tokens[mask_set].expand(batch, target_count, -1)
        if self.positions is not None:
            context = context + self.positions(context_index, grid)
            masks = masks + self.positions(target_index, grid)
        tokens = torch.cat([context, masks], dim=1)
        index = torch.cat([context_index, target_index], dim=1)
        rotation = self.rotary.rotation(token_coordinates(index, grid)) if self.rotary is not None else None
        for block in self.blocks:
            tokens, _ = block(tokens, rotation)
        return self.proj(self.norm(tokens[:, -target_count:]))
