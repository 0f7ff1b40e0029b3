"""The noise-predicting DDPM denoiser: c_noise is ln(sigma_t) / 4 on the schedule, training scores F
against the noise that made x_t, and a network that knows the clean sample is sampled back to it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reverie.nn.diffusion import DDPMConfig
from reverie.nn.diffusion.epsilon_denoiser import EpsilonDenoiser


class NoiseOracle(nn.Module):
    """F that knows x0: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar), with abar read back from c_noise."""

    def __init__(self, clean: torch.Tensor):
        super().__init__()
        self.clean = nn.Parameter(clean, requires_grad=False)

    def forward(self, noisy: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        sigma = (4 * c_noise.double()).exp()[:, None, None, None]
        alpha_bar = 1 / (1 + sigma**2)
        return ((noisy.double() - alpha_bar.sqrt() * self.clean) / (1 - alpha_bar).sqrt()).to(noisy.dtype)


def clean_images() -> torch.Tensor:
    return torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.6 - 0.8


def test_c_noise_is_the_log_noise_to_signal_ratio_over_four_and_rises_with_the_level():
    denoiser = EpsilonDenoiser(NoiseOracle(clean_images()), DDPMConfig(beta_schedule="linear"))
    levels = torch.tensor([0, 10, 500, 999])
    alpha_bar = denoiser.schedule.scheduler.alphas_cumprod[levels].double()
    expected = ((1 - alpha_bar) / alpha_bar).sqrt().log() / 4
    assert torch.allclose(denoiser.c_noise(levels).double(), expected, rtol=1e-5)
    assert (denoiser.c_noise(torch.arange(1000)).diff() > 0).all()


def test_training_scores_the_noise_that_made_x_t():
    clean = clean_images()
    oracle = EpsilonDenoiser(NoiseOracle(clean), DDPMConfig(beta_schedule="linear"))
    step = oracle.training_step(clean, torch.Generator().manual_seed(1))
    assert step.loss.shape == (3,) and step.levels.shape == (3,)
    assert step.loss.max() < 1e-6  # c_noise float32 rounding only
    wrong = EpsilonDenoiser(NoiseOracle(-clean), DDPMConfig(beta_schedule="linear"))
    # the wrong x0 shows least at high levels, where x_t is nearly all noise
    assert wrong.training_step(clean, torch.Generator().manual_seed(1)).loss.max() > 1.0


@pytest.mark.parametrize("steps", [1, 3, 20])
def test_a_network_that_knows_x0_is_sampled_back_to_it(steps):
    clean = clean_images()
    denoiser = EpsilonDenoiser(NoiseOracle(clean), DDPMConfig(beta_schedule="linear")).double()
    sample = denoiser.sample(tuple(clean.shape), steps, torch.Generator().manual_seed(2))
    assert sample.dtype == torch.float64
    assert torch.allclose(sample, clean, atol=1e-3)
