"""`reverie.envs` registers every env of `ENVS` with gymnasium: each one that makes without arguments
passes gymnasium's env checker, steps, and stops at its registered time limit; importing the
package again is harmless."""

from __future__ import annotations

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import reverie.envs
from reverie.envs import ENVS

# envs that make with no arguments; the learned simulator needs a model folder (tests/envs/test_learned.py)
STANDALONE = sorted(env_id for env_id in ENVS if env_id != "reverie/WorldModel-v0")


def test_every_env_is_registered_with_its_entry_point_and_time_limit():
    for env_id, (entry_point, keywords) in ENVS.items():
        spec = gym.spec(env_id)
        assert spec.entry_point == entry_point
        assert spec.max_episode_steps == keywords.get("max_episode_steps")


def test_importing_the_package_again_registers_nothing_twice():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is overridden
        importlib.reload(reverie.envs)
    assert all(env_id in gym.registry for env_id in ENVS)


@pytest.mark.filterwarnings("ignore:.*WARN")  # the checker's advice: symmetric action bounds, finite observation bounds
@pytest.mark.parametrize("env_id", STANDALONE)
def test_each_env_passes_the_env_checker(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", STANDALONE)
def test_each_env_steps_within_its_spaces_from_a_seeded_reset(env_id):
    env = gym.make(env_id)
    env.action_space.seed(0)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    again, _ = gym.make(env_id).reset(seed=0)
    np.testing.assert_array_equal(again, observation)
    for _ in range(5):
        observation, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(observation) and np.isfinite(reward)
        if terminated:
            observation, _ = env.reset()
    env.close()


@pytest.mark.parametrize("env_id", [env_id for env_id in STANDALONE if "max_episode_steps" in ENVS[env_id][1]])
def test_an_episode_is_truncated_at_the_registered_length(env_id):
    """Random episodes (seeds 0, 1, ..; a goal task's may end early at its goal) are truncated at the
    limit and not before; at least one of 20 runs to the limit."""
    env = gym.make(env_id)
    env.action_space.seed(0)
    limit = ENVS[env_id][1]["max_episode_steps"]
    for seed in range(20):
        env.reset(seed=seed)
        for step in range(1, limit + 1):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            assert truncated == (step == limit and not terminated)
            if terminated or truncated:
                break
        if truncated:
            break
    assert truncated
    env.close()
