"""The quantizer interface (`reverie.nn.quantizers.base`), the same for FSQ, VQ and LFQ: channel-first
latents on 1D, 2D and 3D grids, indices that give the latents back, straight-through gradients, a
learnable input that the bottleneck lets reach a target, and errors that name the option."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from reverie.cli.listing import REGISTERING_MODULES
from reverie.cli.main import main
from reverie.nn.quantizers import QUANTIZERS, Quantizer, QuantizerError, build_quantizer

DIM = 8
SMALL = {  # each with projections in and out of its code width
    "fsq": {"levels": [5, 5, 5, 5]},
    "vq": {"codebook_size": 32, "codebook_dim": 4},
    "lfq": {"bits": 5},
}
GRIDS = [(7,), (4, 5), (2, 3, 4)]  # (n,), (h, w), (t, h, w)


def small(name: str) -> Quantizer:
    torch.manual_seed(0)
    return build_quantizer(name, DIM, **SMALL[name])


def test_the_registry_holds_the_three_and_reverie_list_shows_them(capsys):
    assert QUANTIZERS.names() == ["fsq", "lfq", "vq"]
    assert "reverie.nn.quantizers" in REGISTERING_MODULES  # so that a fresh `reverie list` has them
    assert main(["list", "quantizer"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("fsq", "lfq", "vq"))


@pytest.mark.parametrize("grid", GRIDS, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_quantizer_keeps_the_layout_of_any_grid_and_its_indices_give_the_latents_back(name, grid):
    quantizer = small(name)
    latents = torch.randn(2, DIM, *grid)
    quantized = quantizer(latents)  # training mode
    assert quantized.latents.shape == latents.shape
    assert quantized.indices.shape == (2, *grid) and quantized.indices.dtype == torch.int64
    assert 0 <= quantized.indices.min() and quantized.indices.max() < quantizer.codebook_size
    assert all(loss.ndim == 0 and torch.isfinite(loss) for loss in quantized.losses.values())
    quantizer.eval()
    quantized = quantizer(latents)
    assert quantized.losses == {}
    torch.testing.assert_close(quantizer.indices_to_latents(quantized.indices), quantized.latents)


def test_positions_keep_their_place_through_the_flattening():
    quantizer = small("vq").eval()
    video = torch.randn(2, DIM, 3, 4, 5)
    whole = quantizer(video).indices
    one_frame = quantizer(video[:, :, 1:2, 2:3, 3:4]).indices  # the same vector alone
    assert whole[:, 1, 2, 3].tolist() == one_frame[:, 0, 0, 0].tolist()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradients_pass_straight_through_to_every_input_position(name):
    quantizer = small(name)
    latents = torch.randn(2, DIM, 3, 4, requires_grad=True)
    upstream = torch.randn(2, DIM, 3, 4)
    (quantizer(latents).latents * upstream).sum().backward()
    assert torch.isfinite(latents.grad).all()
    assert (latents.grad.abs().sum(dim=1) > 0).all()


WITHOUT_PROJECTIONS = {"fsq": {"levels": [5] * DIM}, "vq": {"codebook_size": 32}, "lfq": {"bits": DIM}}


def target_on_four_vectors(name: str, quantizer: Quantizer) -> torch.Tensor:
    """(2, DIM, 4, 4), each position one of four vectors: codes of FSQ's and LFQ's fixed grids;
    for VQ, whose codes follow its inputs by moving averages, any four vectors."""
    generator = torch.Generator().manual_seed(1)
    if name == "vq":
        vectors = torch.randn(4, DIM, generator=generator)
    else:
        indices = torch.randperm(quantizer.codebook_size, generator=generator)[:4]
        vectors = rearrange(quantizer.indices_to_latents(indices[None]), "1 d n -> n d")
    return rearrange(vectors[torch.randint(4, (2, 4, 4), generator=generator)], "b h w d -> b d h w")


@pytest.mark.parametrize("name", sorted(WITHOUT_PROJECTIONS))
def test_a_learnable_input_quantized_reaches_a_target(name):
    torch.manual_seed(0)
    quantizer = build_quantizer(name, DIM, **WITHOUT_PROJECTIONS[name])
    target = target_on_four_vectors(name, quantizer)
    inputs = torch.nn.Parameter(torch.randn(2, DIM, 4, 4))
    optimizer = torch.optim.Adam([inputs], lr=0.05)
    errors = []
    for _ in range(100):
        quantized = quantizer(inputs)
        error = F.mse_loss(quantized.latents, target)
        optimizer.zero_grad()
        (error + sum(quantized.losses.values())).backward()
        optimizer.step()
        errors.append(error.item())
    assert errors[-1] < 0.2 * errors[0], errors[::10]


@pytest.mark.parametrize(
    "name, options, option",
    [
        ("fsq", {"codebook_size": 64}, "codebook_size"),
        ("fsq", {"levels": [8, 2]}, "levels"),
        ("fsq", {"levels": []}, "levels"),
        ("vq", {"codebook_dropout": 1.5}, "codebook_dropout"),
        ("vq", {"cosine": True}, "cosine"),
        ("vq", {"codebook_size": 1}, "codebook_size"),
        ("lfq", {"bits": 0}, "bits"),
        ("lfq", {"entropy_weight": -1.0}, "entropy_weight"),
    ],
)
def test_build_quantizer_errors_name_the_quantizer_and_the_bad_option(name, options, option):
    with pytest.raises(QuantizerError, match=rf"quantizer '{name}'.*{option}"):
        build_quantizer(name, DIM, **options)


def test_an_unknown_quantizer_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown quantizer 'pq'; known: fsq, lfq, vq"):
        build_quantizer("pq", DIM)


def test_latents_of_another_width_and_indices_out_of_range_are_errors_naming_the_quantizer():
    quantizer = small("fsq")
    with pytest.raises(QuantizerError, match=rf"quantizer 'fsq': latents must be \(B, {DIM}, \*grid\).*\(2, 3, 4, 4\)"):
        quantizer(torch.randn(2, 3, 4, 4))
    with pytest.raises(QuantizerError, match=r"quantizer 'fsq': indices must lie in \[0, 625\), got 0..625"):
        quantizer.indices_to_latents(torch.tensor([[0, 625]]))
