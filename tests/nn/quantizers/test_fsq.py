"""FSQ (`reverie.nn.quantizers.fsq`): prod(levels) codes numbered in mixed radix, each channel on its
own L_i levels, and indices that give exactly the latents back, for Cosmos' levels and a small
mixed odd/even set."""

from __future__ import annotations

import math

import pytest
import torch
from einops import rearrange, repeat

from reverie.nn.quantizers import COSMOS_LEVELS, FiniteScalarQuantizer, FSQConfig

LEVELS = [COSMOS_LEVELS, (3, 4)]
IDS = ["cosmos", "3x4"]


@pytest.mark.parametrize("levels", LEVELS, ids=IDS)
def test_the_codes_are_prod_levels_distinct_grid_points_numbered_in_mixed_radix(levels):
    quantizer = FiniteScalarQuantizer(FSQConfig(dim=len(levels), levels=levels))  # no projection
    assert quantizer.codebook_size == math.prod(levels) == {6: 64_000, 2: 12}[len(levels)]
    every_index = torch.arange(quantizer.codebook_size)
    codes = rearrange(quantizer.indices_to_latents(every_index[None]), "1 d k -> k d")
    assert torch.unique(codes, dim=0).shape[0] == quantizer.codebook_size
    levels_tensor = torch.tensor(levels)
    half_width = levels_tensor // 2
    level_numbers = codes * half_width + half_width  # l_i in [0, L_i)
    assert torch.equal(level_numbers, level_numbers.round()) and (level_numbers >= 0).all() and (level_numbers < levels_tensor).all()
    radix = torch.cumprod(torch.tensor([1, *levels[:-1]]), dim=0)  # the first channel is the least significant digit
    assert torch.equal((level_numbers.round().long() * radix).sum(dim=1), every_index)


@pytest.mark.parametrize("levels", LEVELS, ids=IDS)
def test_forward_reaches_every_level_of_every_channel_and_its_indices_give_the_latents_back_exactly(levels):
    quantizer = FiniteScalarQuantizer(FSQConfig(dim=len(levels), levels=levels))
    sweep = repeat(torch.linspace(-4, 4, 2001), "n -> 1 d n", d=len(levels))
    quantized = quantizer(sweep)
    for channel, level in enumerate(levels):
        assert torch.unique(quantized.latents[0, channel]).numel() == level
    assert torch.equal(quantizer.indices_to_latents(quantized.indices), quantized.latents)


def test_far_inputs_stay_on_the_levels():
    quantizer = FiniteScalarQuantizer(FSQConfig(dim=2, levels=(3, 4)))
    quantized = quantizer(1e3 * torch.randn(4, 2, 16, 16))
    assert 0 <= quantized.indices.min() and quantized.indices.max() < 12
    assert torch.unique(quantized.latents[:, 0]).numel() <= 3 and torch.unique(quantized.latents[:, 1]).numel() <= 4


def test_a_projection_in_and_out_when_dim_is_not_the_number_of_levels():
    torch.manual_seed(0)
    quantizer = FiniteScalarQuantizer(FSQConfig(dim=16))  # Cosmos' 6 levels
    assert quantizer.codebook_size == 64_000 and quantizer.fsq.has_projections
    quantized = quantizer(torch.randn(2, 16, 3, 4, 4))
    torch.testing.assert_close(quantizer.indices_to_latents(quantized.indices), quantized.latents)
    assert sum(parameter.numel() for parameter in quantizer.parameters()) == 2 * 16 * 6 + 6 + 16
