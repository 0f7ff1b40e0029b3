"""Finite scalar quantization: Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made
Simple", as [25] Cosmos' discrete video tokenizer uses it.

FSQ has no codebook to learn. The input is projected to d = len(levels) channels (when D != d),
channel i is bounded to L_i values (Sec. 3, eq. 1, f(z) = floor(L/2) tanh(z), with a half-step
shift for an even L_i so that it too gets exactly L_i values) and rounded with straight-through
gradients, round_ste(f(z)) = f(z) + sg[round(f(z)) - f(z)], then scaled to [-1, 1] and projected
back to D. The codes are the product grid of the levels, so there are prod(L_i) of them
(Cosmos' [8, 8, 8, 5, 5, 5] gives 64,000), every code is used by construction and there is no
auxiliary loss. A code's index is its level numbers read in mixed radix, the first channel the
least significant digit: index = sum_i l_i prod_{j<i} L_j, with l_i in [0, L_i). A code lives in
the output space: quantizing it again bounds it first, so it need not give its index back.

The library's FSQ (vector-quantize-pytorch) is the paper's Appendix A.1 code and is used as is;
this module gives it reverie's interface.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor
from vector_quantize_pytorch import FSQ

from reverie.nn.quantizers.base import Quantizer, register, require

COSMOS_LEVELS = (8, 8, 8, 5, 5, 5)  # [25] Cosmos' discrete tokenizers: 64,000 codes


@dataclass
class FSQConfig:
    dim: int  # D, the encoder's channel width
    levels: tuple[int, ...] = COSMOS_LEVELS  # L_i, values per channel after the projection to len(levels)

    def __post_init__(self):
        require(self.dim >= 1, "fsq", f"dim must be >= 1, got {self.dim}")
        require(isinstance(self.levels, Sequence) and len(self.levels) > 0, "fsq", f"levels must be a non-empty list, got {self.levels!r}")
        self.levels = tuple(int(level) for level in self.levels)
        # a level of 2 needs the library's symmetry-preserving variant, which the paper does not use
        require(all(level >= 3 for level in self.levels), "fsq", f"levels must each be >= 3, got {list(self.levels)}")


@register
class FiniteScalarQuantizer(Quantizer):
    name = "fsq"
    config_class = FSQConfig

    def __init__(self, config: FSQConfig):
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.codebook_size = math.prod(config.levels)
        self.fsq = FSQ(levels=list(config.levels), dim=config.dim)

    def quantize(self, vectors: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        codes, indices = self.fsq(vectors)  # (B, N, D), (B, N) int32
        return codes, indices.long(), {}

    def lookup(self, indices: Tensor) -> Tensor:
        return self.fsq.indices_to_codes(indices)
