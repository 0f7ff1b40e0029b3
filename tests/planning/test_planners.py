"""CEM and MPPI on energies with known minima: accuracy, the action box, seeds, receding horizon."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from reverie.planning.planners import (
    PLANNERS,
    CEMConfig,
    CEMPlanner,
    MPPIConfig,
    MPPIPlanner,
    Planner,
    PlannerConfig,
    make_planner,
    search_config,
)

HORIZON, ACTION_DIM = 5, 3
LOW, HIGH = -torch.ones(ACTION_DIM), torch.ones(ACTION_DIM)
CEM = dict(horizon=HORIZON, samples=200, elites=40, iterations=40, init_std=0.5, min_std=1e-6)
MPPI = dict(horizon=HORIZON, samples=512, iterations=30, temperature=0.01, noise_std=0.05)
# MPPI keeps its noise fixed, so with finite samples it lands near the minimum, not on it.


def quadratic(target: torch.Tensor):
    """sum_t ||a_t - target_t||^2 for target (H, A); minimum 0 at the target."""
    return lambda actions: (actions - target).pow(2).sum((1, 2))  # (N, H, A) -> (N,)


def random_target(seed: int, scale: float = 0.8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(HORIZON, ACTION_DIM, generator=generator) * 2 - 1) * scale  # (H, A)


def assert_in_box(actions: torch.Tensor, low=LOW, high=HIGH) -> None:
    assert bool((actions >= low).all() and (actions <= high).all())


@pytest.mark.parametrize("name, config, tolerance", [("cem", CEM, 1e-3), ("mppi", MPPI, 0.05)])
def test_finds_quadratic_minimum(name, config, tolerance):
    target = random_target(0)
    result = make_planner(name, LOW, HIGH, **config).optimize(quadratic(target))
    assert result.actions.shape == (HORIZON, ACTION_DIM)
    assert (result.actions - target).abs().max() < tolerance
    assert_in_box(result.actions)
    # The returned energy is the plan's own and no worse than any iteration's best candidate.
    assert torch.allclose(result.energy, quadratic(target)(result.actions[None])[0])
    assert result.energy <= result.energy_trace.min()
    assert result.energy_trace.shape == (config["iterations"],)


@pytest.mark.parametrize("name, config, tolerance", [("cem", CEM, 0.01), ("mppi", MPPI, 0.1)])
def test_minimum_outside_box_gives_clipped_optimum(name, config, tolerance):
    low, high = torch.tensor([-1.0, -0.5, 0.0]), torch.tensor([1.0, 0.5, 0.2])
    target = random_target(1, scale=2.0)  # mostly outside the box
    seen = []

    def energy(actions):
        seen.append(actions)
        return quadratic(target)(actions)

    plan = make_planner(name, low, high, **config).plan(energy)
    assert_in_box(plan, low, high)
    assert all(bool((batch >= low).all() and (batch <= high).all()) for batch in seen)
    error = (plan - target.clamp(low, high)).abs()
    far_outside = (target < low - 0.2) | (target > high + 0.2)
    assert far_outside.any() and error.max() < tolerance
    assert error[far_outside].max() < tolerance / 10  # clipped samples pile up on the bound


@pytest.mark.parametrize("name, config", [("cem", CEM), ("mppi", MPPI)])
def test_seed_determines_samples_and_plan(name, config):
    target = random_target(2)

    def run(seed: int, config: dict):
        batches = []

        def energy(actions):
            batches.append(actions.clone())
            return quadratic(target)(actions)

        planner = make_planner(name, LOW, HIGH, generator=torch.Generator().manual_seed(seed), **config)
        return planner.plan(energy), batches

    plan, batches = run(7, config)
    # A config saved as JSON and loaded again plans the same actions for the same seed.
    reloaded = dataclasses.asdict(PLANNERS.get(name).Config(**config))
    same_plan, same_batches = run(7, json.loads(json.dumps(reloaded)))
    assert torch.equal(plan, same_plan)
    assert all(torch.equal(a, b) for a, b in zip(batches, same_batches))
    other_plan, other_batches = run(8, config)
    assert not torch.equal(batches[0][1:], other_batches[0][1:])  # row 0 is the (shared) prior mean
    assert not torch.equal(plan, other_plan)


def test_default_generator_comes_from_config_seed():
    target = random_target(3)
    plans = [CEMPlanner(CEMConfig(**CEM, seed=seed), LOW, HIGH).plan(quadratic(target)) for seed in (4, 4, 5)]
    assert torch.equal(plans[0], plans[1]) and not torch.equal(plans[0], plans[2])


def moving_target(step: int) -> torch.Tensor:
    """(A,) a target that moves along a smooth curve inside the box."""
    phase = torch.tensor([0.0, 1.0, 2.0])
    return 0.6 * torch.sin(0.3 * step + phase)


def tracking_energy(step: int):
    """Energy at time `step`: sum_t ||a_t - target(step + t)||^2 over the horizon."""
    targets = torch.stack([moving_target(step + t) for t in range(HORIZON)])  # (H, A)
    return quadratic(targets)


@pytest.mark.parametrize("name, config", [("cem", CEM), ("mppi", MPPI)])
def test_receding_horizon_tracks_moving_target(name, config):
    planner = make_planner(name, LOW, HIGH, **config)
    for step in range(12):
        action = planner.act(tracking_energy(step))
        assert action.shape == (ACTION_DIM,)
        assert_in_box(action)
        assert (action - moving_target(step)).abs().max() < 0.05


@pytest.mark.parametrize("name, config", [("cem", CEM), ("mppi", MPPI)])
def test_warm_start_beats_cold_start_at_equal_iterations(name, config):
    config = {**config, "iterations": 3}
    warm, cold = make_planner(name, LOW, HIGH, **config), make_planner(name, LOW, HIGH, **config)
    warm_energies, cold_energies = [], []
    for step in range(10):
        warm.act(tracking_energy(step))
        cold.reset()
        cold.act(tracking_energy(step))
        if step > 0:  # the first call is cold for both
            warm_energies.append(warm.last.energy.item())
            cold_energies.append(cold.last.energy.item())
    assert sum(warm_energies) < 0.4 * sum(cold_energies)  # measured: 0.27 (CEM), 0.22 (MPPI)


def test_reset_restarts_from_prior_mean():
    first_rows = []

    def energy(actions):
        first_rows.append(actions[0].clone())
        return quadratic(random_target(5))(actions)

    planner = make_planner("cem", LOW, HIGH, **{**CEM, "iterations": 1})
    planner.act(energy)
    planner.act(energy)
    assert not torch.equal(first_rows[-2], planner.prior_mean())  # warm: the shifted plan
    planner.reset()
    planner.act(energy)
    assert torch.equal(first_rows[-2], planner.prior_mean())


@pytest.mark.parametrize("name, config, tolerance", [("cem", CEM, 0.01), ("mppi", MPPI, 0.1)])
def test_non_smooth_l1_energy(name, config, tolerance):
    target = random_target(6)
    plan = make_planner(name, LOW, HIGH, **config).plan(lambda actions: (actions - target).abs().sum((1, 2)))
    assert (plan - target).abs().max() < tolerance
    assert_in_box(plan)


def test_unbounded_sides_and_dtypes():
    target = random_target(7) + 3.0  # beyond +1 but the upper side is open
    low, high = torch.full((ACTION_DIM,), -1.0, dtype=torch.float64), torch.full((ACTION_DIM,), math.inf)
    energy = lambda actions: quadratic(target)(actions).to(torch.bfloat16)  # low-precision energies
    planner = make_planner("cem", low, high, **{**CEM, "init_std": 2.0, "min_std": 1e-2})
    result = planner.optimize(energy)
    assert result.actions.dtype == torch.float64
    assert (result.actions - target).abs().max() < 0.05
    assert torch.equal(planner.prior_mean(), torch.zeros(HORIZON, ACTION_DIM, dtype=torch.float64))


def test_nan_energies_are_never_chosen():
    target = random_target(8)

    def energy(actions):
        values = quadratic(target)(actions)
        return torch.where(actions[:, 0, 0] > 0.5, torch.nan, values)  # a model that diverges there

    plan = make_planner("mppi", LOW, HIGH, **MPPI).plan(energy)
    assert plan[0, 0] <= 0.5 and torch.isfinite(plan).all()


def test_return_mean_returns_the_final_mean():
    target = random_target(9)
    result = make_planner("mppi", LOW, HIGH, **MPPI, return_mean=True).optimize(quadratic(target))
    assert torch.allclose(result.energy, quadratic(target)(result.actions[None])[0])
    assert (result.actions - target).abs().max() < 0.05


def test_errors_name_the_problem():
    planner = make_planner("cem", LOW, HIGH, **CEM)
    with pytest.raises(ValueError, match=r"energy_fn returned \(200, 1\)"):
        planner.plan(lambda actions: actions.sum((1, 2))[:, None])
    with pytest.raises(ValueError, match="init has shape"):
        planner.plan(quadratic(random_target(0)), init=torch.zeros(HORIZON + 1, ACTION_DIM))
    with pytest.raises(ValueError, match="CEM elites=300"):
        CEMConfig(samples=200, elites=300)
    with pytest.raises(ValueError, match="MPPI temperature"):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ValueError, match="action box"):
        CEMPlanner(CEMConfig(), torch.ones(2), -torch.ones(2))


def test_registry():
    assert PLANNERS.get("cem") is CEMPlanner and PLANNERS.get("mppi") is MPPIPlanner
    assert {"cem", "mppi"} <= set(PLANNERS.names())
    planner = make_planner("mppi", LOW, HIGH, horizon=3, temperature=0.5)
    assert isinstance(planner, Planner) and planner.config == MPPIConfig(horizon=3, temperature=0.5)


def test_each_config_says_which_field_the_search_std_sets():
    assert CEMConfig.for_search(0.3) == CEMConfig(init_std=0.3, elites=32)  # an elite per 8 samples
    assert CEMConfig.for_search(0.3, samples=100, horizon=4, seed=2) == CEMConfig(samples=100, horizon=4, seed=2, init_std=0.3, elites=12)
    assert CEMConfig.for_search(0.3, samples=4).elites == 1
    assert CEMConfig.for_search(0.3, samples=100, elites=5).elites == 5  # a field given wins over the derived one
    assert MPPIConfig.for_search(0.3, iterations=2) == MPPIConfig(iterations=2, noise_std=0.3)
    with pytest.raises(NotImplementedError, match="PlannerConfig does not say"):
        PlannerConfig.for_search(0.3)


def test_search_config_takes_the_planner_from_the_registry():
    assert search_config("cem", 0.3, samples=64) == CEMConfig(samples=64, init_std=0.3, elites=8)
    assert search_config("mppi", 0.3, samples=64) == MPPIConfig(samples=64, noise_std=0.3)
    with pytest.raises(KeyError, match="unknown planner 'nope'; known: cem, mppi"):
        search_config("nope", 0.3)
