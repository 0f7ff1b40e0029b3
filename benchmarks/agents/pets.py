"""PETS ([9] Chua et al. 2018) on the continuous cart-pole swing-up and MuJoCo Reacher, beside SAC.

The paper's Fig. 3 (cart-pole): PE-TS reaches a return of about 180 of 200 within 15 trials of
200 steps (read off the curve), where model-free learners need orders of magnitude more data. We run PETS with
TS-inf and TS-1 propagation for `--trials` trials, and stable-baselines3's SAC (its defaults) on
the same environment for the same number of steps and seeds; every return is a training-time
trial's (PETS plans with its current model; SAC samples from its current policy). The second task
is gymnasium's `Reacher-v5` (50-step trials; reward -|fingertip - target| - |a|^2, which PETS
reads from the next observation).

On 2 CPU cores the paper's planner (horizon 25, 400 samples, 20 particles) costs about 5 s per
step, so the benchmark plans with a cheaper one (`PLANNER` below: horizon 20, 100 samples,
10 elites, 5 particles, one per member); `--paper` uses the paper's, and `--planner horizon=30`
changes one setting (stored as the variant `ts_inf@horizon=30`).

    .venv/bin/python benchmarks/agents/pets.py                      # everything, seed 0
    .venv/bin/python benchmarks/agents/pets.py --only cartpole:ts_inf --seeds 0 1
    .venv/bin/python benchmarks/agents/pets.py --report             # figure from stored runs

Each run is merged into benchmarks/results/pets.json as it finishes (so runs can go in separate
processes); the figure is printed as a table and drawn to benchmarks/results/pets.png.
"""

from __future__ import annotations

import sys
import argparse
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/common.py
import common  # noqa: E402
from reverie.agents.pets import PETS, PETSConfig

RESULTS = common.RESULTS
TASKS = {  # name: (env id, trial length, best return, published PETS figure)
    "cartpole": ("reverie/CartpoleSwingup-v0", 200, 200.0, "PE-TS about 180 of 200 within 15 trials (Fig. 3, read off the curve)"),
    "reacher": ("Reacher-v5", 50, 0.0, "not in the paper (its reacher is a 7-DoF arm in 3D)"),
}
METHODS = ("ts_inf", "ts_1", "sac")
PLANNER = {"horizon": 20, "samples": 100, "elites": 10, "iterations": 5, "particles": 5}
PAPER_PLANNER = {"horizon": 25, "samples": 400, "elites": 40, "iterations": 5, "particles": 20}


def run_pets(env_id: str, propagation: str, trials: int, seed: int, planner: dict) -> dict:
    env = gym.make(env_id)
    agent = PETS(PETSConfig(propagation=propagation, seed=seed, **planner), env.observation_space, env.action_space)
    started = time.perf_counter()

    def show(row: dict) -> None:
        print(f"  {env_id} {propagation} seed {seed} trial {row['episode']}: return {row['return']:.1f} ({row['seconds']:.0f} s)", flush=True)

    rows = agent.train(env, episodes=trials, on_episode=show)
    return {"returns": [row["return"] for row in rows], "seconds": time.perf_counter() - started, "config": {"propagation": propagation, **planner}}


def run_sac(env_id: str, trials: int, trial_length: int, seed: int) -> dict:
    from stable_baselines3 import SAC
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(gym.make(env_id))
    started = time.perf_counter()
    SAC("MlpPolicy", env, seed=seed, verbose=0).learn(total_timesteps=trials * trial_length)
    return {"returns": [float(value) for value in env.get_episode_rewards()], "seconds": time.perf_counter() - started, "config": "stable-baselines3 SAC defaults"}


def update_results(change: Callable[[dict], None]) -> dict:
    """Apply `change` to pets.json, shared safely with other processes (`benchmarks/common.py`)."""
    return common.update_results(RESULTS / "pets.json", change)


def first_trial_at(returns: list[float], level: float) -> int | None:
    return next((index + 1 for index, value in enumerate(returns) if value >= level), None)


def labels(runs: dict, task: str) -> list[str]:
    """The methods run on `task` (ts_inf, ts_1, sac, or a planner variant such as ts_inf@horizon=30)."""
    found = {key.split(":")[1] for key in runs if key.startswith(f"{task}:")}
    return sorted(found, key=lambda label: (METHODS.index(label.split("@")[0]), label))


def report() -> None:
    runs = update_results(lambda stored: None)["runs"]
    summary = {}
    for task, (env_id, _, _, published) in TASKS.items():
        print(f"\n{task} ({env_id}); published: {published}")
        for method in labels(runs, task):
            keyed = {key: run for key, run in runs.items() if key.startswith(f"{task}:{method}:")}
            if not keyed:
                continue
            curves = [run["returns"] for run in keyed.values()]
            length = min(map(len, curves))
            mean = np.mean([curve[:length] for curve in curves], axis=0)
            print(f"  {method} seeds {sorted(int(key.rsplit(':', 1)[1]) for key in keyed)}, {np.mean([run['seconds'] for run in keyed.values()]):.0f} s per run")
            for key, run in sorted(keyed.items()):
                print(f"    {key}: " + " ".join(f"{value:7.1f}" for value in run["returns"][:30]) + (" ..." if len(run["returns"]) > 30 else ""))
            entry = {"mean_returns": mean.round(2).tolist(), "best_mean": float(mean.max()), "seeds": len(curves)}
            if task == "cartpole":
                entry["first_trial_at_180"] = [first_trial_at(curve, 180.0) for curve in curves]
                print(f"    first trial with return >= 180: {entry['first_trial_at_180']}")
            summary[f"{task}:{method}"] = entry
    update_results(lambda stored: stored.update(summary=summary))
    print_chart(summary)
    draw(runs)


def print_chart(summary: dict, width: int = 24) -> None:
    """Mean return per trial as text bars, one column per method."""
    for task in TASKS:
        methods = [key.split(":")[1] for key in summary if key.startswith(f"{task}:")]
        if not methods:
            continue
        curves = {method: summary[f"{task}:{method}"]["mean_returns"] for method in methods}
        values = [value for curve in curves.values() for value in curve]
        low, high = min(values), max(values)
        print(f"\n{task}: mean return per trial")
        print(" " * 13 + "".join(f"{method:>8s} {'':{width}s}"[: width + 9] for method in methods))
        for trial in range(max(map(len, curves.values()))):
            print(common.bar_chart_row(f"  trial {trial + 1:3d}  ", [curves[method] for method in methods], trial, low, high, width))


def draw(runs: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axes = plt.subplots(1, len(TASKS), figsize=(6 * len(TASKS), 4))
    for axis, (task, (env_id, _, _, _)) in zip(axes, TASKS.items()):
        for method in labels(runs, task):
            colour = {"ts_inf": "tab:blue", "ts_1": "tab:orange", "sac": "tab:gray"}[method.split("@")[0]]
            style = "--" if "@" in method else "-"  # a planner variant
            for key, run in runs.items():
                if key.startswith(f"{task}:{method}:"):
                    label = method if key.endswith(":0") else None
                    axis.plot(range(1, len(run["returns"]) + 1), run["returns"], color=colour, linestyle=style, marker=None if method == "sac" else ".", label=label, alpha=0.8)
        if task == "cartpole":
            axis.axhline(180, color="k", linestyle=":", linewidth=1)
        axis.set(title=env_id, xlabel="trial", ylabel="return")
        axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "pets.png", dpi=100)
    print(f"\nfigure: {RESULTS / 'pets.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--only", nargs="+", metavar="TASK:METHOD", help="e.g. cartpole:ts_inf reacher:sac")
    parser.add_argument("--paper", action="store_true", help="the paper's planner (slow on CPU)")
    parser.add_argument("--planner", nargs="+", default=[], metavar="KEY=VALUE", help="change the PETS planner, e.g. horizon=30; stored as a variant, ts_inf@horizon=30")
    parser.add_argument("--report", action="store_true", help="only print and draw the stored runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        wanted = args.only or [f"{task}:{method}" for task in TASKS for method in METHODS]
        for item in wanted:
            task, method = item.split(":")
            env_id, trial_length, _, _ = TASKS[task]
            for seed in args.seeds:
                print(f"{task} {method} seed {seed}", flush=True)
                if method == "sac":
                    result, label = run_sac(env_id, args.trials, trial_length, seed), method
                else:
                    changes = {key: int(value) for key, value in (item.split("=") for item in args.planner)}
                    planner = {**(PAPER_PLANNER if args.paper else PLANNER), **changes}
                    result = run_pets(env_id, method, args.trials, seed, planner)
                    label = method + ("@paper" if args.paper else "") + "".join(f"@{item}" for item in args.planner)
                update_results(lambda stored: stored["runs"].update({f"{task}:{label}:{seed}": result}))
    report()


if __name__ == "__main__":
    main()
