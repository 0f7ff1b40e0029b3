"""The known rewards of `MODEL_TASKS` against each env's own reward on real transitions from random
actions, the termination test against the env's, batching, the features a model reads, and the
error for an env without a known reward."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import reverie.envs  # noqa: F401  (registers the reverie/ envs)
from reverie.envs.model_tasks import MODEL_TASKS, model_task

# |known - env reward| per step. Exact up to float rounding, except HalfCheetah, whose observation
# has no x position: its speed is the mean of the x velocities before and after the step.
TOLERANCE = {
    "reverie/CartpoleSwingup-v0": 1e-6,  # the env squares the float64 action, the reward fn the float32 one
    "reverie/PilcoCartpole-v0": 1e-9,
    "Reacher-v5": 1e-9,
    "InvertedPendulum-v5": 0.0,
    "Pendulum-v1": 1e-4,  # float32 observations
}
HALF_CHEETAH_MEAN_ERROR = 0.25  # the module docstring measures 0.14 on uniform random actions; the reward's std is 0.65


def transitions(env_id: str, steps: int, seed: int = 0):
    """(observation, action, next observation, reward, terminated) of `steps` random steps."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        action = env.action_space.sample()
        next_observation, reward, terminated, truncated, _ = env.step(action)
        rows.append((observation, action, next_observation, float(reward), terminated))
        observation = env.reset()[0] if terminated or truncated else next_observation
    env.close()
    return rows


def as_tensors(rows) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(np.stack([row[i] for row in rows])) for i in range(3))


def test_every_registered_task_is_checked_here():
    assert set(MODEL_TASKS) == set(TOLERANCE) | {"HalfCheetah-v5"}


@pytest.mark.parametrize("env_id", sorted(TOLERANCE))
def test_the_known_reward_is_the_envs_reward(env_id):
    rows = transitions(env_id, steps=120)
    known = model_task(env_id).reward_fn(*as_tensors(rows))  # one batch of every transition
    true = np.array([row[3] for row in rows])
    assert known.shape == (len(rows),)
    np.testing.assert_allclose(known.double().numpy(), true, rtol=0, atol=TOLERANCE[env_id])
    assert true.std() > 0  # the rewards vary, so matching them says something


def test_the_half_cheetah_reward_is_off_by_about_the_documented_amount():
    rows = transitions("HalfCheetah-v5", steps=200)
    known = model_task("HalfCheetah-v5").reward_fn(*as_tensors(rows)).double().numpy()
    true = np.array([row[3] for row in rows])
    assert np.abs(known - true).mean() < HALF_CHEETAH_MEAN_ERROR < true.std()


def test_the_inverted_pendulum_ends_when_the_env_does():
    rows = transitions("InvertedPendulum-v5", steps=200)
    ended = model_task("InvertedPendulum-v5").termination_fn(as_tensors(rows)[2])
    terminated = torch.tensor([row[4] for row in rows])
    assert terminated.sum() >= 5  # random actions drop the pole within a few dozen steps
    assert torch.equal(ended, terminated)
    assert model_task("InvertedPendulum-v5").termination_fn(torch.full((1, 4), float("nan"))).item()  # a blown-up state ends too


def test_batched_rewards_equal_rewards_one_transition_at_a_time():
    observations, actions, next_observations = as_tensors(transitions("Reacher-v5", steps=6))
    batched = model_task("Reacher-v5").reward_fn(observations.reshape(2, 3, -1), actions.reshape(2, 3, -1), next_observations.reshape(2, 3, -1))
    one_by_one = torch.stack([model_task("Reacher-v5").reward_fn(o, a, n) for o, a, n in zip(observations, actions, next_observations)])
    torch.testing.assert_close(batched.reshape(-1), one_by_one)


def test_model_inputs_are_the_cartpole_features_and_the_observation_elsewhere():
    observations = torch.tensor([[0.5, np.pi / 2, -1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(
        model_task("reverie/CartpoleSwingup-v0").model_input(observations), torch.tensor([[1.0, 0.0, 0.5, -1.0, 2.0]], dtype=torch.float64)
    )
    assert model_task("Reacher-v5").model_input(observations) is observations


def test_an_env_without_a_known_reward_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match=r"no known reward for env 'CartPole-v1'; model-based planners know: HalfCheetah-v5, InvertedPendulum-v5"):
        model_task("CartPole-v1")
