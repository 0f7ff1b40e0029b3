"""The continuous cart-pole swing-up of PETS ([9] Chua et al. 2018, Sec. 6 and appendix), in MuJoCo.

The physics follow the PETS code's `cartpole.xml`: a 0.6 m capsule pole (radius 0.049) hinged on a
capsule cart (radius 0.1, half-length 0.1), density 1000, damping 1 on both joints, a slider
limited to +-2.5 m driven by a motor of gear 100 with control in [-3, 3], RK4 at 0.02 s and a frame
skip of 2 (0.04 s per step), 200 steps per episode. The pole starts hanging down (theta = 0), with
N(0, 0.1) noise on positions and velocities. Observations are (x, theta, x_dot, theta_dot).

The reward of a step depends on its action and the next state only:

    tip(s)  = (x - 0.6 sin theta, -0.6 cos theta)
    r(s, a) = exp(-|tip(s) - (0, 0.6)|^2 / 0.6^2) - 0.01 |a|^2

so an episode returns at most 200 (the tip held up over the rail's centre). `swingup_reward` is the
same function on torch tensors, for a planner; `swingup_model_input` gives the features PETS feeds
its model: (sin theta, cos theta, x, x_dot, theta_dot).
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import torch
from torch import Tensor

POLE_LENGTH = 0.6
ACTION_COST = 0.01
FRAME_SKIP = 2

CARTPOLE_XML = """
<mujoco model="cartpole_swingup">
  <compiler inertiafromgeom="true"/>
  <default>
    <joint damping="1" limited="true"/>
    <geom contype="0" conaffinity="0"/>
    <motor ctrlrange="-3 3" ctrllimited="true"/>
  </default>
  <option gravity="0 0 -9.81" integrator="RK4" timestep="0.02"/>
  <worldbody>
    <body name="cart" pos="0 0 0">
      <joint name="slider" type="slide" axis="1 0 0" range="-2.5 2.5"/>
      <geom name="cart" type="capsule" size="0.1 0.1" quat="0.707 0 0.707 0"/>
      <body name="pole" pos="0 0 0">
        <joint name="hinge" type="hinge" axis="0 1 0" limited="false"/>
        <geom name="pole" type="capsule" fromto="0 0 0 0.001 0 -0.6" size="0.049"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="slide" joint="slider" gear="100"/>
  </actuator>
</mujoco>
"""


def swingup_reward(observations: Tensor, actions: Tensor, next_observations: Tensor) -> Tensor:
    """(...) reward of reaching `next_observations` (..., 4) with `actions` (..., 1)."""
    x, theta = next_observations[..., 0], next_observations[..., 1]
    tip_x, tip_y = x - POLE_LENGTH * torch.sin(theta), -POLE_LENGTH * torch.cos(theta)
    distance_sq = tip_x**2 + (tip_y - POLE_LENGTH) ** 2
    return torch.exp(-distance_sq / POLE_LENGTH**2) - ACTION_COST * (actions**2).sum(-1)


def swingup_model_input(observations: Tensor) -> Tensor:
    """(..., 5) features (sin theta, cos theta, x, x_dot, theta_dot) of (..., 4) observations."""
    theta = observations[..., 1:2]
    return torch.cat([torch.sin(theta), torch.cos(theta), observations[..., :1], observations[..., 2:]], dim=-1)


class CartpoleSwingupEnv(gym.Env):
    """Swing the pole up from hanging and hold it over the rail's centre; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, render_mode: str | None = None):
        self.model = mujoco.MjModel.from_xml_string(CARTPOLE_XML)
        self.data = mujoco.MjData(self.model)
        self.render_mode = render_mode
        self._renderer = None
        self.action_space = gym.spaces.Box(-3.0, 3.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)

    def _observation(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self.np_random.normal(0.0, 0.1, self.model.nq)
        self.data.qvel[:] = self.np_random.normal(0.0, 0.1, self.model.nv)
        mujoco.mj_forward(self.model, self.data)
        return self._observation(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64).reshape(1), -3.0, 3.0)
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        observation = self._observation()
        reward = swingup_reward(torch.from_numpy(observation), torch.from_numpy(action), torch.from_numpy(observation))
        return observation, float(reward), False, False, {}

    def render(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 240, 320)
        self._renderer.update_scene(self.data)
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
