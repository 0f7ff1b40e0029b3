"""LFQ (`reverie.nn.quantizers.lfq`): 2^bits sign codes, MAGVIT-v2's entropy term with its sign (lower
for a batch spread over the codes with confident positions than for one collapsed onto a code),
equal to the paper's formula, the commitment term and the plain straight-through gradient."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from reverie.nn.quantizers import LFQConfig, LookupFreeQuantizer


def corners(quantizer: LookupFreeQuantizer) -> torch.Tensor:
    """(K, bits) every code, in index order."""
    return rearrange(quantizer.indices_to_latents(torch.arange(quantizer.codebook_size)[None]), "1 d k -> k d")


def test_the_codes_are_the_2_to_the_bits_sign_vectors_with_the_first_channel_most_significant():
    quantizer = LookupFreeQuantizer(LFQConfig(dim=3, bits=3))
    assert quantizer.codebook_size == 8
    codes = corners(quantizer)
    assert set(codes.flatten().tolist()) == {-1.0, 1.0} and torch.unique(codes, dim=0).shape[0] == 8
    quantized = quantizer(torch.tensor([[[0.3], [-2.0], [-0.1]], [[-0.3], [0.2], [5.0]]]))  # (2, 3, 1)
    assert quantized.indices.flatten().tolist() == [0b100, 0b011]
    assert quantized.latents[:, :, 0].tolist() == [[1.0, -1.0, -1.0], [-1.0, 1.0, 1.0]]


def test_the_entropy_term_is_lowest_for_confident_positions_spread_over_the_codes():
    quantizer = LookupFreeQuantizer(LFQConfig(dim=3, bits=3, entropy_weight=0.1))  # training mode
    every_code = rearrange(corners(quantizer), "k d -> 1 d k")

    def entropy_term(latents: torch.Tensor) -> float:
        return quantizer(latents).losses["entropy"].item()

    spread = entropy_term(repeat(every_code, "1 d k -> b d (r k)", b=4, r=4))  # each code alike, each position sure
    collapsed = entropy_term(repeat(every_code[..., :1], "1 d 1 -> b d n", b=4, n=32))  # every position on code 0
    unsure = entropy_term(torch.zeros(4, 3, 32))  # every position equally far from all codes
    assert spread < collapsed and spread < unsure
    assert math.isclose(spread, -0.1 * 3 * math.log(2), abs_tol=1e-3)  # -weight * H(uniform over 8 codes)
    assert math.isclose(collapsed, 0.0, abs_tol=1e-3) and math.isclose(unsure, 0.0, abs_tol=1e-3)


def test_the_entropy_term_is_magvit_v2s_per_sample_minus_batch_entropy():
    torch.manual_seed(0)
    quantizer = LookupFreeQuantizer(LFQConfig(dim=4, bits=4, entropy_weight=0.3, inv_temperature=1.0))
    latents = torch.randn(2, 4, 5, 5)
    vectors = rearrange(latents, "b d h w -> (b h w) d")
    probabilities = (-torch.cdist(vectors, corners(quantizer)) ** 2).softmax(dim=-1)  # p(k | z), tau = 1

    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(p * p.log()).sum(dim=-1)

    expected = 0.3 * (entropy(probabilities).mean() - entropy(probabilities.mean(dim=0)))
    torch.testing.assert_close(quantizer(latents).losses["entropy"], expected, rtol=0, atol=1e-4)


def test_the_commitment_term_and_the_plain_straight_through_gradient():
    torch.manual_seed(0)
    quantizer = LookupFreeQuantizer(LFQConfig(dim=4, bits=4, commitment_weight=0.4))
    latents = torch.randn(2, 4, 5, 5, requires_grad=True)
    quantized = quantizer(latents)
    torch.testing.assert_close(quantized.losses["commitment"], 0.4 * F.mse_loss(latents, latents.sign()))
    upstream = torch.randn(2, 4, 5, 5)
    (quantized.latents * upstream).sum().backward()
    torch.testing.assert_close(latents.grad, upstream)
