"""A tiny latent DiT ([24] Oasis) for the latent diffusion tests, with its zero-initialised layers
(every adaLN-Zero modulation and the final layer) set random, so that an untrained network already
depends on its inputs, levels and actions."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from reverie.nn.adaptive_layer_norm import AdaLNZero
from reverie.pretrain.latent_dit import FinalLayer, LatentDiT

LATENT_SHAPE = (4, 4, 6)  # (C, h, w): what the tiny per-frame tokenizer makes of 32 x 48 frames
ACTIONS = {"kind": "discrete", "n": 3}


def zero_initialised(module: nn.Module) -> Iterator[nn.Linear]:
    """The Linears of `module`'s DiT blocks and final layer that start at zero."""
    for part in module.modules():
        if isinstance(part, AdaLNZero):
            yield part.to_modulation
        if isinstance(part, FinalLayer):
            yield from (part.to_modulation, part.to_patches)


@torch.no_grad()
def open_gates(module: nn.Module, std: float = 0.2, seed: int = 0) -> nn.Module:
    """Draw every zero-initialised Linear of `module` from N(0, std^2)."""
    generator = torch.Generator().manual_seed(seed)
    for layer in zero_initialised(module):
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * std)
    return module


def tiny_network(seed: int = 0) -> LatentDiT:
    """A float64 2-block DiT of width 32 over LATENT_SHAPE latents, patches of 2, 3 actions; gates open."""
    torch.manual_seed(seed)
    return open_gates(LatentDiT(LATENT_SHAPE, 2, 32, 2, 4, 2.0, ACTIONS), seed=seed).double().eval()


def random_window(batch: int = 2, frames: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """latents (B, T, *LATENT_SHAPE) float64, levels (B, T) in [0, 1000), previous actions (B, T),
    kept (B, T) with frame 0 null."""
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, frames, *LATENT_SHAPE, generator=generator, dtype=torch.float64)
    levels = torch.randint(0, 1000, (batch, frames), generator=generator)
    actions = torch.randint(0, ACTIONS["n"], (batch, frames), generator=generator)
    kept = torch.ones(batch, frames, dtype=torch.bool)
    kept[:, 0] = False
    return latents, levels, actions, kept
