"""Prioritized sweeping: its queue, its predecessor model, and fewer backups than Dyna-Q (Example 8.4)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from reverie.agents.dyna import DynaQ, DynaQConfig
from reverie.envs.gridworlds import greedy_path_length, shortest_path_length
from reverie.agents.prioritized_sweeping import PrioritizedSweeping, PrioritizedSweepingConfig


def sweeping_agent(**config) -> PrioritizedSweeping:
    env = gym.make("reverie/DynaMaze-v0")
    return PrioritizedSweeping(PrioritizedSweepingConfig(**config), env.observation_space, env.action_space)


def test_queue_pops_highest_priority_first_and_keeps_the_higher_one():
    agent = sweeping_agent(theta=0.01)
    agent.push(1, 0, 0.5)
    agent.push(2, 1, 0.9)
    agent.push(3, 2, 0.005)  # below theta: not queued
    agent.push(1, 0, 0.2)  # lower than queued: ignored
    agent.push(4, 3, 0.3)
    agent.push(4, 3, 0.95)  # higher: promoted
    assert [agent.pop() for _ in range(4)] == [(4, 3), (2, 1), (1, 0), None]


def test_predecessors_follow_the_model_when_the_world_changes():
    agent = sweeping_agent()
    agent.observe(5, 3, 0.0, 6, False)
    agent.observe(7, 2, 0.0, 6, False)
    assert agent.predecessors[6] == {(5, 3), (7, 2)}
    agent.observe(5, 3, 0.0, 5, False)  # a wall appeared: (5, right) now stays put
    assert agent.predecessors[6] == {(7, 2)} and (5, 3) in agent.predecessors[5]


def test_no_backups_before_any_reward():
    """Nothing has a priority until the goal is first reached: the random first episode costs nothing."""
    env = gym.make("reverie/DynaMaze-v0")
    agent = PrioritizedSweeping(PrioritizedSweepingConfig(seed=0), env.observation_space, env.action_space)
    agent.train(env, until=lambda agent: agent.total_steps >= 30 or agent.episodes > 0)
    assert agent.episodes == 0 and agent.backups == 0


def backups_until_near_optimal(agent_class, config_class, seed: int) -> int:
    env = gym.make("reverie/DynaMaze-v0", scale=2)
    maze = env.unwrapped
    longest = math.floor(1.2 * shortest_path_length(maze))
    agent = agent_class(config_class(alpha=0.5, planning_steps=5, seed=seed), env.observation_space, env.action_space)
    agent.train(env, until=lambda agent: greedy_path_length(maze, agent.q, longest) is not None)
    assert greedy_path_length(maze, agent.q, longest) <= longest
    return agent.backups


def test_prioritized_sweeping_needs_fewer_backups_than_dyna_q_on_the_2x_maze():
    dyna_q = np.mean([backups_until_near_optimal(DynaQ, DynaQConfig, seed) for seed in range(3)])
    sweeping = np.mean([backups_until_near_optimal(PrioritizedSweeping, PrioritizedSweepingConfig, seed) for seed in range(3)])
    assert sweeping * 2 < dyna_q
