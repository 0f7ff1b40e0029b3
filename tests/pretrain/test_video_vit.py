"""The video ViT: tubelet grids, 3D RoPE's relative positions, learned positions, the predictor."""

from __future__ import annotations

import pytest
import torch

from reverie.pretrain.video_vit import Predictor, Rotary3D, VideoViT, token_coordinates, token_grid


def rotated(rotary: Rotary3D, heads: torch.Tensor, position: list[float]) -> torch.Tensor:
    return Rotary3D.rotate(heads, rotary.rotation(torch.tensor([[position]])))


def test_rope_dot_products_depend_only_on_the_offset():
    torch.manual_seed(0)
    rotary = Rotary3D(head_dim=32)  # 10 dims per axis, 2 left unrotated
    query, key = torch.randn(2, 1, 1, 1, 32)
    offset = [1.0, -3.0, 2.0]
    for shift in ([0.0, 0.0, 0.0], [5.0, 2.0, 7.0], [3.0, 11.0, -4.0]):
        a = [1.0 + s for s in shift]
        b = [a[i] + offset[i] for i in range(3)]
        score = (rotated(rotary, query, a) * rotated(rotary, key, b)).sum()
        reference = (rotated(rotary, query, [1.0, 1.0, 1.0]) * rotated(rotary, key, [2.0, -2.0, 3.0])).sum()
        torch.testing.assert_close(score, reference, rtol=0, atol=1e-5)
    far = (rotated(rotary, query, [0.0, 0.0, 0.0]) * rotated(rotary, key, [0.0, 0.0, 4.0])).sum()
    near = (rotated(rotary, query, [0.0, 0.0, 0.0]) * rotated(rotary, key, [0.0, 0.0, 0.0])).sum()
    assert not torch.isclose(far, near)  # the score does see the offset


def test_rope_keeps_norms_and_is_the_identity_at_the_origin():
    rotary = Rotary3D(head_dim=16)
    heads = torch.randn(1, 2, 1, 16)
    torch.testing.assert_close(rotated(rotary, heads, [0.0, 0.0, 0.0]), heads)
    torch.testing.assert_close(rotated(rotary, heads, [3.0, 1.0, 9.0]).norm(dim=-1), heads.norm(dim=-1))
    passed = rotated(rotary, heads, [3.0, 1.0, 9.0])[..., 12:]  # 16 // 3 // 2 * 2 = 4 per axis
    torch.testing.assert_close(passed, heads[..., 12:], rtol=0, atol=0)


def test_token_numbering_matches_the_tubelet_grid():
    assert token_grid((2, 16, 3, 64, 96), patch_size=16, tubelet_size=2) == (8, 4, 6)
    coordinates = token_coordinates(torch.tensor([0, 5, 6, 24 + 7]), (8, 4, 6))
    assert coordinates.tolist() == [[0, 0, 0], [0, 0, 5], [0, 1, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="15 frames"):
        token_grid((1, 15, 3, 64, 64), patch_size=16, tubelet_size=2)


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_the_encoder_gives_features_of_the_kept_tokens(positions):
    encoder = VideoViT(32, depth=2, num_heads=4, patch_size=8, tubelet_size=2, positions=positions, position_grid=(2, 4, 4))
    clip = torch.randn(2, 4, 3, 32, 32)
    everything = encoder(clip)
    assert everything.shape == (2, 2 * 4 * 4, 32)
    keep = torch.tensor([[0, 3, 17, 31], [1, 2, 4, 8]])
    assert encoder(clip, keep).shape == (2, 4, 32)
    if positions == "learned":
        assert encoder.embed.positions.table.shape == (2, 4, 4, 32)
        with pytest.raises(ValueError, match="learned positions cover 2x4x4"):
            encoder(torch.randn(1, 4, 3, 40, 32))


def test_the_predictor_returns_encoder_width_features_at_the_targets():
    predictor = Predictor(embed_dim=32, predictor_dim=16, depth=1, num_heads=2, num_mask_tokens=2)
    context = torch.randn(2, 5, 32)
    context_index = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    target_index = torch.tensor([[10, 11, 12], [0, 1, 2]])
    out = predictor(context, context_index, target_index, (2, 4, 4), mask_set=1)
    assert out.shape == (2, 3, 32)
    assert torch.count_nonzero(predictor.mask_tokens) == 0  # zero at the start, as in V-JEPA 2
