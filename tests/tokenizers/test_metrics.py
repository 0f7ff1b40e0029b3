"""Tokenizer metrics against figures computed by hand: PSNR, SSIM's constants, latent values and
bits per pixel of a known setup, codebook usage and perplexity of known codes, timing."""

from __future__ import annotations

import math

import pytest
import torch

from reverie.tokenizers import metrics


def frames(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_psnr_of_identical_frames_is_the_documented_cap():
    clip = frames(2, 3, 3, 16, 16)
    assert torch.equal(metrics.psnr(clip, clip), torch.full((2, 3), metrics.PSNR_CAP_DB))


def test_psnr_is_ten_log10_of_one_over_the_mse_per_frame():
    clip = torch.full((1, 2, 3, 8, 8), 0.5)
    reconstruction = clip.clone()
    reconstruction[0, 0] += 0.05  # frame 0: every value 0.05 off, MSE 0.0025
    reconstruction[0, 1, :, :4] -= 0.1  # frame 1: half the values 0.1 off, MSE 0.005
    expected = torch.tensor([[10 * math.log10(1 / 0.0025), 10 * math.log10(1 / 0.005)]])
    torch.testing.assert_close(metrics.psnr(reconstruction, clip), expected, rtol=0, atol=1e-3)


def test_ssim_of_identical_frames_is_one_and_falls_as_noise_grows():
    clip = frames(4, 3, 32, 32)
    torch.testing.assert_close(metrics.ssim(clip, clip), torch.ones(4))
    noisy = [metrics.ssim((clip + sigma * torch.randn(clip.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1), clip).mean() for sigma in (0.02, 0.1, 0.3)]
    assert 1 > noisy[0] > noisy[1] > noisy[2] > 0


def test_ssim_of_two_flat_frames_is_the_luminance_term_with_k1():
    """Flat frames have no contrast or structure, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (K1 L)^2."""
    a, b, c1 = 0.5, 0.6, (metrics.SSIM_K1 * 1.0) ** 2
    value = metrics.ssim(torch.full((1, 3, 24, 24), b), torch.full((1, 3, 24, 24), a))
    torch.testing.assert_close(value, torch.tensor([(2 * a * b + c1) / (a**2 + b**2 + c1)]))


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="need one shape"):
        metrics.psnr(frames(1, 3, 8, 8), frames(1, 3, 8, 4))


def test_latent_values_and_bits_per_pixel_of_the_tiny_4x8x8_setup():
    """5 frames of 32 x 32 -> latents (4, 2, 4, 4); FSQ of 125 codes on the (2, 4, 4) tokens."""
    assert metrics.latent_values_per_pixel((4, 2, 4, 4), 5, 32, 32) == pytest.approx(128 / 5120)
    assert metrics.compression_ratio((4, 2, 4, 4), 5, 32, 32) == pytest.approx(3 * 5120 / 128)
    assert metrics.bits_per_pixel(2 * 4 * 4, 125, 5, 32, 32) == pytest.approx(math.log2(125) * 32 / 5120)
    assert metrics.bits_per_pixel(1, 2, 1, 1, 1) == 1.0  # one bit for one pixel


def test_codebook_usage_and_perplexity_over_several_batches():
    fraction_hit, perplexity = metrics.codebook_usage(torch.tensor([0, 0, 1, 1]), codebook_size=4)
    assert (fraction_hit, perplexity) == pytest.approx((0.5, 2.0))
    batches = [torch.tensor([[0, 1]]), torch.tensor([[[2, 2], [3, 3]]])]  # counts 1, 1, 2, 2 of 6; 4 of 8 codes
    entropy = -(2 * (1 / 6) * math.log(1 / 6) + 2 * (2 / 6) * math.log(2 / 6))
    assert metrics.codebook_usage(batches, codebook_size=8) == pytest.approx((0.5, math.exp(entropy)))


def test_timed_runs_in_inference_mode_and_returns_seconds():
    weight = torch.ones(3, requires_grad=True)
    result, seconds = metrics.timed(lambda: weight * 2, "cpu")
    assert result.is_inference() and not result.requires_grad
    assert 0 <= seconds < 1
