"""Dyna-Q and Dyna-Q+: fast learning with planning, an exact model, the blocking maze, checkpoints."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from reverie.agents.dyna import DynaQ, DynaQConfig, DynaQPlus, DynaQPlusConfig
from reverie.envs.gridworlds import greedy_path_length
from reverie.agents.prioritized_sweeping import PrioritizedSweeping, PrioritizedSweepingConfig
from reverie.agents.registry import AGENTS, load_agent

AGENT_CONFIGS = [(DynaQ, DynaQConfig), (DynaQPlus, DynaQPlusConfig), (PrioritizedSweeping, PrioritizedSweepingConfig)]


def make(agent_class, config_class, env, **config):
    return agent_class(config_class(**config), env.observation_space, env.action_space)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fifty_planning_steps_reach_the_optimum_in_a_few_episodes(seed):
    env = gym.make("reverie/DynaMaze-v0")
    agent = make(DynaQ, DynaQConfig, env, planning_steps=50, seed=seed)
    steps = [row["steps"] for row in agent.train(env, episodes=8)]
    assert np.median(steps[3:]) <= 20  # epsilon-greedy episodes near the 14-step optimum from episode 4
    assert greedy_path_length(env.unwrapped, agent.q, 18) is not None  # a greedy route at most 4 steps longer
    assert steps[0] > 50  # the first episode is a random walk: nothing to plan with before the goal


def test_planning_makes_learning_faster_and_leaves_the_first_episode_alone():
    env = gym.make("reverie/DynaMaze-v0")
    curves = {}
    for planning_steps in (0, 50):
        runs = [make(DynaQ, DynaQConfig, env, planning_steps=planning_steps, seed=seed).train(env, episodes=5) for seed in range(3)]
        curves[planning_steps] = np.array([[row["steps"] for row in rows] for rows in runs])  # (runs, episodes)
    assert (curves[0][:, 0] == curves[50][:, 0]).all()  # the acting stream does not depend on n (Figure 8.2)
    assert curves[50][:, 1:].sum() * 3 < curves[0][:, 1:].sum()


@pytest.mark.parametrize("agent_class, config_class", AGENT_CONFIGS)
def test_learned_model_predicts_every_visited_transition(agent_class, config_class):
    """The tabular model's 'loss': its prediction error on visited transitions falls to zero."""
    env = gym.make("reverie/DynaMaze-v0")
    maze = env.unwrapped
    agent = make(agent_class, config_class, env, planning_steps=5, seed=0)
    assert not agent.observed_pairs and (agent.model_next == -1).all()  # nothing modelled yet
    agent.train(env, episodes=3)
    assert len(agent.observed_pairs) > 40
    for state, action in agent.observed_pairs:
        next_state, reward, done = maze.transition(state, action)
        assert agent.modelled(state, action) == (reward, next_state, done)


def test_dyna_q_plus_models_untried_actions_as_staying_put():
    env = gym.make("reverie/DynaMaze-v0")
    agent = make(DynaQPlus, DynaQPlusConfig, env, planning_steps=5, seed=0)
    agent.train(env, steps=20)
    for state in agent.observed_states:
        for action in set(range(4)) - set(agent.tried_actions[state]):
            assert agent.modelled(state, action) == (0.0, state, False)


def cumulative_reward(agent_class, config_class, seed: int) -> tuple[float, float]:
    env = gym.make("reverie/BlockingMaze-v0")
    agent = make(agent_class, config_class, env, alpha=1.0, planning_steps=10, seed=seed)
    rows = agent.train(env, steps=3000)
    return sum(row["return"] for row in rows if row["total_steps"] <= 1000), sum(row["return"] for row in rows)


def test_dyna_q_plus_recovers_faster_on_the_blocking_maze():
    plain = np.array([cumulative_reward(DynaQ, DynaQConfig, seed) for seed in range(3)])  # (runs, [at 1000, at 3000])
    plus = np.array([cumulative_reward(DynaQPlus, DynaQPlusConfig, seed) for seed in range(3)])
    gained_plain, gained_plus = (plain[:, 1] - plain[:, 0]).mean(), (plus[:, 1] - plus[:, 0]).mean()
    assert plus[:, 1].mean() > plain[:, 1].mean() + 20
    assert gained_plus > 2 * gained_plain


@pytest.mark.parametrize("agent_class, config_class", AGENT_CONFIGS)
def test_checkpoint_round_trip_and_exact_resume(tmp_path, agent_class, config_class):
    env = gym.make("reverie/DynaMaze-v0")
    agent = make(agent_class, config_class, env, planning_steps=5, seed=3)
    agent.train(env, episodes=4)
    path = agent.save(tmp_path / "agent.safetensors")
    assert not list(tmp_path.glob("*.tmp"))
    loaded = load_agent(path)
    assert type(loaded) is agent_class and loaded.config == agent.config
    np.testing.assert_array_equal(loaded.q, agent.q)
    for name, array in agent.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], array, err_msg=name)
    assert [loaded.greedy_action(s) for s in range(loaded.num_states)] == [agent.greedy_action(s) for s in range(agent.num_states)]
    # Training on from the checkpoint is training on without one.
    rows_loaded, rows_kept = loaded.train(env, episodes=7), agent.train(env, episodes=7)
    assert rows_loaded == rows_kept
    np.testing.assert_array_equal(loaded.q, agent.q)


def test_load_names_the_wrong_agent(tmp_path):
    env = gym.make("reverie/DynaMaze-v0")
    path = make(DynaQ, DynaQConfig, env).save(tmp_path / "dyna.safetensors")
    with pytest.raises(ValueError, match="dyna_q"):
        DynaQPlus.load(path)


def test_registry_lists_the_agents():
    assert {"dyna_q", "dyna_q_plus", "prioritized_sweeping"} <= set(AGENTS.names())
    assert AGENTS.get("dyna_q_plus") is DynaQPlus


def test_tabular_agents_need_discrete_spaces():
    with pytest.raises(TypeError, match="Discrete observation"):
        DynaQ(DynaQConfig(), gym.spaces.Box(0, 1, (2,)), gym.spaces.Discrete(2))
