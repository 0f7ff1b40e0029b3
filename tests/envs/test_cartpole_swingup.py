"""PETS' cart-pole swing-up: damping only takes energy out, the rail and the motor have limits,
the reward stays in its range and peaks with the tip up over the centre, and resets follow the seed.
Its known reward against the env's is in `test_model_tasks.py`."""

from __future__ import annotations



import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

import reverie.envs  # noqa: F401  (registers the reverie/ envs)
from reverie.envs.cartpole_swingup import ACTION_COST, POLE_LENGTH, swingup_reward

ENV_ID = "reverie/CartpoleSwingup-v0"
RAIL = 2.5  # m: the slider's range


def cartpole(x: float = 0.0, theta: float = 0.0, x_dot: float = 0.0, theta_dot: float = 0.0):
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    sim = env.unwrapped
    sim.data.qpos[:], sim.data.qvel[:] = (x, theta), (x_dot, theta_dot)
    mujoco.mj_forward(sim.model, sim.data)
    return env


def test_without_force_damping_only_takes_energy_out():
    env = cartpole(theta=2.0)  # released from 115 degrees
    sim = env.unwrapped
    sim.model.opt.enableflags |= mujoco.mjtEnableBit.mjENBL_ENERGY
    energies = []
    for _ in range(100):
        env.step(np.zeros(1))
        energies.append(sim.data.energy.sum())  # potential + kinetic, J
    assert np.diff(energies).max() <= 1e-9
    assert energies[-1] < energies[0] - 10  # the swing dies down toward hanging


def test_the_pole_hangs_still_and_balances_upright_for_a_step():
    env = cartpole()
    for _ in range(25):
        observation, reward, *_ = env.step(np.zeros(1))
    assert np.abs(observation).max() < 0.01  # hanging is (nearly, the pole is drawn 1 mm off vertical) at rest
    assert reward == pytest.approx(np.exp(-4.0), abs=1e-3)  # the tip 1.2 m below the target
    env = cartpole(theta=np.pi)
    observation, reward, *_ = env.step(np.zeros(1))
    assert reward == pytest.approx(1.0, abs=1e-6) and abs(observation[1] - np.pi) < 1e-3


def test_the_cart_stays_on_its_rail():
    env = cartpole()
    positions = [env.step(np.array([3.0]))[0][0] for _ in range(150)]
    assert max(positions) < RAIL + 0.2  # a soft joint limit: a little overshoot, then back
    assert positions[-1] == pytest.approx(RAIL, abs=0.05)


def test_actions_past_the_motor_range_act_as_its_limit():
    def trajectory(force: float) -> np.ndarray:
        env = gym.make(ENV_ID)
        env.reset(seed=1)
        return np.stack([env.step(np.array([force]))[0] for _ in range(20)])

    np.testing.assert_array_equal(trajectory(30.0), trajectory(3.0))
    assert not np.array_equal(trajectory(1.0), trajectory(3.0))


def test_rewards_stay_between_the_action_cost_and_one():
    env = gym.make(ENV_ID)
    env.reset(seed=2)
    env.action_space.seed(2)
    rewards = [env.step(env.action_space.sample())[1] for _ in range(200)]
    assert min(rewards) >= -ACTION_COST * 3.0**2 and max(rewards) <= 1.0
    states = torch.tensor([[0.0, np.pi, 0, 0], [0.3, np.pi, 0, 0], [0.0, np.pi / 2, 0, 0]], dtype=torch.float64)
    upright, off_centre, sideways = swingup_reward(states, torch.zeros(3, 1, dtype=torch.float64), states).tolist()
    assert upright == pytest.approx(1.0) and upright > off_centre > sideways
    assert sideways == pytest.approx(np.exp(-(POLE_LENGTH**2 + POLE_LENGTH**2) / POLE_LENGTH**2))


def test_resets_follow_the_seed_and_start_near_hanging():
    env = gym.make(ENV_ID)
    starts = np.stack([env.reset(seed=seed)[0] for seed in range(20)])
    np.testing.assert_array_equal(env.reset(seed=3)[0], starts[3])
    assert len(np.unique(starts, axis=0)) == 20
    assert 0.05 < starts.std() < 0.2  # N(0, 0.1) on positions and velocities


def test_frames_show_the_pole():
    env = cartpole()
    hanging = env.render()
    sim = env.unwrapped
    sim.data.qpos[1] = np.pi
    mujoco.mj_forward(sim.model, sim.data)
    upright = env.render()
    assert hanging.shape == (240, 320, 3) and not np.array_equal(hanging, upright)
    env.close()  # one renderer at a time: freeing a GL context blanks the frames of others alive then
