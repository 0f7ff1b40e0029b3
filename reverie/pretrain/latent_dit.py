"""The velocity network of the latent diffusion world models ([24] Oasis, [19] Genie 2): a DiT
(Peebles & Xie 2023) over a video's latent frames, with attention factorised into space and causal
time (`reverie.nn.dit_block`), as Oasis's spatiotemporal DiT lays it out.

Over latents x (B, T, C, h, w), each at its own noise level l_t (diffusion forcing, Chen et al.
2024), and the action that led to each frame:

    tokens_t   = Linear(patches_p(x_t)) + E_space              (h / p) (w / p) tokens a frame, learned E_space
    c_t        = NoiseLevelEmbedding(l_t) + A(a_{t-1})          one condition a frame
    tokens     = DiTBlock_D( ... DiTBlock_1(tokens, c) ... )    spatial, causal temporal, MLP; adaLN-Zero from c
    v_hat_t    = Linear(modulate(LN(tokens_t), shift(c_t), scale(c_t)))  back to patches, then to (C, h, w)

A(a) is `reverie.pretrain.action_tokens.ActionEmbedding` (discrete, multi-discrete keys and mouse
bins, or continuous), and a frame whose action is not kept (the first frame of a window, an action
dropped for classifier-free guidance, video without actions) takes the learned null embedding
instead. Temporal positions are the blocks' rotary ones, counted from the first frame passed (or
after the cache). The final layer is DiT's: its own adaLN (shift and scale, no gate), then a Linear,
both zero-initialised, so that the untrained network predicts v = 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.nn.adaptive_layer_norm import modulate
from reverie.nn.diffusion import NoiseLevelEmbedding
from reverie.nn.dit_block import DiTBlock
from reverie.nn.transformer import KeyValues
from reverie.pretrain.action_tokens import ActionEmbedding

LEVEL_FEATURES = 256  # DiT's timestep sinusoids (frequency_embedding_size)


class FinalLayer(nn.Module):
    """DiT's last layer: LN modulated per frame by (shift, scale) of c, then a Linear to the patch values."""

    def __init__(self, width: int, patch_values: int, norm_eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.to_modulation = nn.Linear(width, 2 * width)
        self.to_patches = nn.Linear(width, patch_values)
        for layer in (self.to_modulation, self.to_patches):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, tokens: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, N, width), conditioning (B, T, width) -> (B, T, N, patch_values)."""
        shift, scale = rearrange(self.to_modulation(F.silu(conditioning)), "b t (two d) -> two b t 1 d", two=2)
        return self.to_patches(modulate(self.norm(tokens), shift, scale))


class LatentDiT(nn.Module):
    """Latent frames at per-frame noise levels, and the actions that led to them -> v_hat per frame."""

    def __init__(self, latent_shape: tuple[int, int, int], patch_size: int, width: int, depth: int, heads: int,
                 mlp_ratio: float, action_space: dict):  # fmt: skip
        """latent_shape: (C, h, w) of one latent frame, h and w divisible by patch_size."""
        super().__init__()
        channels, height, width_in_latents = latent_shape
        self.latent_shape, self.patch_size = tuple(latent_shape), patch_size
        self.grid = (height // patch_size, width_in_latents // patch_size)
        patch_values = channels * patch_size * patch_size
        self.patch_embedding = nn.Linear(patch_values, width)
        self.space_embedding = nn.Parameter(torch.randn(self.grid[0] * self.grid[1], width) * 0.02)
        self.level_embedding = NoiseLevelEmbedding(width, LEVEL_FEATURES, frequencies="geometric")
        self.action_embedding = ActionEmbedding(action_space, width)
        self.null_action = nn.Parameter(torch.randn(width) * 0.02)
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.final_layer = FinalLayer(width, patch_values)

    def conditioning(self, levels: torch.Tensor, previous_actions: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """levels (B, T) int64, previous_actions (B, T, *action_shape) (entry t led to frame t; zeros,
        or any action of the space, where not kept), kept (B, T) bool -> c (B, T, width)."""
        actions = torch.where(kept[..., None], self.action_embedding(previous_actions), self.null_action)
        return self.level_embedding(levels) + actions

    def forward(
        self,
        latents: torch.Tensor,  # (B, T, C, h, w) noised, each frame at its level
        levels: torch.Tensor,  # (B, T) int64 in [0, train_levels)
        previous_actions: torch.Tensor,  # (B, T, *action_shape): the action that led to each frame
        kept: torch.Tensor,  # (B, T) bool: False takes the null action
        past: list[KeyValues] | None = None,  # each block's temporal keys and values of earlier frames
    ) -> tuple[torch.Tensor, list[KeyValues]]:
        """-> v_hat (B, T, C, h, w), and each block's temporal keys and values of the past and these
        frames (the `past` of a later call)."""
        p = self.patch_size
        patches = rearrange(latents, "b t c (y p) (x q) -> b t (y x) (p q c)", p=p, q=p)
        tokens = self.patch_embedding(patches) + self.space_embedding
        conditioning = self.conditioning(levels, previous_actions, kept)
        cache = []
        for index, block in enumerate(self.blocks):
            tokens, present = block(tokens, conditioning, None if past is None else past[index])
            cache.append(present)
        patches = self.final_layer(tokens, conditioning)
        velocity = rearrange(patches, "b t (y x) (p q c) -> b t c (y p) (x q)", y=self.grid[0], p=p, q=p)
        return velocity, cache
