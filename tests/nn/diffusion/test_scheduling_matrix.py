"""Diffusion forcing's scheduling matrices (`reverie.nn.diffusion.scheduling_matrix`, Chen et al.
2024, Sec. 3.3): their invariants for each kind, small cases written out by hand, the entry-to-level
map, and a DDIM walk down a pyramid that ends at the clean frames."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from reverie.nn.diffusion import CLEAN, DDPMConfig, VPredictionSchedule, scheduling_matrix, step_levels

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = {
    "full_sequence": lambda frames, steps: steps + 1,
    "pyramid": lambda frames, steps: steps + frames,
    "autoregressive": lambda frames, steps: frames * steps + 1,
}


@pytest.mark.parametrize("kind", sorted(ROWS))
@pytest.mark.parametrize("frames, steps", [(1, 1), (1, 4), (3, 1), (3, 2), (5, 4)])
def test_matrix_invariants(kind, frames, steps):
    matrix = scheduling_matrix(frames, steps, kind)
    assert matrix.dtype == torch.int64
    assert matrix.shape == (ROWS[kind](frames, steps), frames)
    assert matrix.min().item() >= 0 and matrix.max().item() <= steps
    assert (matrix[0] == steps).all()
    assert (matrix[-1] == 0).all()
    change = matrix[1:] - matrix[:-1]
    assert (change <= 0).all(), "a frame's steps to go never rise"
    assert (change != 0).any(dim=1).all(), "every row moves some frame"


def test_pyramid_of_three_frames_and_two_steps():
    expected = torch.tensor(
        [
            [2, 2, 2],
            [1, 2, 2],
            [0, 1, 2],
            [0, 0, 1],
            [0, 0, 0],
        ]
    )
    assert torch.equal(scheduling_matrix(3, 2, "pyramid"), expected)


def test_autoregressive_of_two_frames_and_two_steps():
    expected = torch.tensor(
        [
            [2, 2],
            [1, 2],
            [0, 2],
            [0, 1],
            [0, 0],
        ]
    )
    assert torch.equal(scheduling_matrix(2, 2, "autoregressive"), expected)


def test_full_sequence_of_two_frames_and_three_steps():
    expected = torch.tensor([[3, 3], [2, 2], [1, 1], [0, 0]])
    assert torch.equal(scheduling_matrix(2, 3, "full_sequence"), expected)


def test_pyramid_frames_lag_one_step_behind_the_previous_frame():
    matrix = scheduling_matrix(6, 4, "pyramid")
    lag = matrix[:, 1:] - matrix[:, :-1]
    assert set(lag.unique().tolist()) == {0, 1}
    # while neither frame is clipped at pure noise or clean, the lag is exactly one step
    inside = (matrix[:, :-1] > 0) & (matrix[:, 1:] < 4)
    assert (lag[inside] == 1).all()


def test_autoregressive_frames_start_only_once_the_previous_frame_is_clean():
    steps = 3
    matrix = scheduling_matrix(4, steps, "autoregressive")
    started = matrix[1:, 1:] < steps  # frame j has taken a step by row m
    previous_clean = matrix[:-1, :-1] == 0  # frame j - 1 was clean at row m - 1
    assert (previous_clean | ~started).all()
    assert ((matrix[1:] - matrix[:-1]) != 0).sum(dim=1).eq(1).all(), "one frame moves per row"


@pytest.mark.parametrize(
    "arguments, named",
    [
        ((0, 2, "pyramid"), "frames must be an int >= 1, got 0"),
        ((3, 0, "pyramid"), "steps must be an int >= 1, got 0"),
        ((3, 2.0, "pyramid"), "steps must be an int >= 1, got 2.0"),
        ((3, 2, "trapezoid"), "kind must be one of .* got 'trapezoid'"),
    ],
)
def test_scheduling_matrix_names_the_bad_argument(arguments, named):
    with pytest.raises(ValueError, match=named):
        scheduling_matrix(*arguments)


@pytest.mark.parametrize("steps, train_levels", [(1, 1000), (4, 1000), (7, 1000), (50, 1000), (10, 10), (3, 37)])
def test_step_levels_run_from_clean_to_the_noisiest_level(steps, train_levels):
    levels = step_levels(steps, train_levels)
    assert levels.dtype == torch.int64
    assert levels.shape == (steps + 1,)
    assert levels[0].item() == CLEAN
    assert levels[-1].item() == train_levels - 1
    assert (levels[1:] > levels[:-1]).all()


@pytest.mark.parametrize("steps", [1, 3, 4, 10, 20, 25, 50])
def test_step_levels_are_diffusers_trailing_timesteps(steps):
    scheduler = DDPMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    assert torch.equal(step_levels(steps, 1000)[1:], scheduler.timesteps.flip(0))


def test_step_levels_of_five_steps_over_ten_levels():
    assert step_levels(5, 10).tolist() == [CLEAN, 1, 3, 5, 7, 9]


@pytest.mark.parametrize(
    "arguments, named",
    [
        ((0, 1000), r"steps must be an int in \[1, train_levels = 1000\], got 0"),
        ((11, 10), r"steps must be an int in \[1, train_levels = 10\], got 11"),
        ((2, 0), "train_levels must be an int >= 1, got 0"),
    ],
)
def test_step_levels_names_the_bad_argument(arguments, named):
    with pytest.raises(ValueError, match=named):
        step_levels(*arguments)


def test_ddim_down_a_pyramid_with_the_true_velocity_ends_at_the_clean_frames():
    schedule = VPredictionSchedule(DDPMConfig(train_levels=100))
    frames, steps = 4, 3
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, frames, 2, 3, 3, generator=generator, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    levels_of = step_levels(steps, 100)
    matrix = scheduling_matrix(frames, steps, "pyramid")
    x = schedule.add_noise(x0, noise, levels_of[matrix[0]].expand(2, frames))  # all at level T - 1
    for row, next_row in zip(matrix[:-1], matrix[1:]):
        levels, next_levels = levels_of[row].expand(2, frames), levels_of[next_row].expand(2, frames)
        x = schedule.ddim_step(x, schedule.velocity(x0, noise, levels), levels, next_levels)
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-10)
