"""Prioritized sweeping versus Dyna-Q on the Dyna maze at growing resolution: Sutton & Barto (2018), Example 8.4.

The Dyna maze of Figure 8.2 is enlarged 1x to 4x (each cell an f x f block: 47 to 752 open
cells). Both agents plan n = 5 updates per real step (epsilon 0.1, gamma 0.95; prioritized sweeping
queues pairs whose priority exceeds theta = 1e-4). The book does not give the step size; we run
alpha 0.5 and alpha 1.0 (exact in a deterministic maze). After every real step we
walk the greedy policy from the start; a run ends when that walk reaches the goal within 1.2x the
shortest path (breadth-first search). We count backups (Q-value updates, real and planned) until
then. The book (its figure, from Peng & Williams 1993) shows prioritized sweeping needing fewer
updates at every size, by a gap that widens with the maze, "often by a factor of 5 to 10".

    .venv/bin/python benchmarks/agents/prioritized_sweeping.py               # 1x-4x, 5 runs each
    .venv/bin/python benchmarks/agents/prioritized_sweeping.py --scales 1 2 3 4 5 6 --runs 10

Prints the table, writes benchmarks/results/prioritized_sweeping.json and, with matplotlib,
benchmarks/results/prioritized_sweeping.png.
"""

from __future__ import annotations

import sys
import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/common.py
import common  # noqa: E402
from reverie.envs.gridworlds import greedy_path_length, shortest_path_length
from reverie.agents.registry import AGENTS

RESULTS = common.RESULTS
PARAMETERS = {"epsilon": 0.1, "gamma": 0.95, "planning_steps": 5}
THETA = 1e-4
SLACK = 1.2  # the greedy path may be this much longer than the shortest one
AGENT_NAMES = ("dyna_q", "prioritized_sweeping")


def backups_until_near_optimal(agent_name: str, scale: int, alpha: float, seed: int) -> int:
    env = gym.make("reverie/DynaMaze-v0", scale=scale)
    maze = env.unwrapped
    longest = math.floor(SLACK * shortest_path_length(maze))
    agent_class = AGENTS.get(agent_name)
    extra = {"theta": THETA} if agent_name == "prioritized_sweeping" else {}
    agent = agent_class(agent_class.config_class(seed=seed, alpha=alpha, **PARAMETERS, **extra), env.observation_space, env.action_space)
    agent.train(env, until=lambda agent: greedy_path_length(maze, agent.q, longest) is not None)
    return agent.backups


def measure(pool: ProcessPoolExecutor, scales: list[int], alpha: float, runs: int) -> list[dict]:
    rows = []
    for scale in scales:
        maze = gym.make("reverie/DynaMaze-v0", scale=scale).unwrapped
        row = {"scale": scale, "alpha": alpha, "open_cells": int((~maze.walls).sum()), "shortest_path": shortest_path_length(maze)}
        for agent_name in AGENT_NAMES:
            backups = [job.result() for job in [pool.submit(backups_until_near_optimal, agent_name, scale, alpha, seed) for seed in range(runs)]]
            row[agent_name] = {"mean_backups": float(np.mean(backups)), "median_backups": float(np.median(backups)), "backups": backups}
        row["ratio"] = round(row["dyna_q"]["mean_backups"] / row["prioritized_sweeping"]["mean_backups"], 2)
        row["gap"] = row["dyna_q"]["mean_backups"] - row["prioritized_sweeping"]["mean_backups"]
        rows.append(row)
    return rows


def print_table(rows: list[dict], runs: int) -> None:
    table = Table("alpha", "scale", "open cells", "shortest path", "Dyna-Q backups", "prioritized sweeping backups", "gap", "ratio", box=box.ASCII, title=f"Example 8.4: backups until the greedy path is within {SLACK}x of the shortest, mean of {runs} runs")
    for row in rows:
        dyna_q, sweeping = row["dyna_q"]["mean_backups"], row["prioritized_sweeping"]["mean_backups"]
        table.add_row(str(row["alpha"]), f"{row['scale']}x", str(row["open_cells"]), str(row["shortest_path"]), f"{dyna_q:.0f}", f"{sweeping:.0f}", f"{row['gap']:.0f}", f"{row['ratio']:.1f}")
    Console(width=160).print(table)


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for alpha, style in zip(sorted({row["alpha"] for row in rows}), ("-", "--", ":")):
        same_alpha = [row for row in rows if row["alpha"] == alpha]
        for agent_name, color in zip(AGENT_NAMES, ("tab:blue", "tab:orange")):
            means = [row[agent_name]["mean_backups"] for row in same_alpha]
            axis.plot([row["open_cells"] for row in same_alpha], means, style, color=color, marker="o", label=f"{agent_name}, alpha {alpha}")
    axis.set(xscale="log", yscale="log", xlabel="open cells (states)", ylabel="backups until near-optimal", title="Example 8.4: prioritized sweeping")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = [row for alpha in args.alphas for row in measure(pool, args.scales, alpha, args.runs)]
    results = {
        "parameters": {**PARAMETERS, "alphas": args.alphas, "theta": THETA, "slack": SLACK},
        "runs": args.runs,
        "sizes": rows,
        "seconds": round(time.perf_counter() - started, 1),
        "workers": args.workers,
        "book": "prioritized sweeping needs fewer updates at every size, by a widening gap (often 5-10x)",
    }
    print_table(rows, args.runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial = RESULTS / "prioritized_sweeping.json.tmp"
    partial.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(partial, RESULTS / "prioritized_sweeping.json")
    plot(rows, RESULTS / "prioritized_sweeping.png")
    print(f"{results['seconds']} s on {args.workers} workers -> {RESULTS / 'prioritized_sweeping.json'}")


if __name__ == "__main__":
    main()
