"""adaLN-Zero, the conditioning of DiT (Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers", Sec. 3.2), as the latent diffusion world models use it ([24] Oasis, [19] Genie 2).

Each sub-layer of a block (an attention, the MLP) is wrapped as

    tokens = tokens + gate * SubLayer(modulate(LN(tokens), shift, scale))
    modulate(x, shift, scale) = x * (1 + scale) + shift

where LN is a LayerNorm without its own affine parameters, and (shift, scale, gate) of every
sub-layer are regressed from the conditioning vector c by one SiLU + Linear. That Linear starts at
zero, so every gate starts at zero, every gated branch adds nothing, and the block starts as the
identity.

Conditioning is per frame: c is (B, T, width) for tokens (B, T, N, width), N tokens per frame,
because diffusion forcing (Chen et al. 2024) gives every frame its own noise level (and, in a world
model, its own action). Each frame's shift, scale and gate are broadcast over its N tokens.

The Linear's outputs are laid out sub-layer first, then (shift, scale, gate), as DiT's
`adaLN_modulation(c).chunk(6)` (shift_msa, scale_msa, gate_msa, shift_mlp, ...) lays them out.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def modulate(tokens: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """DiT's modulation, tokens * (1 + scale) + shift: a zero scale and shift leave tokens as they are."""
    return tokens * (1 + scale) + shift


class Modulation(NamedTuple):
    """The adaLN-Zero parameters of one sub-layer, each (B, T, 1, width): one per frame, broadcast over its tokens."""

    shift: torch.Tensor
    scale: torch.Tensor
    gate: torch.Tensor


class AdaLNZero(nn.Module):
    """Conditioning (B, T, width) -> one `Modulation` for each of `sublayers` sub-layers, and the
    LayerNorm they modulate. The Linear is zero-initialised: every shift, scale and gate start at 0."""

    def __init__(self, width: int, sublayers: int, norm_eps: float = 1e-6):
        super().__init__()
        self.sublayers = sublayers
        self.norm = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.to_modulation = nn.Linear(width, 3 * sublayers * width)
        nn.init.zeros_(self.to_modulation.weight)
        nn.init.zeros_(self.to_modulation.bias)

    def forward(self, conditioning: torch.Tensor) -> list[Modulation]:
        """conditioning (B, T, width) -> `sublayers` Modulations, each part (B, T, 1, width)."""
        parameters = self.to_modulation(F.silu(conditioning))
        parameters = rearrange(parameters, "b t (sublayer three d) -> sublayer three b t 1 d", sublayer=self.sublayers, three=3)
        return [Modulation(*sublayer) for sublayer in parameters]

    def normalize(self, tokens: torch.Tensor, modulation: Modulation) -> torch.Tensor:
        """tokens (B, T, N, width) -> modulate(LN(tokens), shift, scale), the input of a sub-layer."""
        return modulate(self.norm(tokens), modulation.shift, modulation.scale)
