"""The cart-pole swing-up with PILCO's parameters ([3] Deisenroth & Rasmussen 2011, its
cart-pole experiment; Deisenroth 2010, thesis, appendix; the PILCO software's `dynamics_cp.m`).

A cart of 0.5 kg on a rail carries a uniform pole of 0.5 kg and length 0.6 m; the cart feels a
friction of 0.1 N per m/s and a horizontal force u in [-10, 10] N, held constant over each 0.1 s
step (zero-order hold) while the equations of motion are integrated with `SUBSTEPS` RK4 steps:

    x_ddot     = (2 m l th_dot^2 sin th + 3 m g sin th cos th + 4 u - 4 b x_dot) / (4 (M + m) - 3 m cos^2 th)
    th_ddot    = (-3 m l th_dot^2 sin th cos th - 6 (M + m) g sin th - 6 (u - b x_dot) cos th)
                 / (4 l (M + m) - 3 m l cos^2 th)

with l the pole's length, M and m the cart's and the pole's masses, g = 9.82. The angle th is 0
with the pole hanging down and pi with it upright; it is not wrapped. Observations are
(x, x_dot, th, th_dot). An episode is 40 steps (4 s) and starts from N(0, 0.1^2 I), hanging down.

The cost of a state is saturating in the distance d of the pole's tip, (x + l sin th, -l cos th),
to the upright target (0, l):

    c(s) = 1 - exp(-d^2 / (2 * 0.25^2))

and the reward of a step is 1 - c of the state it reaches, so an episode returns at most 40.
`tip_offset` writes the tip minus the target as a linear map of the model features
(x, x_dot, th_dot, sin th, cos th), which PILCO needs to take the cost's expectation under a
Gaussian in closed form.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

CART_MASS = 0.5  # kg
POLE_MASS = 0.5  # kg
POLE_LENGTH = 0.6  # m
FRICTION = 0.1  # N / (m/s)
GRAVITY = 9.82  # m/s^2
MAX_FORCE = 10.0  # N
DT = 0.1  # s per step
SUBSTEPS = 10  # RK4 steps within one control step
EPISODE_STEPS = 40  # 4 s
COST_WIDTH = 0.25  # m
START_STD = 0.1


def derivatives(state: np.ndarray, force: float) -> np.ndarray:
    """d/dt of (x, x_dot, th, th_dot) under `force`; see the module docstring."""
    _, x_dot, theta, theta_dot = state
    sin, cos = np.sin(theta), np.cos(theta)
    total = CART_MASS + POLE_MASS
    x_ddot = (
        2 * POLE_MASS * POLE_LENGTH * theta_dot**2 * sin + 3 * POLE_MASS * GRAVITY * sin * cos + 4 * force - 4 * FRICTION * x_dot
    ) / (4 * total - 3 * POLE_MASS * cos**2)
    theta_ddot = (
        -3 * POLE_MASS * POLE_LENGTH * theta_dot**2 * sin * cos - 6 * total * GRAVITY * sin - 6 * (force - FRICTION * x_dot) * cos
    ) / (4 * POLE_LENGTH * total - 3 * POLE_MASS * POLE_LENGTH * cos**2)
    return np.array([x_dot, x_ddot, theta_dot, theta_ddot])


def integrate(state: np.ndarray, force: float, duration: float = DT, substeps: int = SUBSTEPS) -> np.ndarray:
    """The state after `duration` seconds of constant `force`, by classical RK4."""
    h = duration / substeps
    for _ in range(substeps):
        k1 = derivatives(state, force)
        k2 = derivatives(state + h / 2 * k1, force)
        k3 = derivatives(state + h / 2 * k2, force)
        k4 = derivatives(state + h * k3, force)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return state


def tip_offset() -> tuple[Tensor, Tensor]:
    """(projection (2, 5), target (2,)): the tip minus the target is
    projection @ (x, x_dot, th_dot, sin th, cos th) - target."""
    projection = torch.tensor([[1.0, 0.0, 0.0, POLE_LENGTH, 0.0], [0.0, 0.0, 0.0, 0.0, -POLE_LENGTH]], dtype=torch.float64)
    return projection, torch.tensor([0.0, POLE_LENGTH], dtype=torch.float64)


def tip_distance_sq(observations: Tensor) -> Tensor:
    """(...) squared distance of the tip to the upright target, for (..., 4) observations."""
    x, theta = observations[..., 0], observations[..., 2]
    return (x + POLE_LENGTH * torch.sin(theta)) ** 2 + (-POLE_LENGTH * torch.cos(theta) - POLE_LENGTH) ** 2


def pilco_cartpole_reward(observations: Tensor, actions: Tensor, next_observations: Tensor) -> Tensor:
    """(...) 1 - saturating cost of the state reached; a `reverie.envs.model_tasks.ModelTask` reward."""
    return torch.exp(-tip_distance_sq(next_observations) / (2 * COST_WIDTH**2))


def pilco_cartpole_model_input(observations: Tensor) -> Tensor:
    """(..., 5) features (x, x_dot, th_dot, sin th, cos th) of (..., 4) observations."""
    theta = observations[..., 2:3]
    return torch.cat([observations[..., :2], observations[..., 3:], torch.sin(theta), torch.cos(theta)], dim=-1)


class PilcoCartpoleEnv(gym.Env):
    """PILCO's cart-pole swing-up; see the module docstring."""

    metadata = {"render_modes": []}

    def __init__(self, substeps: int = SUBSTEPS):
        self.substeps = substeps
        self.action_space = gym.spaces.Box(-MAX_FORCE, MAX_FORCE, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)
        self.state = np.zeros(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = self.np_random.normal(0.0, START_STD, 4)
        return self.state.copy(), {}

    def step(self, action):
        force = float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -MAX_FORCE, MAX_FORCE))
        self.state = integrate(self.state, force, DT, self.substeps)
        distance_sq = float(tip_distance_sq(torch.from_numpy(self.state)))
        reward = float(np.exp(-distance_sq / (2 * COST_WIDTH**2)))
        return self.state.copy(), reward, False, False, {"tip_distance": distance_sq**0.5}
