"""The joint-position-controlled Reacher: registration, action bounds, PD tracking, rendering
through `make_env`, and its scripted policy reaching the target."""

from __future__ import annotations

import numpy as np

from reverie.envs.make import frame_rate, make_env
from reverie.pipelines.policies import make_policy, scripted_for
from reverie.envs.reacher_joints import ENV_ID, MAX_JOINT_STEP
from reverie.envs.reacher_arm import reacher_fingertip


def test_an_action_moves_the_joints_by_about_that_much():
    env = make_env(ENV_ID)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(20):
        before = env.unwrapped.data.qpos[:2].copy()
        action = rng.uniform(-MAX_JOINT_STEP, MAX_JOINT_STEP, 2)
        env.step(action)
        errors.append(np.abs(env.unwrapped.data.qpos[:2] - (before + action)).max())
    assert max(errors) < 0.1 * MAX_JOINT_STEP  # tracked to within a tenth of the largest step
    env.close()


def test_actions_past_the_bound_are_clipped():
    env = make_env(ENV_ID)
    assert env.action_space.low.tolist() == [-MAX_JOINT_STEP] * 2 and env.action_space.high.tolist() == [MAX_JOINT_STEP] * 2
    env.reset(seed=1)
    before = env.unwrapped.data.qpos[0]
    env.step(np.array([10.0, 0.0]))
    assert env.unwrapped.data.qpos[0] - before < 1.1 * MAX_JOINT_STEP
    env.close()


def test_frames_render_at_the_control_rate():
    env = make_env(ENV_ID, size=32)
    env.reset(seed=2)
    assert frame_rate(env) == 10.0
    first = env.render()
    env.step(np.full(2, MAX_JOINT_STEP))
    assert first.shape == (32, 32, 3) and not np.array_equal(first, env.render())
    env.close()


def fingertip_to_target(env) -> float:
    return float(np.linalg.norm(reacher_fingertip(env) - env.unwrapped.data.body("target").xpos[:2]))


def test_the_scripted_policy_is_the_joint_one_and_reaches_the_target():
    assert scripted_for(ENV_ID).__name__ == "reacher_joints" and scripted_for("Reacher-v5").__name__ == "reacher"
    env = make_env(ENV_ID)
    observation, _ = env.reset(seed=3)
    start = fingertip_to_target(env)
    policy = make_policy("scripted", env, seed=3)
    for _ in range(20):
        observation, *_ = env.step(policy(observation))
    np.testing.assert_array_equal(observation, env.unwrapped.data.qpos[:2])  # the observation is the joint angles
    assert fingertip_to_target(env) < min(0.04, 0.3 * start)
    env.close()
