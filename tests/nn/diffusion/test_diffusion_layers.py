"""The diffusion layers of `reverie.nn.diffusion`: the noise-level embedding ([16] DIAMOND's Fourier
features, DiT's timestep code), [16] DIAMOND's AdaGroupNorm, and `expand_like`, which lays per-sample
or per-frame levels against the tensor they noise."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from reverie.nn.diffusion import AdaGroupNorm, NoiseLevelEmbedding
from reverie.nn.diffusion.broadcast import expand_like

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def seeded_embedding(seed: int, **options) -> NoiseLevelEmbedding:
    torch.manual_seed(seed)
    return NoiseLevelEmbedding(16, **options).double()


@pytest.mark.parametrize("frequencies", ["random", "geometric"])
def test_embedding_shape_follows_the_levels(frequencies):
    embedding = NoiseLevelEmbedding(16, features=8, frequencies=frequencies)
    assert embedding(torch.rand(3, 5)).shape == (3, 5, 16)
    assert embedding(torch.arange(4)).shape == (4, 16)


@pytest.mark.parametrize("frequencies, levels", [("random", [-0.5, 0.0, 0.5]), ("geometric", [0, 1, 999])])
def test_different_levels_embed_differently(frequencies, levels):
    embedded = seeded_embedding(0, frequencies=frequencies)(torch.tensor(levels, dtype=torch.float64))
    for first in range(len(levels)):
        for second in range(first + 1, len(levels)):
            assert (embedded[first] - embedded[second]).abs().max().item() > 1e-4


def test_geometric_frequencies_run_from_one_down_by_the_max_period():
    embedding = NoiseLevelEmbedding(8, features=8, frequencies="geometric", max_period=10_000.0)
    expected = torch.tensor([10_000.0 ** (-i / 4) for i in range(4)])
    torch.testing.assert_close(embedding.frequencies, expected)


def test_context_is_added_before_the_mlp():
    embedding = seeded_embedding(1)
    levels = torch.tensor([0.1, 0.2], dtype=torch.float64)
    context = random(2, 16, seed=2)
    with_context = embedding(levels, context)
    assert not torch.allclose(with_context, embedding(levels))
    angles = levels[:, None] * embedding.frequencies
    features = torch.cat([angles.cos(), angles.sin()], dim=-1) + context
    expected = embedding.fc2(F.silu(embedding.fc1(features)))
    torch.testing.assert_close(with_context, expected, rtol=0, atol=1e-12)


def test_odd_feature_count_is_refused():
    with pytest.raises(ValueError, match="features must be even .* got 7"):
        NoiseLevelEmbedding(16, features=7)


def test_unknown_frequencies_are_refused():
    with pytest.raises(ValueError, match="frequencies must be one of .* got 'linear'"):
        NoiseLevelEmbedding(16, frequencies="linear")


def test_random_frequencies_are_saved_with_the_module():
    saved, fresh = seeded_embedding(3), seeded_embedding(4)
    assert "frequencies" in saved.state_dict()
    levels = torch.tensor([-0.3, 0.4], dtype=torch.float64)
    fresh.fc1.load_state_dict(saved.fc1.state_dict())
    fresh.fc2.load_state_dict(saved.fc2.state_dict())
    assert not torch.allclose(fresh(levels), saved(levels)), "only the frequencies differ here"
    fresh.load_state_dict(saved.state_dict())
    assert torch.equal(fresh(levels), saved(levels))


def zeroed_norm(channels: int, condition_dim: int = 4, **options) -> AdaGroupNorm:
    norm = AdaGroupNorm(channels, condition_dim, **options).double()
    torch.nn.init.zeros_(norm.linear.weight)
    torch.nn.init.zeros_(norm.linear.bias)
    return norm


@pytest.mark.parametrize("channels, groups", [(64, 2), (96, 3), (16, 1)])
def test_zeroed_linear_gives_plain_group_norm(channels, groups):
    features = 3 * random(2, channels, 4, 4, seed=5) + 1
    output = zeroed_norm(channels)(features, random(2, 4, seed=6))
    torch.testing.assert_close(output, F.group_norm(features, groups, eps=1e-5), rtol=0, atol=1e-12)


def test_condition_scales_and_shifts_each_channel():
    channels = 32
    norm = AdaGroupNorm(channels, 4).double()
    features, condition = random(2, channels, 3, 3, seed=7), random(2, 4, seed=8)
    scale, shift = norm.linear(condition).split(channels, dim=1)  # the first half scales, the second shifts
    normalized = F.group_norm(features, 1, eps=1e-5)
    expected = (1 + scale[:, :, None, None]) * normalized + shift[:, :, None, None]
    output = norm(features, condition)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(output, normalized)


def test_one_channel_shift_moves_only_that_channel():
    norm = zeroed_norm(8, group_size=4)
    with torch.no_grad():
        norm.linear.bias[8 + 5] = 2.0  # the shift of channel 5
    features = random(1, 8, 3, 3, seed=9)
    moved = norm(features, random(1, 4, seed=10)) - F.group_norm(features, 2, eps=1e-5)
    assert moved[0, 5].sub(2.0).abs().max().item() < 1e-12
    assert moved[0, [0, 1, 2, 3, 4, 6, 7]].abs().max().item() < 1e-12


def test_adagroupnorm_names_a_wrong_channel_count():
    with pytest.raises(ValueError, match=r"AdaGroupNorm over 8 channels got features of shape \(2, 6, 3, 3\)"):
        AdaGroupNorm(8, 4)(torch.zeros(2, 6, 3, 3), torch.zeros(2, 4))


@pytest.mark.parametrize(
    "levels_shape, like_shape, expanded",
    [
        ((2,), (2, 3, 4, 4), (2, 1, 1, 1)),
        ((2, 5), (2, 5, 3, 4, 4), (2, 5, 1, 1, 1)),
        ((2, 5), (2, 5), (2, 5)),
    ],
)
def test_expand_like_pads_trailing_dims(levels_shape, like_shape, expanded):
    levels = torch.arange(math.prod(levels_shape)).reshape(levels_shape)
    result = expand_like(levels, torch.zeros(like_shape))
    assert result.shape == expanded
    assert torch.equal(result.reshape(levels_shape), levels)


@pytest.mark.parametrize("levels_shape, like_shape", [((3,), (2, 3, 4)), ((2, 4), (2, 5, 3)), ((2, 3, 4), (2, 3))])
def test_expand_like_refuses_levels_that_do_not_lead(levels_shape, like_shape):
    with pytest.raises(ValueError, match=re.escape(f"levels of shape {levels_shape} do not lead a tensor of shape {like_shape}")):
        expand_like(torch.zeros(levels_shape), torch.zeros(like_shape))
