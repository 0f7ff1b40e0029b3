"""PILCO's cart-pole: its equations conserve energy without friction and the force's work adds
exactly that much, friction only takes energy out, the dynamics are mirror-symmetric, the force is
clipped, the reward stays in [0, 1], and resets follow the seed. RK4 accuracy, the upright fixed
point and the 40-step episode are in `tests/agents/test_pilco.py`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import reverie.envs  # noqa: F401  (registers the reverie/ envs)
from reverie.envs import pilco_cartpole
from reverie.envs.pilco_cartpole import CART_MASS, COST_WIDTH, DT, GRAVITY, MAX_FORCE, POLE_LENGTH, POLE_MASS, START_STD, integrate

ENV_ID = "reverie/PilcoCartpole-v0"
SWINGING = np.array([0.1, 0.5, 2.0, -1.0])  # x, x_dot, theta, theta_dot


def energy(state: np.ndarray) -> float:
    """Kinetic plus potential energy (J) of the cart and a uniform pole hinged at its end."""
    x_dot, theta, theta_dot = state[1], state[2], state[3]
    half = POLE_LENGTH / 2
    centre_vx, centre_vy = x_dot + half * np.cos(theta) * theta_dot, half * np.sin(theta) * theta_dot
    kinetic = 0.5 * CART_MASS * x_dot**2 + 0.5 * POLE_MASS * (centre_vx**2 + centre_vy**2) + 0.5 * POLE_MASS * POLE_LENGTH**2 / 12 * theta_dot**2
    return float(kinetic - POLE_MASS * GRAVITY * half * np.cos(theta))


def test_without_friction_or_force_energy_is_conserved(monkeypatch):
    monkeypatch.setattr(pilco_cartpole, "FRICTION", 0.0)
    state, start = SWINGING, energy(SWINGING)
    for _ in range(40):
        state = integrate(state, 0.0)
    assert abs(energy(state) - start) < 1e-4 * abs(start)  # RK4 drifts by about 4e-6 of it in 4 s
    assert np.abs(state - SWINGING).max() > 0.1  # and the state did move


def test_without_friction_the_energy_gained_is_the_work_of_the_force(monkeypatch):
    monkeypatch.setattr(pilco_cartpole, "FRICTION", 0.0)
    state, force, work = np.array([0.0, 0.0, 0.5, 0.0]), 5.0, 0.0
    start = energy(state)
    h = DT / 20
    for _ in range(200):  # 2 s of force times cart speed, by the trapezoid rule
        after = integrate(state, force, h, substeps=1)
        work += force * (state[1] + after[1]) / 2 * h
        state = after
    assert energy(state) - start == pytest.approx(work, rel=1e-3)
    assert work > 10.0


def test_friction_only_takes_energy_out():
    state, energies = SWINGING, [energy(SWINGING)]
    for _ in range(40):
        state = integrate(state, 0.0)
        energies.append(energy(state))
    assert np.diff(energies).max() < 1e-6 and energies[-1] < energies[0] - 0.1


def test_hanging_still_is_an_equilibrium():
    np.testing.assert_array_equal(integrate(np.zeros(4), 0.0), np.zeros(4))


def test_mirrored_states_and_forces_give_mirrored_motion():
    state, mirrored = SWINGING, -SWINGING
    for force in (3.0, -7.0, 0.0, 10.0):
        state, mirrored = integrate(state, force), integrate(mirrored, -force)
        np.testing.assert_allclose(mirrored, -state, rtol=0, atol=1e-9)


def test_forces_past_the_limit_act_as_the_limit():
    def trajectory(force: float) -> np.ndarray:
        env = gym.make(ENV_ID)
        env.reset(seed=1)
        return np.stack([env.step(np.array([force]))[0] for _ in range(10)])

    np.testing.assert_array_equal(trajectory(5 * MAX_FORCE), trajectory(MAX_FORCE))
    np.testing.assert_array_equal(trajectory(-5 * MAX_FORCE), trajectory(-MAX_FORCE))
    assert not np.array_equal(trajectory(0.5 * MAX_FORCE), trajectory(MAX_FORCE))


def test_the_reward_is_the_saturating_cost_of_the_tip_distance_and_stays_in_0_1():
    env = gym.make(ENV_ID)
    env.reset(seed=2)
    env.action_space.seed(2)
    rewards = []
    for _ in range(40):
        observation, reward, _, _, info = env.step(env.action_space.sample())
        x, theta = observation[0], observation[2]
        tip = np.array([x + POLE_LENGTH * np.sin(theta), -POLE_LENGTH * np.cos(theta)])
        assert info["tip_distance"] == pytest.approx(np.linalg.norm(tip - [0.0, POLE_LENGTH]), abs=1e-9)
        assert reward == pytest.approx(np.exp(-info["tip_distance"] ** 2 / (2 * COST_WIDTH**2)), abs=1e-9)
        rewards.append(reward)
    assert 0.0 <= min(rewards) and max(rewards) <= 1.0 and max(rewards) > min(rewards)


def test_resets_follow_the_seed_and_start_near_hanging():
    env = gym.make(ENV_ID)
    starts = np.stack([env.reset(seed=seed)[0] for seed in range(30)])
    np.testing.assert_array_equal(env.reset(seed=4)[0], starts[4])
    assert len(np.unique(starts, axis=0)) == 30
    assert 0.5 * START_STD < starts.std() < 1.5 * START_STD
