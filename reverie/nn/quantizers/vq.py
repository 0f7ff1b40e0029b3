"""Vector quantization with a learned codebook: VQ-VAE (van den Oord et al. 2017, "Neural Discrete
Representation Learning"), the bottleneck of [18] Genie's video tokenizer and [14] IRIS' discrete
autoencoder.

Each position's vector z (projected to `codebook_dim` when that differs from D) takes its nearest
code, e = argmin_k ||z - e_k||, or with `cosine_similarity` the most similar unit code after
l2-normalising z and the codes (ViT-VQGAN, Yu et al. 2022). The gradient passes straight through,
z + sg[e - z] (VQ-VAE Sec. 3.2; the library's default rotation trick is turned off). The loss
term is VQ-VAE's commitment, eq. 3,

    losses["commitment"] = beta * ||z - sg[e]||^2    (mean over positions and channels; unit z
                                                      and e with `cosine_similarity`)

and the codebook follows the encoder by exponential moving averages rather than by eq. 3's
codebook term (VQ-VAE Appendix A.1): N_k <- gamma N_k + (1 - gamma) n_k, m_k <- gamma m_k +
(1 - gamma) sum of the z assigned to k, e_k = m_k / N_k, with gamma = `decay`.

Two guards against codebook collapse, both in training mode only:

- dead-code restart (`dead_code_threshold`; random restarts, Dhariwal et al. 2020): after each
  update, a code whose moving-average count N_k of positions per batch is below the threshold is
  replaced by a vector drawn from the batch and its count reset to the threshold. A code in use
  dies after about log(threshold / N_k) / log(gamma) batches without positions; a restarted one
  survives a batch only if it takes at least `threshold` positions in it. Counts start at 1, so a
  threshold above 1 restarts every code the first training batch leaves unused;
- codebook dropout (`codebook_dropout`): each (position, code) pair is hidden from the nearest-code
  search with this probability, so a position now and then takes its second or third nearest code
  and codes that never win get vectors and updates. A position whose codes are all hidden keeps
  them all.

vector-quantize-pytorch's VectorQuantize gives the search, the straight-through estimator, the
commitment loss, the moving averages and the restart (its `threshold_ema_dead_code`). It has no
codebook dropout: its codebook takes the rule that turns similarities into a choice as an argument
(`gumbel_sample`), which VectorQuantize does not expose, so `hide_codes` below is set as that rule
on its codebook after construction. That codebook attribute is not the library's public API, which
is why the dependency is pinned to one minor version; the dropout test fails if it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import Tensor
from vector_quantize_pytorch import VectorQuantize

from reverie.nn.quantizers.base import Quantizer, register, require


@dataclass
class VQConfig:
    dim: int  # D, the encoder's channel width
    codebook_size: int = 1024  # K; [18] Genie's tokenizer has 1024 codes, [14] IRIS 512
    codebook_dim: int | None = None  # width of a code, projected to and from D; None: D (Genie: 32)
    cosine_similarity: bool = False  # nearest = most similar after l2-normalising inputs and codes
    commitment_weight: float = 0.25  # beta of VQ-VAE eq. 3
    decay: float = 0.99  # gamma of the codebook's moving averages (VQ-VAE Appendix A.1)
    dead_code_threshold: float = 0.0  # restart codes whose average count per batch falls below it; 0: never
    codebook_dropout: float = 0.0  # training: probability a code is hidden from a position's search

    def __post_init__(self):
        require(self.dim >= 1, "vq", f"dim must be >= 1, got {self.dim}")
        require(self.codebook_size >= 2, "vq", f"codebook_size must be >= 2, got {self.codebook_size}")
        require(self.codebook_dim is None or self.codebook_dim >= 1, "vq", f"codebook_dim must be >= 1 or None, got {self.codebook_dim}")
        require(self.commitment_weight >= 0, "vq", f"commitment_weight must be >= 0, got {self.commitment_weight}")
        require(0 <= self.decay < 1, "vq", f"decay must be in [0, 1), got {self.decay}")
        require(self.dead_code_threshold >= 0, "vq", f"dead_code_threshold must be >= 0, got {self.dead_code_threshold}")
        require(0 <= self.codebook_dropout < 1, "vq", f"codebook_dropout must be in [0, 1), got {self.codebook_dropout}")


def hide_codes(choose: Callable, probability: float, similarity: Tensor, *, training: bool, **options):
    """The library's code choice over similarity (..., N, K), each entry hidden with `probability` in training."""
    if training and probability > 0:
        hidden = torch.rand_like(similarity) < probability
        hidden &= ~hidden.all(dim=-1, keepdim=True)
        similarity = similarity.masked_fill(hidden, float("-inf"))
    return choose(similarity, training=training, **options)


@register
class VectorQuantizer(Quantizer):
    name = "vq"
    config_class = VQConfig

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.codebook_size = config.codebook_size
        self.vq = VectorQuantize(
            dim=config.dim,
            codebook_size=config.codebook_size,
            codebook_dim=config.codebook_dim,
            use_cosine_sim=config.cosine_similarity,
            commitment_weight=config.commitment_weight,
            decay=config.decay,
            threshold_ema_dead_code=config.dead_code_threshold,
            rotation_trick=False,
        )
        codebook = self.vq._codebook
        codebook.gumbel_sample = partial(hide_codes, codebook.gumbel_sample, config.codebook_dropout)

    @property
    def codebook(self) -> Tensor:
        """(K, codebook_dim) the codes, unit vectors with `cosine_similarity`."""
        return self.vq.codebook

    def quantize(self, vectors: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        codes, indices, _, terms = self.vq(vectors, return_loss_breakdown=True)
        losses = {}
        if self.training and self.config.commitment_weight > 0:
            losses["commitment"] = self.config.commitment_weight * terms.commitment
        return codes, indices, losses

    def lookup(self, indices: Tensor) -> Tensor:
        return self.vq.get_output_from_indices(indices)
