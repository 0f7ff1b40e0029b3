"""The chapter-8 mazes: layouts as in the book's figures, moves, rewards, layout changes, BFS optimum."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from reverie.envs.gridworlds import GridMaze, greedy_path_length, scale_layout, shortest_path_length

UP, DOWN, LEFT, RIGHT = range(4)


def cell(maze: GridMaze, row: int, col: int) -> int:
    return row * maze.cols + col


def test_dyna_maze_matches_figure_8_2():
    maze = gym.make("reverie/DynaMaze-v0").unwrapped
    assert (maze.rows, maze.cols) == (6, 9)
    assert maze.start == cell(maze, 2, 0) and maze.goals == {cell(maze, 0, 8)}
    assert {tuple(wall) for wall in np.argwhere(maze.walls).tolist()} == {(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)}
    assert shortest_path_length(maze) == 14


@pytest.mark.parametrize("scale, open_cells, shortest", [(1, 47, 14), (2, 188, 27), (3, 423, 40), (4, 752, 53)])
def test_scaled_dyna_maze(scale, open_cells, shortest):
    maze = gym.make("reverie/DynaMaze-v0", scale=scale).unwrapped
    assert (maze.rows, maze.cols) == (6 * scale, 9 * scale)
    assert int((~maze.walls).sum()) == open_cells
    assert len(maze.goals) == scale * scale
    assert shortest_path_length(maze) == shortest


def test_scale_layout_keeps_one_start():
    assert scale_layout("S.\n#G", 2).splitlines() == ["S...", "....", "##GG", "##GG"]


def test_moves_walls_edges_and_goal():
    env = gym.make("reverie/DynaMaze-v0")
    maze = env.unwrapped
    state, _ = env.reset(seed=0)
    assert state == maze.start
    assert env.step(LEFT)[0] == maze.start  # the edge of the grid
    assert env.step(RIGHT)[0] == cell(maze, 2, 1)
    assert env.step(RIGHT)[0] == cell(maze, 2, 1)  # the wall at (2, 2)
    assert maze.transition(cell(maze, 1, 8), UP) == (cell(maze, 0, 8), 1.0, True)
    assert maze.transition(cell(maze, 1, 8), LEFT) == (cell(maze, 1, 8), 0.0, False)


@pytest.mark.parametrize("env_id, switch, before, after", [("reverie/BlockingMaze-v0", 1000, 10, 16), ("reverie/ShortcutMaze-v0", 3000, 16, 10)])
def test_changing_mazes_switch_after_their_step_count(env_id, switch, before, after):
    env = gym.make(env_id)
    maze = env.unwrapped
    env.reset(seed=0)
    assert maze.start == cell(maze, 5, 3) and maze.goals == {cell(maze, 0, 8)}
    for _ in range(switch - 1):
        if env.step(env.action_space.sample())[2]:
            env.reset()  # steps count across episodes
    assert shortest_path_length(maze) == before
    env.step(UP)
    assert shortest_path_length(maze) == after


def test_env_checker_passes():
    check_env(gym.make("reverie/DynaMaze-v0").unwrapped)
    check_env(gym.make("reverie/BlockingMaze-v0").unwrapped)


def test_greedy_path_length():
    maze = gym.make("reverie/DynaMaze-v0").unwrapped
    q_values = np.zeros((maze.observation_space.n, 4))
    assert greedy_path_length(maze, q_values, 100) is None  # ties go to "up": stuck at the top edge
    # Values of the optimal policy: gamma ** (distance to the goal) for the best move.
    distance = {goal: 0 for goal in maze.goals}
    frontier = list(maze.goals)
    while frontier:
        state = frontier.pop(0)
        for previous in range(maze.observation_space.n):
            if previous not in distance and not maze.walls.flat[previous] and state in maze.next_states[previous]:
                distance[previous] = distance[state] + 1
                frontier.append(previous)
    for state in distance:
        for action in range(4):
            q_values[state, action] = 0.95 ** distance[int(maze.next_states[state, action])]
    assert greedy_path_length(maze, q_values, 14) == 14
    assert greedy_path_length(maze, q_values, 13) is None
