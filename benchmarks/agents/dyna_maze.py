"""Dyna-Q and Dyna-Q+ on the mazes of Sutton & Barto (2018), ch. 8: Figures 8.2, 8.4 and 8.5.

- Figure 8.2 (Example 8.1): Dyna-Q with n = 0, 5, 50 planning steps on the Dyna maze, alpha 0.1,
  epsilon 0.1, gamma 0.95, 50 episodes, 30 runs; steps per episode. The book: the first episode
  takes about 1700 steps for every n (it is the same episode: the acting random stream does not
  depend on n), and the agents reach epsilon-optimal performance in about 25 (n = 0), 5 (n = 5)
  and 3 (n = 50) episodes.
- Figure 8.4 (Example 8.2, blocking maze) and Figure 8.5 (Example 8.3, shortcut maze): Dyna-Q and
  Dyna-Q+ (kappa 1e-3), cumulative reward over 3000 steps with the wall moving after 1000, and over
  6000 steps with a shortcut opening after 3000. The book gives no parameters for these; we use
  n = 10, alpha 1.0 (the maze is deterministic), epsilon 0.1, gamma 0.95, 20 runs. The book's claim:
  Dyna-Q+ finds the new path sooner after the blocking change, and only Dyna-Q+ finds the shortcut.

    .venv/bin/python benchmarks/agents/dyna_maze.py             # the book's run counts
    .venv/bin/python benchmarks/agents/dyna_maze.py --runs 5    # quicker

Prints the tables, writes benchmarks/results/dyna_maze.json and, with matplotlib,
benchmarks/results/dyna_maze.png.
"""

from __future__ import annotations

import sys
import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

import reverie.envs  # noqa: F401  (registers the mazes)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/common.py
import common  # noqa: E402
from reverie.agents.registry import AGENTS

RESULTS = common.RESULTS
FIG_8_2 = {"alpha": 0.1, "epsilon": 0.1, "gamma": 0.95}
CHANGING = {"alpha": 1.0, "epsilon": 0.1, "gamma": 0.95, "planning_steps": 10}
KAPPA = 1e-3
BOOK_EPISODES_TO_OPTIMAL = {0: 25, 5: 5, 50: 3}
CHANGING_MAZES = {  # figure: (env id, steps, step at which the layout changes, title)
    "figure_8_4_blocking": ("reverie/BlockingMaze-v0", 3000, 1000, "Figure 8.4: blocking maze"),
    "figure_8_5_shortcut": ("reverie/ShortcutMaze-v0", 6000, 3000, "Figure 8.5: shortcut maze"),
}


def make_agent(name: str, env: gym.Env, **config):
    agent_class = AGENTS.get(name)
    return agent_class(agent_class.config_class(**config), env.observation_space, env.action_space)


def steps_per_episode(planning_steps: int, seed: int, episodes: int) -> list[int]:
    env = gym.make("reverie/DynaMaze-v0")
    agent = make_agent("dyna_q", env, planning_steps=planning_steps, seed=seed, **FIG_8_2)
    return [row["steps"] for row in agent.train(env, episodes=episodes)]


def cumulative_reward(agent_name: str, env_id: str, steps: int, seed: int) -> list[float]:
    """Reward summed up to each real step; the mazes pay only at the goal, at an episode's end."""
    env = gym.make(env_id)
    extra = {"kappa": KAPPA} if agent_name == "dyna_q_plus" else {}
    agent = make_agent(agent_name, env, seed=seed, **CHANGING, **extra)
    rows = agent.train(env, steps=steps)
    episode_ends = np.array([row["total_steps"] for row in rows])
    returns = np.cumsum([row["return"] for row in rows])
    finished = np.searchsorted(episode_ends, np.arange(1, steps + 1), side="right")  # episodes done by step t
    return np.concatenate([[0.0], returns])[finished].tolist()


def figure_8_2(pool: ProcessPoolExecutor, runs: int, episodes: int) -> dict:
    curves = {}
    for planning_steps in (0, 5, 50):
        jobs = [pool.submit(steps_per_episode, planning_steps, seed, episodes) for seed in range(runs)]
        curves[planning_steps] = np.array([job.result() for job in jobs])  # (runs, episodes)
    means = {n: steps.mean(axis=0) for n, steps in curves.items()}
    asymptote = float(np.mean([mean[-10:].mean() for mean in means.values()]))  # epsilon-greedy steps, all n
    threshold = 1.2 * asymptote
    reached = {n: int(np.argmax(mean[1:] <= threshold)) + 2 if (mean[1:] <= threshold).any() else None for n, mean in means.items()}
    return {
        "runs": runs,
        "episodes": episodes,
        "parameters": FIG_8_2,
        "mean_steps": {str(n): mean.round(2).tolist() for n, mean in means.items()},
        "first_episode_same_for_all_n": bool(all((curves[n][:, 0] == curves[0][:, 0]).all() for n in curves)),
        "epsilon_optimal_threshold": round(threshold, 2),
        "episode_reaching_threshold": {str(n): episode for n, episode in reached.items()},
        "book": {"first_episode_steps": 1700, "episode_reaching_epsilon_optimal": BOOK_EPISODES_TO_OPTIMAL},
    }


def changing_maze(pool: ProcessPoolExecutor, env_id: str, steps: int, switch: int, runs: int) -> dict:
    result = {"env": env_id, "steps": steps, "switch_step": switch, "runs": runs, "parameters": {**CHANGING, "kappa": KAPPA}}
    for agent_name in ("dyna_q", "dyna_q_plus"):
        jobs = [pool.submit(cumulative_reward, agent_name, env_id, steps, seed) for seed in range(runs)]
        mean = np.array([job.result() for job in jobs]).mean(axis=0)  # (steps,)
        result[agent_name] = {
            "at_switch": round(float(mean[switch - 1]), 2),
            "final": round(float(mean[-1]), 2),
            "gained_after_switch": round(float(mean[-1] - mean[switch - 1]), 2),
            "mean_cumulative_reward_every_50_steps": mean[49::50].round(2).tolist(),
        }
    return result


def print_tables(results: dict) -> None:
    console = Console(width=160)
    fig = results["figure_8_2"]
    shown = [1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 25, 30, 40, 50]
    table = Table("n", *[str(e) for e in shown], "eps-opt at", "book", box=box.ASCII, title=f"Figure 8.2: mean steps per episode, {fig['runs']} runs")
    for n, mean in fig["mean_steps"].items():
        table.add_row(n, *[f"{mean[e - 1]:.0f}" for e in shown], str(fig["episode_reaching_threshold"][n]), f"~{BOOK_EPISODES_TO_OPTIMAL[int(n)]}")
    console.print(table)
    console.print(f"eps-opt: first episode with mean steps <= {fig['epsilon_optimal_threshold']} (1.2x the last-10-episode mean); optimum 14")
    for name in CHANGING_MAZES:
        maze = results[name]
        title = f"{CHANGING_MAZES[name][3]}, mean cumulative reward, {maze['runs']} runs"
        table = Table("agent", f"at step {maze['switch_step']}", f"at step {maze['steps']}", "gained after the change", box=box.ASCII, title=title)
        for agent_name in ("dyna_q", "dyna_q_plus"):
            row = maze[agent_name]
            table.add_row(agent_name, f"{row['at_switch']:.1f}", f"{row['final']:.1f}", f"{row['gained_after_switch']:.1f}")
        console.print(table)


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for n, mean in results["figure_8_2"]["mean_steps"].items():
        axes[0].plot(range(2, len(mean) + 1), mean[1:], label=f"{n} planning steps")
    axes[0].set(xlabel="episodes", ylabel="steps per episode", title="Figure 8.2: Dyna maze", ylim=(0, 800))
    for axis, name in zip(axes[1:], CHANGING_MAZES):
        maze = results[name]
        for agent_name in ("dyna_q", "dyna_q_plus"):
            curve = maze[agent_name]["mean_cumulative_reward_every_50_steps"]
            axis.plot(np.arange(1, len(curve) + 1) * 50, curve, label=agent_name)
        axis.axvline(maze["switch_step"], color="grey", linestyle=":")
        axis.set(xlabel="time steps", ylabel="cumulative reward", title=CHANGING_MAZES[name][3])
    for axis in axes:
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="runs per curve (default: 30 for Figure 8.2, 20 for the changing mazes)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = {"figure_8_2": figure_8_2(pool, args.runs or 30, args.episodes)}
        for name, (env_id, steps, switch, _) in CHANGING_MAZES.items():
            results[name] = changing_maze(pool, env_id, steps, switch, args.runs or 20)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["workers"] = args.workers
    print_tables(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial = RESULTS / "dyna_maze.json.tmp"
    partial.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(partial, RESULTS / "dyna_maze.json")
    plot(results, RESULTS / "dyna_maze.png")
    print(f"{results['seconds']} s on {args.workers} workers -> {RESULTS / 'dyna_maze.json'}")


if __name__ == "__main__":
    main()
