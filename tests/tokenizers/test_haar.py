"""The 3D Haar wavelet patcher: lossless, causal in time, and shaped as the tokenizer needs."""

from __future__ import annotations

import pytest
import torch

from reverie.tokenizers.haar import HaarShapeError, patch, unpatch


@pytest.mark.parametrize("patch_size", [1, 2, 4, 8])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_the_patcher_followed_by_its_inverse_is_the_identity(patch_size, k):
    torch.manual_seed(0)
    video = torch.randn(2, 3, 1 + k * patch_size, 2 * patch_size, 3 * patch_size, dtype=torch.float64)
    bands = patch(video, patch_size)
    assert bands.shape == (2, 3 * patch_size**3, 1 + k, 2, 3)
    torch.testing.assert_close(unpatch(bands, patch_size), video, rtol=0, atol=1e-12)


def test_the_low_band_is_the_mean_and_the_first_frame_is_alone():
    torch.manual_seed(0)
    video = torch.rand(1, 3, 9, 8, 8, dtype=torch.float64)
    bands = patch(video, 4)
    low = bands[:, :3]  # band 0 of the last level over band 0 of the first: low in t, h and w twice
    torch.testing.assert_close(low[:, :, 0, 0, 0], video[:, :, 0, :4, :4].mean(dim=(-2, -1)))
    torch.testing.assert_close(low[:, :, 1, 1, 0], video[:, :, 1:5, 4:, :4].mean(dim=(-3, -2, -1)))
    torch.testing.assert_close(patch(video[:, :, :5], 4), bands[:, :, :2], rtol=0, atol=1e-12)


def test_a_still_clip_has_no_temporal_detail():
    still = torch.rand(1, 3, 1, 4, 4, dtype=torch.float64).expand(-1, -1, 5, -1, -1)
    bands = patch(still, 2)
    temporal_high = bands.unflatten(1, (2, 2, 2, 3))[:, 1]  # channels (band_t, band_h, band_w, c): high in time
    assert temporal_high.abs().max() < 1e-12


def test_sizes_the_patcher_cannot_take_are_named():
    with pytest.raises(HaarShapeError, match="6 frames of 8x8"):
        patch(torch.rand(1, 3, 6, 8, 8), 4)
    with pytest.raises(HaarShapeError, match="5 frames of 8x6"):
        patch(torch.rand(1, 3, 5, 8, 6), 4)
    with pytest.raises(HaarShapeError, match="patch_size 3"):
        patch(torch.rand(1, 3, 4, 6, 6), 3)
