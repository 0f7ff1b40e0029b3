"""Codebook usage (`reverie.nn.quantizers.usage`): the share of codes hit and the perplexity of the
code histogram, from one code (1/K, 1) to all codes alike (1, K)."""

from __future__ import annotations

import pytest
import torch

from reverie.nn.quantizers import usage


def test_one_code_half_the_codes_and_all_codes():
    for indices, fraction, perplexity in [
        (torch.full((2, 4, 4), 3), 1 / 16, 1.0),
        (torch.arange(8).repeat(4).reshape(2, 4, 4), 0.5, 8.0),  # codes 0..7, each 4 times
        (torch.arange(16).reshape(1, 4, 4), 1.0, 16.0),
    ]:
        hit, spread = usage(indices, 16)
        assert hit.item() == pytest.approx(fraction) and spread.item() == pytest.approx(perplexity)


def test_uneven_use_has_a_perplexity_below_the_codes_hit():
    hit, spread = usage(torch.tensor([0, 0, 0, 1]), 4)
    assert hit.item() == 0.5 and 1.0 < spread.item() < 2.0


def test_indices_outside_the_codebook_are_an_error_naming_its_size():
    with pytest.raises(ValueError, match=r"codebook_size=16\), got 0..16"):
        usage(torch.tensor([0, 16]), 16)
