"""Recording policies (`reverie.pipelines.policies`): the low-dimensional state of an observation,
random and scripted behaviour that follows its seed, scripted controllers that do their job
better than random actions, a model folder as a policy, and errors that name what is unknown.
The joint-space Reacher's scripted policy reaching its target is in `tests/envs/test_reacher_joints.py`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from reverie.envs.make import make_env
from reverie.envs.reacher_arm import reacher_arm_angles
from reverie.envs.reacher_joints import ENV_ID as REACHER_JOINTS
from reverie.nn.model_folder import save_model_folder
from reverie.nn.policies import MLPPolicy, MLPPolicyConfig
from reverie.pipelines.policies import SCRIPTED, flat_state, make_policy, scripted_for
from reverie.shards.episodes import describe_space


def test_flat_state_keeps_low_dimensional_parts_in_key_order_and_drops_images():
    observation = {"pixels": np.zeros((4, 4, 3), np.uint8), "velocity": np.array([[3.0, 4.0]]), "agent_pos": np.array([1.0, 2.0])}
    state = flat_state(observation)
    assert state.dtype == np.float32
    np.testing.assert_array_equal(state, [1.0, 2.0, 3.0, 4.0])  # agent_pos, then velocity: sorted keys, flattened
    assert flat_state({"pixels": np.zeros((4, 4, 3))}) is None
    assert flat_state(np.zeros((8, 8, 3), np.uint8)) is None
    np.testing.assert_array_equal(flat_state(7), np.array([7.0], np.float32))  # a Discrete observation
    np.testing.assert_array_equal(flat_state(np.arange(6.0).reshape(2, 3)), np.arange(6.0, dtype=np.float32))


def actions_of(policy, env, seed: int, steps: int = 8) -> list:
    observation, _ = env.reset(seed=seed)
    actions = []
    for _ in range(steps):
        action = policy(observation)
        actions.append(np.asarray(action))
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            observation, _ = env.reset()
    return actions


@pytest.mark.parametrize("name", ["random", "scripted"])
def test_random_and_scripted_actions_follow_the_seed(name):
    env = gym.make("Reacher-v5")
    first = actions_of(make_policy(name, env, seed=1), env, seed=0)
    again = actions_of(make_policy(name, env, seed=1), env, seed=0)
    other = actions_of(make_policy(name, env, seed=2), env, seed=0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert all(env.action_space.contains(action.astype(np.float32)) for action in first + other)
    env.close()


@pytest.mark.parametrize(
    "env_id, policy_name",
    [("CartPole-v1", "cartpole"), ("Reacher-v5", "reacher"), (REACHER_JOINTS, "reacher_joints"), ("gym_pusht/PushT-v0", "pusht")],
)
def test_each_env_gets_the_scripted_policy_named_in_its_id(env_id, policy_name):
    assert scripted_for(env_id).__name__ == policy_name


def test_an_env_without_a_scripted_policy_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match=r"no scripted policy for Pendulum-v1; scripted envs: CartPole, PushT, Reacher, ReacherJoints"):
        scripted_for("Pendulum-v1")
    assert set(SCRIPTED) == {"CartPole", "PushT", "Reacher", "ReacherJoints"}


@pytest.mark.parametrize("name", ["greedy", "no/such/folder"])
def test_an_unknown_policy_is_named_with_the_choices(name):
    with pytest.raises(ValueError, match=f"--policy '{name}': use random, scripted, or a model folder"):
        make_policy(name, gym.make("CartPole-v1"), seed=0)


def episode_length(env, policy, seed: int) -> int:
    observation, _ = env.reset(seed=seed)
    for steps in range(1, 1000):
        observation, _, terminated, truncated, _ = env.step(policy(observation))
        if terminated or truncated:
            return steps
    return steps


def test_scripted_cartpole_balances_much_longer_than_random_actions():
    env = gym.make("CartPole-v1")
    scripted = [episode_length(env, make_policy("scripted", env, seed), seed) for seed in range(3)]
    random = [episode_length(env, make_policy("random", env, seed), seed) for seed in range(3)]
    assert min(scripted) > 200 and max(random) < 100


def fingertip_distances(env, policy, seed: int, steps: int) -> tuple[float, float]:
    observation, _ = env.reset(seed=seed)
    start = float(np.linalg.norm(observation[8:10]))  # fingertip minus target
    for _ in range(steps):
        observation, *_ = env.step(policy(observation))
    return start, float(np.linalg.norm(observation[8:10]))


def test_scripted_reacher_torques_bring_the_fingertip_to_the_target():
    env = gym.make("Reacher-v5", max_episode_steps=100)  # the arm settles in about 2 s, past the 1 s episode
    for seed in range(3):
        start, scripted = fingertip_distances(env, make_policy("scripted", env, seed), seed, steps=100)
        _, random = fingertip_distances(env, make_policy("random", env, seed), seed, steps=100)
        assert scripted < min(0.02, 0.2 * start) and random > 2 * scripted
    env.close()


def wrapped(angles: np.ndarray) -> np.ndarray:
    return (angles + np.pi) % (2 * np.pi) - np.pi


def test_the_joint_space_reacher_goes_to_an_elbow_branch_drawn_per_seed():
    env = gym.make(REACHER_JOINTS)
    branches = []
    for seed in list(range(8)) + [0, 1]:
        observation, _ = env.reset(seed=seed)
        policy = make_policy("scripted", env, seed)
        for _ in range(15):
            observation, *_ = env.step(policy(observation))
        target = env.unwrapped.data.body("target").xpos[:2]
        branch = np.sign(observation[1])
        mine, other = (np.abs(wrapped(observation - reacher_arm_angles(target, sign))).max() for sign in (branch, -branch))
        assert mine < 0.5 < 1.5 < other  # at the pose of its branch (up to the noise), far from the other one
        branches.append(branch)
    assert set(branches) == {-1.0, 1.0} and branches[8:] == branches[:2]  # both branches; the same again for the same seed
    env.close()


def agent_to_block(env, policy, seed: int, steps: int = 60) -> float:
    """The median distance (px) from the agent to the block's position over an episode."""
    observation, _ = env.reset(seed=seed)
    distances = []
    for _ in range(steps):
        observation, *_ = env.step(policy(observation))
        distances.append(np.linalg.norm(np.array(env.unwrapped.agent.position) - np.array(env.unwrapped.block.position)))
    return float(np.median(distances))


def test_scripted_pusht_keeps_the_agent_at_the_block_where_random_actions_wander():
    env = make_env("gym_pusht/PushT-v0")
    scripted = [agent_to_block(env, make_policy("scripted", env, seed), seed) for seed in range(3)]
    random = [agent_to_block(env, make_policy("random", env, seed), seed) for seed in range(3)]
    assert max(scripted) < 60 < 100 < min(random)  # the block's T spans 120 px of the 512 px table
    env.close()


def test_a_model_folder_acts_on_the_flat_state_of_the_observation(tmp_path):
    torch.manual_seed(0)
    space = gym.spaces.Box(-2.0, 2.0, (2,))
    model = MLPPolicy(MLPPolicyConfig(observation_dim=3, action_space=describe_space(space), hidden=[8]))
    folder = save_model_folder(model, tmp_path / "policy")
    policy = make_policy(str(folder), env=None, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        observation = {"pixels": rng.integers(0, 256, (8, 8, 3)), "agent_pos": rng.normal(size=2), "angle": rng.normal(size=1)}
        expected = model.act(np.concatenate([observation["agent_pos"], observation["angle"]]))
        np.testing.assert_allclose(policy(observation), expected, rtol=1e-6)
