"""Lookup-free quantization: MAGVIT-v2 (Yu et al. 2023, "Language Model Beats Diffusion --
Tokenizer is Key to Visual Generation", Sec. 3.1).

The input is projected to `bits` channels (when D != bits) and each channel quantized
independently to a sign, q(z_i) = -1 if z_i <= 0 else 1, with straight-through gradients,
then projected back to D. The codebook is the 2^bits corners of the hypercube and is never looked
up or learned. A code's index is its bits read in binary, the first channel the most significant
bit (the library's order; the paper's index sum reads them from the other end).

The entropy penalty (Sec. 3.1) asks each position to be confident about its code and the batch to
use all codes alike:

    losses["entropy"] = entropy_weight * (E_z[H(p(. | z))] - diversity_gamma * H(E_z[p(. | z)]))
    p(k | z) = softmax_k(-inv_temperature * ||z - c_k||^2)

over the 2^bits codes c_k (the paper does not spell out p; this softmax is the library's), so it is
lowest (-entropy_weight * bits * log 2 at diversity_gamma = 1) for a batch whose positions are each
sure of their code and that spreads evenly over the codes, and about 0 for a batch on one code. The commitment term is VQ-VAE's, with the code held fixed:
losses["commitment"] = commitment_weight * ||z - sg[q(z)]||^2.

vector-quantize-pytorch's LFQ computes both terms with this sign (its `per_sample_entropy -
diversity_gamma * codebook_entropy`) and is used as is; this module reads the two terms from its
loss breakdown and weights them, so each is reported under its own name. The entropy term holds
N x 2^bits probabilities for N positions: at MAGVIT-v2's 18 bits, few positions per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor
from vector_quantize_pytorch import LFQ

from reverie.nn.quantizers.base import Quantizer, register, require


@dataclass
class LFQConfig:
    dim: int  # D, the encoder's channel width
    bits: int = 18  # log2 of the codebook size; MAGVIT-v2's video tokenizer has 2^18 codes
    entropy_weight: float = 0.1  # MAGVIT-v2's entropy penalty weight
    commitment_weight: float = 0.25  # beta, as in VQ-VAE
    diversity_gamma: float = 1.0  # weight of the batch's codebook entropy; 1 is the paper's penalty
    inv_temperature: float = 100.0  # 1 / tau of the per-position code distribution p(k | z)

    def __post_init__(self):
        require(self.dim >= 1, "lfq", f"dim must be >= 1, got {self.dim}")
        require(self.bits >= 1, "lfq", f"bits must be >= 1, got {self.bits}")
        for name in ("entropy_weight", "commitment_weight", "diversity_gamma"):
            require(getattr(self, name) >= 0, "lfq", f"{name} must be >= 0, got {getattr(self, name)}")
        require(self.inv_temperature > 0, "lfq", f"inv_temperature must be > 0, got {self.inv_temperature}")


@register
class LookupFreeQuantizer(Quantizer):
    name = "lfq"
    config_class = LFQConfig

    def __init__(self, config: LFQConfig):
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.codebook_size = 2**config.bits
        self.lfq = LFQ(
            dim=config.dim,
            codebook_size=self.codebook_size,
            entropy_loss_weight=config.entropy_weight,
            commitment_loss_weight=config.commitment_weight,
            diversity_gamma=config.diversity_gamma,
        )

    def quantize(self, vectors: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        (codes, indices, _), terms = self.lfq(vectors, inv_temperature=self.config.inv_temperature, return_loss_breakdown=True)
        losses = {}
        if self.training and self.config.entropy_weight > 0:
            entropy = terms.per_sample_entropy - self.config.diversity_gamma * terms.batch_entropy
            losses["entropy"] = self.config.entropy_weight * entropy
        if self.training and self.config.commitment_weight > 0:
            losses["commitment"] = self.config.commitment_weight * terms.commitment
        return codes, indices, losses

    def lookup(self, indices: Tensor) -> Tensor:
        return self.lfq.indices_to_codes(indices)
