"""UniPi ([22] Du et al. 2023, "Learning Universal Policies via Text-Guided Video Generation"): a
policy that plans by generating a video of itself reaching the goal and reads its actions back.

    plan   = generate(x_0, goal, H)             the goal-conditioned video model (`goal_video`)
    a_0..  = IDM(plan_t, plan_{t+1})            the inverse dynamics model (`inverse_dynamics`)

The actions are executed in the real env; every `replan_every` steps (UniPi's closed-loop variant)
or once the plan is used up, a new plan starts from the frame the env shows. An episode succeeds
when the env ends it at the goal (terminated) within its time limit: UniPi's success criterion.

Reference points measured the same way (`reverie.planning.video_policy.success_rate`): random
actions, and the inverse dynamics model run on the ground-truth video of a shortest path to the
goal, the ceiling of any video the generator could make. Demonstrations and real transitions of
the goal grid (`reverie.envs.goal_grid`) for training both models come from `demonstrations` and
`random_transitions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from reverie.planning.control import wilson_interval
from reverie.planning.goal_video import GoalVideoModel
from reverie.planning.inverse_dynamics import InverseDynamicsModel

Planner = Callable[[np.ndarray, dict], list[int]]  # (frame (H, W, 3) uint8, the env's info) -> actions to take


def as_tensor(frames: np.ndarray | list[np.ndarray]) -> Tensor:
    """uint8 frames (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(frames)).movedim(-1, -3).float() / 255


@dataclass
class Transitions:
    frames: Tensor  # (N, 3, H, W) in [0, 1]
    next_frames: Tensor  # (N, 3, H, W)
    actions: Tensor  # (N,) int64
    goal_frames: Tensor | None = None  # (N, 3, H, W): the frame with the agent at the episode's goal
    tasks: list[str] | None = None  # (N,): the goal as text


def demonstrations(env: gym.Env, episodes: int, seed: int) -> Transitions:
    """Shortest-path episodes of the goal grid from random starts to random goals."""
    grid, rng = env.unwrapped, np.random.default_rng(seed)
    frames, next_frames, actions, goals, tasks = [], [], [], [], []
    for episode in range(episodes):
        frame, info = env.reset(seed=seed + episode)
        for action in grid.shortest_path(info["agent"], info["goal"], rng):
            next_frame, _, terminated, _, _ = env.step(action)
            frames.append(frame), next_frames.append(next_frame), actions.append(action), goals.append(info["goal_frame"]), tasks.append(info["task"])
            frame = next_frame
    return Transitions(as_tensor(frames), as_tensor(next_frames), torch.tensor(actions), as_tensor(goals), tasks)


def random_transitions(env: gym.Env, steps: int, seed: int) -> Transitions:
    """Real transitions under uniformly random actions (what the inverse dynamics model learns from)."""
    frames, next_frames, actions = [], [], []
    frame, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(steps):
        action = int(env.action_space.sample())
        next_frame, _, terminated, truncated, _ = env.step(action)
        frames.append(frame), next_frames.append(next_frame), actions.append(action)
        frame = env.reset()[0] if terminated or truncated else next_frame
    return Transitions(as_tensor(frames), as_tensor(next_frames), torch.tensor(actions))


class VideoPolicy:
    """UniPi's planner: a plan of `horizon` frames toward the goal image (or text, `text_goals`), read into actions."""

    def __init__(self, video_model: GoalVideoModel, inverse_dynamics: InverseDynamicsModel, horizon: int, text_goals: bool = False, seed: int = 0):
        self.video_model, self.inverse_dynamics = video_model.eval(), inverse_dynamics.eval()
        self.horizon, self.text_goals = horizon, text_goals
        self.generator = torch.Generator().manual_seed(seed)

    def video(self, frame: np.ndarray, info: dict) -> Tensor:
        """The generated plan (1, horizon + 1, 3, H, W) from `frame` toward the goal in `info`."""
        goal = {"tasks": [info["task"]]} if self.text_goals else {"goal_frames": as_tensor(info["goal_frame"])[None]}
        return self.video_model.generate(as_tensor(frame)[None], self.horizon, generator=self.generator, **goal)

    def __call__(self, frame: np.ndarray, info: dict) -> list[int]:
        return self.inverse_dynamics.infer(self.video(frame, info))[0].tolist()


def shortest_path_video(env: gym.Env, info: dict, rng: np.random.Generator) -> Tensor:
    """The real video (T + 1, 3, H, W) of a shortest path from the agent to the goal in `info`."""
    grid = env.unwrapped
    cells = [info["agent"]]
    for action in grid.shortest_path(info["agent"], info["goal"], rng):
        cells.append(grid.moved(cells[-1], action))
    return as_tensor([grid.frame_at(cell) for cell in cells])


def ground_truth_video_planner(inverse_dynamics: InverseDynamicsModel, env: gym.Env, seed: int = 0) -> Planner:
    """The ceiling: the inverse dynamics model run on the real video of a shortest path to the goal."""
    rng = np.random.default_rng(seed)
    inverse_dynamics.eval()
    return lambda frame, info: inverse_dynamics.infer(shortest_path_video(env, info, rng)[None])[0].tolist()


def random_planner(env: gym.Env, seed: int = 0) -> Planner:
    env.action_space.seed(seed)
    return lambda frame, info: [int(env.action_space.sample())]


def run_episode(env: gym.Env, planner: Planner, seed: int, replan_every: int | None = None) -> bool:
    """One episode from reset(seed): plan, take the plan's actions (replanning after `replan_every`
    or when the plan runs out), until the env ends it; whether it ended at the goal."""
    frame, info = env.reset(seed=seed)
    while True:
        actions = planner(frame, info)[:replan_every]
        for action in actions:
            frame, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                return bool(terminated)


def success_rate(env: gym.Env, planner: Planner, episodes: int, seed: int, replan_every: int | None = None) -> dict:
    """The share of `episodes` episodes (seeds seed, seed + 1, ..) that end at the goal, with a 95% (Wilson) interval."""
    successes = sum(run_episode(env, planner, seed + episode, replan_every) for episode in range(episodes))
    return {"success_rate": successes / episodes, "successes": successes, "episodes": episodes, "ci95": list(wilson_interval(successes, episodes))}
