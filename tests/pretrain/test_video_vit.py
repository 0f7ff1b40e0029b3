"""The video ViT: tubelet grids, learned positions, the predictor (3D RoPE itself: tests/nn/test_rotary.py)."""

from __future__ import annotations

import pytest
import torch

from reverie.pretrain.video_vit import Predictor, VideoViT, token_coordinates, token_grid


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
