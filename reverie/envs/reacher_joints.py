"""MuJoCo's Reacher arm under a joint-position controller: `reverie/ReacherJoints-v0`.

V-JEPA 2-AC ([26] Assran et al. 2025, sec. 3) acts on a robot arm through its position
controller: an action is a small change of the arm's pose, which a low-level controller tracks.
This env gives gymnasium's Reacher-v5 arm (same model, target and reward terms) that interface.
An action is a change of the two joint angles, at most `MAX_JOINT_STEP` rad each; the commanded
pose is the current one plus the action, and a PD loop tracks it at every physics substep,

    ctrl = clip(KP (q_cmd - q) - KD q_dot, -1, 1)        (torque = 200 ctrl, Reacher's motor gear)

for `FRAME_SKIP` substeps of 0.01 s: 10 control steps per second. The gains put the arm's
response near critical damping, so after a step the arm rests close to the commanded pose and
the frame shows nearly all of the state. The arm is drawn thicker than Reacher's, so that a small
camera frame sees its pose change smoothly as the joints turn (its dynamics are Reacher's). The observation is the arm's proprioception, its two
joint angles (rad), as a robot knows its own pose: the pose after a step is close to the pose
before it plus the action, V-JEPA 2-AC's state update. The target is seen only in the frames
(and read from the simulator by the scripted recording policy). The reward is Reacher-v5's:
minus the fingertip's distance to the target, minus the squared action.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

ENV_ID = "reverie/ReacherJoints-v0"
MAX_JOINT_STEP = 0.25  # rad per control step
FRAME_SKIP = 10  # physics steps of 0.01 s per control step
KP, KD = 8.0, 0.35  # ctrl per rad of pose error, per rad/s of joint speed
DRAWN_ARM_RADIUS = 0.025  # m: links and fingertip drawn 2.5x Reacher's 0.01, about 6 px wide in a 64 px frame


class ReacherJointsEnv(ReacherEnv):
    """Reacher-v5 whose actions are joint-angle changes (rad), tracked by a PD controller."""

    def __init__(self, **kwargs):
        super().__init__(frame_skip=FRAME_SKIP, **kwargs)
        self.action_space = gym.spaces.Box(-MAX_JOINT_STEP, MAX_JOINT_STEP, shape=(2,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        for name in ("link0", "link1", "fingertip"):  # drawing only: masses and inertias were fixed when the model compiled
            self.model.geom(name).size[0] = DRAWN_ARM_RADIUS

    def _get_obs(self) -> np.ndarray:
        return self.data.qpos[:2].copy()  # (2,) shoulder and elbow angles, rad

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -MAX_JOINT_STEP, MAX_JOINT_STEP)
        commanded = self.data.qpos[:2] + action
        for _ in range(self.frame_skip):
            ctrl = KP * (commanded - self.data.qpos[:2]) - KD * self.data.qvel[:2]
            self.do_simulation(np.clip(ctrl, -1.0, 1.0), 1)
        observation = self._get_obs()
        reward, info = self._get_rew(action)
        if self.render_mode == "human":
            self.render()
        return observation, reward, False, False, info

