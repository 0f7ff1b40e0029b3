"""The reference codecs: H.264 lands near the bits per pixel asked and gains PSNR with them;
bilinear resampling gains PSNR with the values per pixel it keeps."""

from __future__ import annotations

import av
import av.logging
import numpy as np
import pytest
import torch

from reverie.shards.clip_tensors import frames_tensor
from reverie.tokenizers import metrics
from reverie.tokenizers.reference_codecs import bilinear_roundtrip, bilinear_size, h264_roundtrip


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """17 frames of 64 x 64: drifting smooth waves and a sliding square, uint8 RGB."""
    y, x = np.mgrid[0:64, 0:64]
    frames = []
    for t in range(17):
        waves = 60 * np.sin((x + 2 * t) / 7)[..., None] * np.array([1.0, 0.8, 0.6]) + 40 * np.cos((y - t) / 5)[..., None]
        frame = 110 + waves
        frame[12 + t : 30 + t, 8:26] = (220, 60, 90)
        frames.append(frame)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def mean_psnr(reconstruction: np.ndarray, clip: np.ndarray) -> float:
    return float(metrics.psnr(frames_tensor(reconstruction), frames_tensor(clip)).mean())


def test_h264_lands_within_a_factor_of_the_target_and_gains_psnr_with_bits(clip):
    results = [h264_roundtrip(clip, target, fps=8.0) for target in (0.3, 1.0)]
    for (reconstruction, achieved), target in zip(results, (0.3, 1.0)):
        assert reconstruction.shape == clip.shape and reconstruction.dtype == np.uint8
        assert target / 2 < achieved < target * 2
    low, high = (mean_psnr(reconstruction, clip) for reconstruction, _ in results)
    assert 20 < low < high


def test_h264_under_the_lowest_rate_it_reaches_reports_what_it_spent(clip):
    log_level = av.logging.get_level()
    reconstruction, achieved = h264_roundtrip(clip, 0.001, fps=8.0)
    assert reconstruction.shape == clip.shape
    assert achieved > 0.001  # x264's coarsest coding of this clip costs more; the figure says so
    assert av.logging.get_level() == log_level  # libav's log, switched on to read x264's refusal, is as it was


def test_h264_refuses_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        h264_roundtrip(np.zeros((3, 31, 32, 3), np.uint8), 0.5, fps=8.0)


def test_bilinear_gains_psnr_with_the_values_per_pixel_it_keeps(clip):
    scores = [mean_psnr(bilinear_roundtrip(clip, values), clip) for values in (0.05, 0.2, 0.75)]
    assert scores[0] < scores[1] < scores[2]
    assert np.array_equal(bilinear_roundtrip(clip, 3.0), clip)  # 3 values per pixel: the frames themselves


def test_bilinear_sizes_keep_the_aspect_ratio_and_the_values_asked():
    assert bilinear_size(64, 128, 0.75) == (32, 64)  # 3 * 32 * 64 / (64 * 128) = 0.75
    assert bilinear_size(64, 64, 1e-6) == (1, 1)
    with pytest.raises(ValueError, match=r"\(0, 3\]"):
        bilinear_size(64, 64, 4.0)


def test_bilinear_takes_uint8_frames_only():
    with pytest.raises(ValueError, match="uint8"):
        bilinear_roundtrip(torch.rand(2, 8, 8, 3).numpy(), 0.75)
