"""The oracle baseline: the planner's own search, run through the true simulator instead of a
world model, the ceiling for this planner budget.

`OraclePolicy` is the receding-horizon control of `reverie.planning.control.PlanningPolicy`
(V-JEPA 2-AC, [26] Assran et al. 2025, sec. 4) with the same planner and config (CEM or MPPI,
horizon H, samples N, iterations, std, seed, warm start), and one change: a candidate sequence's
energy is not the model's feature distance to the goal image but the true distance the simulator
gives after the sequence's last action,

    E(a_{1:H}) = | fingertip(sim(s_t, a_{1:H})) - fingertip_goal |,

where s_t is the env's MuJoCo state now (`data.qpos`, `data.qvel`) and fingertip_goal the goal's
true state (`Goal.state`). Each candidate is rolled forward from s_t with `env.step` in a private
copy of the env (no renderer), so the real episode's state is only read. With a perfect model the
planned policy could do no better than this with its budget: the planned-to-oracle gap is the
model's, and the oracle's shortfall from every goal is the search's.

The cost is the simulator's: N x H steps per search iteration. On reverie/ReacherJoints-v0 (RK4,
10 physics steps of 0.01 s per action) that is about 12,000 MuJoCo steps per action at the
quickstart's budget (N 48, H 8, 3 iterations); `benchmarks/planning.py` measures it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from reverie.planning.control import PlanningSetupError, episode_seed
from reverie.planning.goals import Goal
from reverie.planning.planners import Planner


def private_simulator(env: gym.Env):
    """A second instance of `env`'s MuJoCo env, unwrapped and never rendered, to roll states in.

    Made from the env's spec without its render mode: no GL context is ever made, so closing or
    freeing it cannot touch the real env's renderer."""
    simulator = env.unwrapped
    if not all(hasattr(simulator, name) for name in ("set_state", "data", "model")):
        raise PlanningSetupError(f"{env.spec.id}: the oracle rolls out a MuJoCo env (data.qpos, data.qvel, set_state); this one is not")
    return gym.make(env.spec.id, **(env.spec.kwargs | {"render_mode": None})).unwrapped


class OraclePolicy:
    """Plan with `planner` through the true simulator toward the goal's true state, execute the
    first action, replan (the module docstring has the energy). `env` is the env the episodes run in."""

    def __init__(self, env: gym.Env, planner: Planner, seed: int = 0):
        self.env, self.planner, self.seed = env, planner, seed
        self.simulator = private_simulator(env)
        self.goal: Goal | None = None

    def reset(self, goal: Goal) -> None:
        if goal.state is None:
            raise PlanningSetupError("the oracle plans toward a goal's true state; an image-only goal has none (use --goal-from-env)")
        self.goal = goal
        self.planner.reset()
        self.planner.generator.manual_seed(episode_seed(self.seed, goal.seed))

    def final_distances(self, qpos: np.ndarray, qvel: np.ndarray, action_sequences: Tensor) -> Tensor:
        """(N,) the task's true distance to the goal after each sequence (N, H, A), from (qpos, qvel)."""
        distances = []
        for actions in action_sequences.cpu().numpy():  # (H, A)
            self.simulator.set_state(qpos, qvel)
            for action in actions:
                self.simulator.step(action)
            distances.append(self.goal.task.true_errors(self.simulator, self.goal.state)["distance"])
        return torch.tensor(distances, dtype=torch.float64)

    def __call__(self, frame: np.ndarray, observation: Any) -> np.ndarray:
        data = self.env.unwrapped.data
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        action = self.planner.act(lambda action_sequences: self.final_distances(qpos, qvel, action_sequences))
        return action.cpu().numpy()
