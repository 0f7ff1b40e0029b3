"""The deterministic grid mazes of Sutton & Barto (2018), ch. 8, as gymnasium environments.

- `reverie/DynaMaze-v0`: the 6x9 Dyna maze of Example 8.1 / Figure 8.2 (start (2, 0), goal (0, 8),
  14 steps at best). `scale=f` gives the maze at f times the resolution (each cell an f x f block,
  the goal block all goal cells), as in the prioritized-sweeping comparison of Example 8.4.
- `reverie/BlockingMaze-v0`: Example 8.2 / Figure 8.4; the opening in the wall moves from the right
  end to the left end after 1000 steps, so the learned shortest path is blocked.
- `reverie/ShortcutMaze-v0`: Example 8.3 / Figure 8.5; after 3000 steps a shorter path opens on the
  right and the old one stays open.

Observations are cell indices `row * cols + col` (Discrete(rows * cols)); actions are up, down,
left, right (Discrete(4)). A move into a wall or off the grid leaves the agent where it is. Reaching
a goal cell gives reward 1 and ends the episode; every other step gives 0. A changing maze counts
steps across episodes (`total_steps`), as the book's experiments do, and switches its layout when
that count reaches `switch_step`.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right: (d_row, d_col)

# '#' wall, 'S' start, 'G' goal, '.' free.
DYNA_MAZE = """
.......#G
..#....#.
S.#....#.
..#......
.....#...
.........
"""
BLOCKING_MAZE = """
........G
.........
.........
########.
.........
...S.....
"""
BLOCKING_MAZE_AFTER = """
........G
.........
.........
.########
.........
...S.....
"""
SHORTCUT_MAZE = """
........G
.........
.........
.########
.........
...S.....
"""
SHORTCUT_MAZE_AFTER = """
........G
.........
.........
.#######.
.........
...S.....
"""


def parse_layout(layout: str) -> list[str]:
    rows = [line.strip() for line in layout.strip().splitlines()]
    if len({len(row) for row in rows}) != 1:
        raise ValueError(f"maze layout rows differ in length: {[len(row) for row in rows]}")
    return rows


def scale_layout(layout: str, factor: int) -> str:
    """The same maze at `factor` times the resolution: each cell becomes a factor x factor block.

    Walls and goals fill their whole block; the start is the top-left cell of its block.
    """
    if factor < 1:
        raise ValueError(f"maze scale must be a positive integer, got {factor}")
    scaled = []
    for row in parse_layout(layout):
        for block_row in range(factor):
            cells = []
            for cell in row:
                block = cell * factor if cell != "S" else ("S" if block_row == 0 else ".") + "." * (factor - 1)
                cells.append(block)
            scaled.append("".join(cells))
    return "\n".join(scaled)


class GridMaze(gym.Env):
    """A deterministic maze; `later_layout` replaces `layout` once `switch_step` steps have been taken."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, layout: str, later_layout: str | None = None, switch_step: int | None = None, render_mode: str | None = None):
        self.layouts = [parse_layout(layout)] + ([parse_layout(later_layout)] if later_layout else [])
        if later_layout and (switch_step is None or len(self.layouts[1]) != len(self.layouts[0]) or len(self.layouts[1][0]) != len(self.layouts[0][0])):
            raise ValueError("a changing maze needs a switch_step and two layouts of the same size")
        self.switch_step = switch_step
        self.render_mode = render_mode
        self.rows, self.cols = len(self.layouts[0]), len(self.layouts[0][0])
        self.observation_space = gym.spaces.Discrete(self.rows * self.cols)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self.total_steps = 0
        self._use_layout(0)
        self.state = self.start

    def set_total_steps(self, steps: int) -> None:
        """Carry a resumed run's step count over: the layout becomes the one in force after `steps` steps."""
        self.total_steps = steps
        self._use_layout(int(self.switch_step is not None and steps >= self.switch_step))

    def _use_layout(self, index: int) -> None:
        rows = self.layouts[index]
        self.walls = np.array([[cell == "#" for cell in row] for row in rows])  # (rows, cols) bool
        self.goals = {r * self.cols + c for r, row in enumerate(rows) for c, cell in enumerate(row) if cell == "G"}
        starts = [r * self.cols + c for r, row in enumerate(rows) for c, cell in enumerate(row) if cell == "S"]
        if len(starts) != 1 or not self.goals:
            raise ValueError(f"a maze layout needs one start and at least one goal, got {len(starts)} and {len(self.goals)}")
        self.start = starts[0]
        self.next_states = np.array([[self._move(state, action) for action in range(len(MOVES))] for state in range(self.rows * self.cols)])  # (states, actions)
        self._next_state_lists = self.next_states.tolist()  # the same table, for fast scalar lookups

    def _move(self, state: int, action: int) -> int:
        row, col = divmod(state, self.cols)
        d_row, d_col = MOVES[action]
        new_row, new_col = row + d_row, col + d_col
        if 0 <= new_row < self.rows and 0 <= new_col < self.cols and not self.walls[new_row, new_col]:
            return new_row * self.cols + new_col
        return state

    def transition(self, state: int, action: int) -> tuple[int, float, bool]:
        """The current layout's (next_state, reward, terminated) for `action` in `state`."""
        state = self._next_state_lists[state][action]
        reached_goal = state in self.goals
        return state, float(reached_goal), reached_goal

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = self.start
        return self.state, {}

    def step(self, action: int):
        self.state, reward, terminated = self.transition(self.state, int(action))
        self.total_steps += 1
        if self.switch_step is not None and self.total_steps == self.switch_step:
            self._use_layout(1)
        return self.state, reward, terminated, False, {}

    def render(self) -> str:
        rows = [["#" if wall else "." for wall in row] for row in self.walls]
        for goal in self.goals:
            rows[goal // self.cols][goal % self.cols] = "G"
        rows[self.state // self.cols][self.state % self.cols] = "A"
        return "\n".join("".join(row) for row in rows)


def dyna_maze(scale: int = 1, render_mode: str | None = None) -> GridMaze:
    return GridMaze(scale_layout(DYNA_MAZE, scale), render_mode=render_mode)


def blocking_maze(switch_step: int = 1000, render_mode: str | None = None) -> GridMaze:
    return GridMaze(BLOCKING_MAZE, BLOCKING_MAZE_AFTER, switch_step, render_mode)


def shortcut_maze(switch_step: int = 3000, render_mode: str | None = None) -> GridMaze:
    return GridMaze(SHORTCUT_MAZE, SHORTCUT_MAZE_AFTER, switch_step, render_mode)


def shortest_path_length(maze: GridMaze) -> int:
    """Fewest steps from the start to a goal in the maze's current layout (breadth-first search)."""
    distance = {maze.start: 0}
    frontier = deque([maze.start])
    while frontier:
        state = frontier.popleft()
        if state in maze.goals:
            return distance[state]
        for action in range(len(MOVES)):
            next_state, _, _ = maze.transition(state, action)
            if next_state not in distance:
                distance[next_state] = distance[state] + 1
                frontier.append(next_state)
    raise ValueError("maze has no path from the start to a goal")


def greedy_path_length(maze: GridMaze, q_values: np.ndarray, max_steps: int) -> int | None:
    """Steps the greedy policy of `q_values` (states, actions) takes from the start to a goal.

    None if it does not get there within `max_steps` (it loops, or the path is longer). Ties go to
    the first action, so a table of zeros has no path.
    """
    next_states = np.take_along_axis(maze.next_states, np.argmax(q_values, axis=1)[:, None], axis=1)[:, 0].tolist()  # (states,)
    state = maze.start
    for step in range(1, max_steps + 1):
        state = next_states[state]
        if state in maze.goals:
            return step
    return None

