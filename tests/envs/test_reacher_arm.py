"""The Reacher arm's geometry: forward kinematics agree with MuJoCo's, inverse kinematics invert
them on both elbow branches, and targets out of reach get the nearest pose in their direction."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from reverie.envs.reacher_arm import REACHER_ELBOW_RANGE, REACHER_LINKS, reacher_arm_angles, reacher_fingertip, reacher_fingertip_at

UPPER, FORE = REACHER_LINKS
LONGEST = UPPER + FORE
SHORTEST = float(np.sqrt(UPPER**2 + FORE**2 + 2 * UPPER * FORE * np.cos(REACHER_ELBOW_RANGE)))  # the elbow bent to its limit


def reachable_targets(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    reach = rng.uniform(SHORTEST + 1e-3, LONGEST - 1e-3, count)
    angle = rng.uniform(-np.pi, np.pi, count)
    return np.stack([reach * np.cos(angle), reach * np.sin(angle)], axis=1)


@pytest.mark.parametrize(
    "angles, fingertip",
    [((0.0, 0.0), (LONGEST, 0.0)), ((np.pi / 2, 0.0), (0.0, LONGEST)), ((0.0, np.pi / 2), (UPPER, FORE)), ((np.pi, -np.pi / 2), (-UPPER, FORE))],
)
def test_forward_kinematics_of_simple_poses(angles, fingertip):
    np.testing.assert_allclose(reacher_fingertip_at(np.array(angles)), fingertip, atol=1e-12)


def test_forward_kinematics_are_mujocos_and_batched():
    env = gym.make("Reacher-v5")
    env.reset(seed=0)
    sim = env.unwrapped
    angles = np.random.default_rng(1).uniform(-REACHER_ELBOW_RANGE, REACHER_ELBOW_RANGE, size=(6, 2))
    for arm in angles:
        qpos = sim.data.qpos.copy()
        qpos[:2] = arm
        sim.set_state(qpos, sim.data.qvel)
        np.testing.assert_allclose(reacher_fingertip_at(arm), sim.data.body("fingertip").xpos[:2], atol=1e-9)
    batched = reacher_fingertip_at(angles.reshape(2, 3, 2))
    assert batched.shape == (2, 3, 2)
    np.testing.assert_allclose(batched.reshape(6, 2), np.stack([reacher_fingertip_at(arm) for arm in angles]), rtol=0, atol=1e-15)
    env.close()


def test_the_fingertip_after_a_step_is_that_of_the_joint_angles_now():
    env = gym.make("Reacher-v5")
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.array([1.0, -1.0], np.float32))
    data = env.unwrapped.data
    now = reacher_fingertip(env)
    mujoco.mj_forward(env.unwrapped.model, data)  # the kinematics of the current joint angles
    np.testing.assert_allclose(now, data.body("fingertip").xpos[:2], atol=1e-9)
    env.close()


@pytest.mark.parametrize("elbow_sign", [1.0, -1.0])
def test_inverse_kinematics_invert_forward_kinematics(elbow_sign):
    for target in reachable_targets(50):
        angles = reacher_arm_angles(target, elbow_sign)
        np.testing.assert_allclose(reacher_fingertip_at(angles), target, atol=1e-12)
        assert np.sign(angles[1]) == elbow_sign and abs(angles[1]) <= REACHER_ELBOW_RANGE


def test_the_two_elbow_branches_are_different_poses_mirrored_about_the_target_line():
    for target in reachable_targets(20, seed=2):
        up, down = reacher_arm_angles(target, 1.0), reacher_arm_angles(target, -1.0)
        assert up[1] == pytest.approx(-down[1], abs=1e-12) and abs(up[0] - down[0]) > 1e-3
        direction = np.arctan2(target[1], target[0])
        assert np.cos(up[0] - direction) == pytest.approx(np.cos(down[0] - direction), abs=1e-12)  # the elbow either side


def test_targets_beyond_reach_get_the_straight_arm_pointing_at_them():
    for target in (np.array([0.5, 0.0]), np.array([-0.3, 0.4]), np.array([0.0, -0.22])):
        angles = reacher_arm_angles(target, 1.0)
        assert angles[1] == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(reacher_fingertip_at(angles), LONGEST * target / np.linalg.norm(target), atol=1e-12)


@pytest.mark.parametrize("elbow_sign", [1.0, -1.0])
def test_targets_too_near_the_shoulder_get_the_elbow_at_its_limit(elbow_sign):
    for target in (np.array([0.005, 0.0]), np.array([-0.01, 0.01]), np.array([0.0, -0.015])):
        angles = reacher_arm_angles(target, elbow_sign)
        assert angles[1] == pytest.approx(elbow_sign * REACHER_ELBOW_RANGE, abs=1e-12)
        np.testing.assert_allclose(reacher_fingertip_at(angles), SHORTEST * target / np.linalg.norm(target), atol=1e-12)
