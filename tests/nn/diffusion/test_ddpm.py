"""The DDPM v-prediction schedule (`reverie.nn.diffusion.ddpm`): v-prediction's inverses (Salimans &
Ho 2022, Sec. 4), per-frame levels as diffusion forcing uses them, DDIM steps (Song et al. 2021,
eq. 12) and the ancestral sampler, in float64 where two code paths are compared."""

from __future__ import annotations

import pytest
import torch

from reverie.nn.diffusion import CLEAN, DDPMConfig, VPredictionSchedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LEVELS = 100


@pytest.fixture(scope="module")
def schedule() -> VPredictionSchedule:
    return VPredictionSchedule(DDPMConfig(train_levels=LEVELS))


def random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_clean_and_noise_come_back_from_the_velocity(schedule):
    x0, noise = random(4, 3, 5, 5, seed=0), random(4, 3, 5, 5, seed=1)
    levels = torch.tensor([CLEAN, 0, 50, LEVELS - 1])
    noisy = schedule.add_noise(x0, noise, levels)
    velocity = schedule.velocity(x0, noise, levels)
    torch.testing.assert_close(schedule.clean_from_velocity(noisy, velocity, levels), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(schedule.noise_from_velocity(noisy, velocity, levels), noise, rtol=0, atol=1e-12)


def test_per_frame_levels_noise_each_frame_at_its_own_level(schedule):
    x0, noise = random(2, 3, 4, 6, 6, seed=2), random(2, 3, 4, 6, 6, seed=3)
    levels = torch.tensor([[CLEAN, 40, LEVELS - 1], [LEVELS - 1, CLEAN, 10]])  # (B, T)
    noisy = schedule.add_noise(x0, noise, levels)
    assert noisy.shape == x0.shape
    assert torch.equal(noisy[0, 0], x0[0, 0])
    assert torch.equal(noisy[1, 1], x0[1, 1])
    torch.testing.assert_close(noisy[0, 2], noise[0, 2], rtol=0, atol=0.05)
    for sample, frame in [(0, 1), (1, 2)]:
        one_frame = schedule.add_noise(x0[sample, frame][None], noise[sample, frame][None], levels[sample, frame][None])
        torch.testing.assert_close(noisy[sample, frame], one_frame[0], rtol=0, atol=1e-12)


def test_noise_grows_with_the_level(schedule):
    signal, sigma = schedule.signal_and_noise_scales(torch.arange(CLEAN, LEVELS), torch.zeros(LEVELS + 1, dtype=torch.float64))
    assert signal[0].item() == 1 and sigma[0].item() == 0
    assert (signal[1:] < signal[:-1]).all()
    assert sigma[-1].item() > 0.999
    torch.testing.assert_close(signal**2 + sigma**2, torch.ones_like(signal), rtol=0, atol=1e-12)


def test_ddim_step_to_clean_with_the_true_velocity_returns_x0(schedule):
    x0, noise = random(3, 2, 4, 4, seed=4), random(3, 2, 4, 4, seed=5)
    levels = torch.tensor([5, 60, LEVELS - 1])
    noisy = schedule.add_noise(x0, noise, levels)
    stepped = schedule.ddim_step(noisy, schedule.velocity(x0, noise, levels), levels, torch.full((3,), CLEAN))
    torch.testing.assert_close(stepped, x0, rtol=0, atol=1e-12)


def test_ddim_step_between_per_frame_levels_with_the_true_velocity_stays_on_the_noise_path(schedule):
    x0, noise = random(2, 3, 2, 4, 4, seed=6), random(2, 3, 2, 4, 4, seed=7)
    levels = torch.tensor([[80, 40, CLEAN], [LEVELS - 1, 99, 20]])
    next_levels = torch.tensor([[40, CLEAN, CLEAN], [50, 99, 0]])
    noisy = schedule.add_noise(x0, noise, levels)
    stepped = schedule.ddim_step(noisy, schedule.velocity(x0, noise, levels), levels, next_levels)
    torch.testing.assert_close(stepped, schedule.add_noise(x0, noise, next_levels), rtol=0, atol=1e-12)


def test_ddim_step_at_an_unchanged_level_keeps_the_value(schedule):
    noisy, velocity = random(2, 3, 4, 4, seed=8), random(2, 3, 4, 4, seed=9)
    levels = torch.tensor([CLEAN, 30])
    torch.testing.assert_close(schedule.ddim_step(noisy, velocity, levels, levels), noisy, rtol=0, atol=1e-12)


def test_ddim_step_refuses_rising_levels(schedule):
    noisy = random(2, 3, 4, 4, seed=10)
    with pytest.raises(ValueError, match="1 of the next levels exceed"):
        schedule.ddim_step(noisy, noisy, torch.tensor([10, 10]), torch.tensor([5, 11]))


@pytest.mark.parametrize("bad_level", [CLEAN - 1, LEVELS])
def test_levels_out_of_range_are_refused(schedule, bad_level):
    with pytest.raises(ValueError, match=rf"levels must lie in \[-1, {LEVELS - 1}\]"):
        schedule.add_noise(random(2, 3, seed=11), random(2, 3, seed=12), torch.tensor([0, bad_level]))


def test_levels_that_do_not_lead_the_tensor_are_refused(schedule):
    with pytest.raises(ValueError, match=r"levels of shape \(3,\) do not lead a tensor of shape \(2, 3\)"):
        schedule.add_noise(random(2, 3, seed=13), random(2, 3, seed=14), torch.tensor([0, 1, 2]))


def test_sampling_ends_at_the_clean_frame_the_model_points_to(schedule):
    target = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(15))

    def velocity_towards_target(noisy, levels):
        signal, sigma = schedule.signal_and_noise_scales(levels, noisy)
        return (signal * noisy - target) / sigma  # the v whose x0 = signal x_t - sigma v is target

    sample = schedule.sample(velocity_towards_target, target.shape, steps=5, generator=torch.Generator().manual_seed(16))
    torch.testing.assert_close(sample, target, rtol=0, atol=1e-4)


def test_sampling_is_repeatable_with_a_seed(schedule):
    def shrink(noisy, levels):
        return 0.5 * noisy

    def draw(seed: int) -> torch.Tensor:
        return schedule.sample(shrink, (2, 3, 4, 4), steps=4, generator=torch.Generator().manual_seed(seed))

    first = draw(17)
    assert first.shape == (2, 3, 4, 4)
    assert torch.equal(first, draw(17))
    assert not torch.allclose(first, draw(18))
