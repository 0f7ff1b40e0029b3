"""The oracle baseline: the planner's search through the true simulator. Its energy is the distance
the env itself reaches, its rollouts leave the real episode alone, it reaches the goals under the
joint-position controller, and it refuses envs and goals it cannot plan through."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from reverie.envs.make import make_env
from reverie.planning.control import PlanningSetupError, action_bounds, run_goal_episode, summarize
from reverie.planning.goals import REACHER_SUCCESS_DISTANCE, Goal, goal_task_for, render_frame
from reverie.planning.oracle import OraclePolicy
from reverie.planning.planners import make_planner

ENV_ID = "reverie/ReacherJoints-v0"
SIZE = 32


@pytest.fixture
def reacher():
    env = make_env(ENV_ID, size=SIZE)
    yield env
    env.close()


def oracle(env, seed: int = 0, **search) -> OraclePolicy:
    low, high = action_bounds(env)
    settings = dict(horizon=4, samples=16, iterations=2, elites=4, init_std=0.1) | search
    return OraclePolicy(env, make_planner("cem", torch.as_tensor(low), torch.as_tensor(high), **settings), seed=seed)


def test_the_energy_is_the_distance_the_env_reaches_and_the_episode_is_left_alone(reacher):
    task = goal_task_for(ENV_ID)
    goal = task.make_goal(reacher, seed=3, size=SIZE)
    policy = oracle(reacher)
    policy.reset(goal)
    task.start(reacher, goal)
    reacher.step(np.array([0.2, -0.1], np.float32))  # moving: the state has joint speeds too
    data = reacher.unwrapped.data
    qpos, qvel = data.qpos.copy(), data.qvel.copy()
    sequences = torch.rand(3, 4, 2, generator=torch.Generator().manual_seed(0)) * 0.5 - 0.25  # (N, H, A)
    distances = policy.final_distances(qpos, qvel, sequences)
    np.testing.assert_array_equal(data.qpos, qpos)
    np.testing.assert_array_equal(data.qvel, qvel)
    for sequence, distance in zip(sequences.numpy(), distances):
        reacher.unwrapped.set_state(qpos, qvel)
        for action in sequence:
            reacher.step(action)
        assert float(distance) == pytest.approx(task.errors(reacher, goal)["distance"], abs=1e-9)


def test_the_oracle_reaches_the_goals_and_is_seeded(reacher):
    task = goal_task_for(ENV_ID)
    goals = [task.make_goal(reacher, seed, SIZE) for seed in range(3)]
    results = [run_goal_episode(reacher, goal, oracle(reacher), steps=25) for goal in goals]
    summary = summarize(results)
    assert summary["success_rate"] == 1.0, [result.final_distance for result in results]  # within the task's 0.02 m at the end
    assert all(result.initial_distance > 3 * REACHER_SUCCESS_DISTANCE for result in results)
    assert summary["seconds_per_action"] > 0
    again = run_goal_episode(reacher, goals[1], oracle(reacher), steps=5).actions
    np.testing.assert_array_equal(again, results[1].actions[:5])
    assert not np.array_equal(again, run_goal_episode(reacher, goals[1], oracle(reacher, seed=1), steps=5).actions)


def test_freeing_the_oracle_leaves_the_env_rendering(reacher):
    goal = goal_task_for(ENV_ID).make_goal(reacher, seed=0, size=SIZE)
    run_goal_episode(reacher, goal, oracle(reacher), steps=2)
    gc.collect()  # the private copy is gone; it never made a GL context to free
    goal.task.start(reacher, goal)
    assert render_frame(reacher, SIZE).std() > 0


def test_the_oracle_needs_a_true_goal_and_a_mujoco_env(reacher):
    task = goal_task_for(ENV_ID)
    image_goal = Goal(task, np.zeros((SIZE, SIZE, 3), np.uint8), None, seed=0)
    with pytest.raises(PlanningSetupError, match="an image-only goal has none"):
        oracle(reacher).reset(image_goal)
    pusht = make_env("gym_pusht/PushT-v0")
    with pytest.raises(PlanningSetupError, match="gym_pusht/PushT-v0: the oracle rolls out a MuJoCo env"):
        oracle(pusht)
    pusht.close()
