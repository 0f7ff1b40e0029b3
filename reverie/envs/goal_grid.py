"""`reverie/GoalGrid-v0`: a deterministic goal-reaching task seen only in pixels, for policies that
plan by generating video (UniPi [22] Du et al. 2023).

An agent (a red square) moves on a toroidal room of `size` x `size` cells, `cell` pixels each, one
cell up, down, left or right a step; the room wraps around, so every action moves the agent and
shows in the next frame. The observation is the frame, (size cell, size cell, 3) uint8. A reset
draws the start and a different goal cell (or takes them from `options`); the goal is not drawn:
it is given as the frame with the agent on it (`info["goal_frame"]`) or as a text
(`info["task"]`, "go to row R, column C"). Reaching the goal gives reward 1 and ends the episode.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right
BACKGROUND, GRID_LINE, AGENT = (200, 200, 200), (160, 160, 160), (220, 40, 40)


def task_text(cell: tuple[int, int]) -> str:
    return f"go to row {cell[0]}, column {cell[1]}"


class GoalGridEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, size: int = 6, cell: int = 4, render_mode: str | None = None):
        if size < 2 or cell < 3:
            raise ValueError(f"GoalGrid: size {size}, cell {cell}: a room of at least 2 x 2 cells of at least 3 px")
        self.size, self.cell, self.render_mode = size, cell, render_mode
        self.observation_space = gym.spaces.Box(0, 255, (size * cell, size * cell, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self.agent, self.goal = (0, 0), (0, 1)

    def frame_at(self, cell: tuple[int, int]) -> np.ndarray:
        """The frame with the agent at `cell`."""
        pixels = np.empty(self.observation_space.shape, np.uint8)
        pixels[:] = BACKGROUND
        pixels[:: self.cell], pixels[:, :: self.cell] = GRID_LINE, GRID_LINE
        row, col = cell
        inset = max(1, self.cell // 4)
        pixels[row * self.cell + inset : (row + 1) * self.cell - inset + 1, col * self.cell + inset : (col + 1) * self.cell - inset + 1] = AGENT
        return pixels

    def moved(self, cell: tuple[int, int], action: int) -> tuple[int, int]:
        d_row, d_col = MOVES[action]
        return (cell[0] + d_row) % self.size, (cell[1] + d_col) % self.size

    def info(self) -> dict:
        return {"agent": self.agent, "goal": self.goal, "goal_frame": self.frame_at(self.goal), "task": task_text(self.goal)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        cells = self.np_random.choice(self.size * self.size, size=2, replace=False)
        self.agent = tuple(options.get("start", divmod(int(cells[0]), self.size)))
        self.goal = tuple(options.get("goal", divmod(int(cells[1]), self.size)))
        if self.agent == self.goal:
            raise ValueError(f"GoalGrid: start and goal are both {self.agent}; give two different cells")
        return self.frame_at(self.agent), self.info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"GoalGrid: action {action!r} is not in {self.action_space}")
        self.agent = self.moved(self.agent, int(action))
        reached = self.agent == self.goal
        return self.frame_at(self.agent), float(reached), reached, False, self.info()

    def render(self) -> np.ndarray:
        return self.frame_at(self.agent)

    def shortest_path(self, start: tuple[int, int], goal: tuple[int, int], rng: np.random.Generator) -> list[int]:
        """Actions of a shortest path from start to goal, its vertical and horizontal moves in a random order."""
        moves = []
        for axis, (negative, positive) in enumerate(((0, 1), (2, 3))):
            forward = (goal[axis] - start[axis]) % self.size
            moves += [positive] * forward if forward <= self.size - forward else [negative] * (self.size - forward)
        return [int(action) for action in rng.permutation(moves)]
