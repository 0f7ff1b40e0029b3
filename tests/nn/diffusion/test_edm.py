"""EDM preconditioning, training noise and Euler sampling (`reverie.nn.diffusion.edm`), against
[16] DIAMOND's formulas and EDM's (Karras et al. 2022) eq. 5 and 7, computed here independently."""

from __future__ import annotations

import math

import pytest
import torch

from reverie.nn.diffusion import (
    EDMConfig,
    EDMDenoiser,
    add_training_noise,
    conditioners,
    euler_sample,
    karras_sigmas,
    sample_training_sigma,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIGMA_DATA, SIGMA_OFFSET = 0.5, 0.3


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sigma_from_c_noise(c_noise: torch.Tensor) -> torch.Tensor:
    """Invert c_noise = ln(s) / 4, s = sqrt(sigma^2 + sigma_offset^2)."""
    offset_sigma = (4 * c_noise).exp()
    return (offset_sigma**2 - SIGMA_OFFSET**2).sqrt()


class OracleNetwork(torch.nn.Module):
    """F that knows the clean batch and outputs EDM's target (x - c_skip noisy) / c_out exactly."""

    def __init__(self, clean: torch.Tensor):
        super().__init__()
        self.clean = clean

    def forward(self, scaled_noisy: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        offset_sigma = (4 * c_noise).exp()[:, None, None, None]
        total = offset_sigma**2 + SIGMA_DATA**2
        noisy = scaled_noisy * total.sqrt()
        c_skip, c_out = SIGMA_DATA**2 / total, offset_sigma * SIGMA_DATA / total.sqrt()
        return (self.clean - c_skip * noisy) / c_out


@pytest.mark.parametrize("sigma", [2e-3, 0.1, 0.7, 5.0, 20.0])
def test_conditioners_are_diamonds_formulas(sigma):
    c = conditioners(torch.tensor([sigma], dtype=torch.float64), EDMConfig())
    s = math.sqrt(sigma**2 + SIGMA_OFFSET**2)
    expected = {
        "c_in": 1 / math.sqrt(s**2 + SIGMA_DATA**2),
        "c_skip": SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2),
        "c_out": s * SIGMA_DATA / math.sqrt(s**2 + SIGMA_DATA**2),
        "c_noise": math.log(s) / 4,
    }
    for name, value in expected.items():
        assert getattr(c, name).item() == pytest.approx(value, rel=1e-12), name


def test_skip_and_output_of_the_target_give_back_the_clean_data():
    clean = torch.randn(4, 3, 5, 5, generator=seeded(0), dtype=torch.float64)
    noisy = clean + torch.randn(clean.shape, generator=seeded(1), dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.5, 2.0, 15.0], dtype=torch.float64)
    c = conditioners(sigma, EDMConfig())
    c_skip, c_out = c.c_skip[:, None, None, None], c.c_out[:, None, None, None]
    target = (clean - c_skip * noisy) / c_out
    torch.testing.assert_close(c_skip * noisy + c_out * target, clean, rtol=0, atol=1e-12)


def test_training_loss_is_zero_and_denoised_is_clean_for_a_network_that_outputs_the_target():
    clean = torch.randn(6, 3, 4, 4, generator=seeded(2), dtype=torch.float64)
    denoiser = EDMDenoiser(OracleNetwork(clean))
    step = denoiser.training_step(clean, generator=seeded(3))
    assert step.loss.shape == (6,)
    assert step.loss.max().item() < 1e-20
    torch.testing.assert_close(step.denoised, clean, rtol=0, atol=1e-10)


def test_training_loss_is_positive_for_a_network_that_misses_the_target():
    clean = torch.randn(6, 3, 4, 4, generator=seeded(2), dtype=torch.float64)
    denoiser = EDMDenoiser(OracleNetwork(clean + 0.1))
    assert denoiser.training_step(clean, generator=seeded(3)).loss.min().item() > 1e-4


def test_denoiser_wraps_the_network_as_edm_eq_7():
    clean = torch.randn(3, 2, 4, 4, generator=seeded(4), dtype=torch.float64)
    noisy = clean + 0.8 * torch.randn(clean.shape, generator=seeded(5), dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.8, 3.0], dtype=torch.float64)
    torch.testing.assert_close(EDMDenoiser(OracleNetwork(clean))(noisy, sigma), clean, rtol=0, atol=1e-10)


def test_the_network_sees_c_noise_of_the_sigma_given():
    seen = []

    def network(scaled_noisy, c_noise):
        seen.append(c_noise)
        return torch.zeros_like(scaled_noisy)

    sigma = torch.tensor([0.02, 1.5], dtype=torch.float64)
    EDMDenoiser(network)(torch.zeros(2, 1, 2, 2, dtype=torch.float64), sigma)
    torch.testing.assert_close(sigma_from_c_noise(seen[0]), sigma, rtol=1e-10, atol=0)


def test_training_sigmas_are_log_normal_and_clipped():
    config = EDMConfig()
    sigma = sample_training_sigma(200_000, config, generator=seeded(6), dtype=torch.float64)
    assert sigma.min().item() >= config.train_sigma_min
    assert sigma.max().item() == config.train_sigma_max  # about 0.2 % lie above 20 and are clipped
    log_sigma = sigma.log()
    assert log_sigma.mean().item() == pytest.approx(-0.4, abs=0.03)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.03)


def test_offset_noise_is_constant_over_the_image_per_sample_and_channel():
    config = EDMConfig()
    zeros = torch.zeros(2000, 3, 4, 5, dtype=torch.float64)
    noisy = add_training_noise(zeros, torch.full((2000,), 1e-12, dtype=torch.float64), config, seeded(7))
    offsets = noisy[:, :, :1, :1]
    assert (noisy - offsets).abs().max().item() < 1e-9
    assert offsets.std().item() == pytest.approx(SIGMA_OFFSET, rel=0.05)
    assert (offsets[:, 0] - offsets[:, 1]).abs().min().item() > 0


def test_training_noise_has_the_drawn_sigma_on_top_of_the_offset():
    config = EDMConfig(sigma_offset_noise=0.0)
    zeros = torch.zeros(8, 2, 32, 32, dtype=torch.float64)
    sigma = torch.linspace(0.1, 4.0, 8, dtype=torch.float64)
    noisy = add_training_noise(zeros, sigma, config, seeded(8))
    measured = noisy.flatten(1).std(dim=1)
    torch.testing.assert_close(measured / sigma, torch.ones(8, dtype=torch.float64), rtol=0, atol=0.08)


def test_karras_sigmas_follow_edm_eq_5():
    sigma_min, sigma_max, rho, steps = 2e-3, 5.0, 7.0, 5
    sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho, dtype=torch.float64)
    assert sigmas.shape == (steps + 1,)
    assert sigmas[0].item() == pytest.approx(sigma_max, rel=1e-12)
    assert sigmas[-2].item() == pytest.approx(sigma_min, rel=1e-12)
    assert sigmas[-1].item() == 0
    assert (sigmas[1:] < sigmas[:-1]).all()
    middle = 2
    expected = (sigma_max ** (1 / rho) + middle / (steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    assert sigmas[middle].item() == pytest.approx(expected, rel=1e-12)


def test_euler_sampling_lands_on_the_denoised_value_at_the_last_step():
    target = torch.randn(2, 3, 4, 4, generator=seeded(9), dtype=torch.float64)
    sigmas = karras_sigmas(4, 2e-3, 5.0, 7.0, dtype=torch.float64)
    sample = euler_sample(lambda noisy, sigma: target, target.shape, sigmas, generator=seeded(10))
    torch.testing.assert_close(sample, target, rtol=0, atol=1e-12)


def test_euler_sampling_is_repeatable_with_a_seed():
    sigmas = karras_sigmas(3, 2e-3, 5.0, 7.0)

    def shrink(noisy, sigma):
        return noisy / (1 + sigma[:, None, None, None] ** 2)

    first = euler_sample(shrink, (2, 3, 4, 4), sigmas, generator=seeded(11))
    again = euler_sample(shrink, (2, 3, 4, 4), sigmas, generator=seeded(11))
    other = euler_sample(shrink, (2, 3, 4, 4), sigmas, generator=seeded(12))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"sigma_min": 5.0, "sigma_max": 1.0}, "sigma_min < sigma_max"),
        ({"sigma_min": 0.0}, "sigma_min < sigma_max"),
        ({"train_sigma_min": 0.0}, "train_sigma_min < train_sigma_max"),
        ({"train_sigma_max": 1e-3}, "train_sigma_min < train_sigma_max"),
        ({"denoising_steps": 0}, "denoising_steps"),
    ],
)
def test_edm_config_names_the_bad_field(fields, named):
    with pytest.raises(ValueError, match=named):
        EDMConfig(**fields)
