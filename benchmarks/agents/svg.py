"""SVG(1)-ER and SVG(inf) ([4] Heess et al. 2015) on the pendulum swing-up, beside SAC.

The paper's claim (Sec. 6, Figs. 2-3): SVG(1) with experience replay learns pendulum and cart-pole
type swing-ups quickly, in far fewer steps than its model-free and on-policy relatives, and SVG(inf)
is competitive on some of them. We train both variants of `reverie.agents.svg` on gymnasium's
`Pendulum-v1` (200-step episodes; return 0 is the best, about -150 is a swing-up held upright from a
random start) and stable-baselines3's SAC (its defaults) for the same number of environment steps
and seeds; every return is a training-time episode's (each agent acting with its current stochastic
policy).

`--svg KEY=VALUE` changes an SVG setting (stored as a variant, e.g. `svg_inf@updates_per_episode=10`).

    .venv/bin/python benchmarks/agents/svg.py                       # everything, seeds 0 1 2
    .venv/bin/python benchmarks/agents/svg.py --only svg_1 --seeds 0
    .venv/bin/python benchmarks/agents/svg.py --report              # figure from stored runs

Each run is merged into benchmarks/results/svg.json as it finishes (so runs can go in separate
processes); the figure is printed as a table and drawn to benchmarks/results/svg.png.
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
from reverie.agents.svg import SVG, SVGConfig

RESULTS = common.RESULTS
ENV_ID = "Pendulum-v1"
EPISODE = 200  # steps per Pendulum-v1 episode
SOLVED = -200.0  # mean return over 10 episodes taken as a held swing-up
METHODS = ("svg_1", "svg_inf", "sac")
# beside SVGConfig's defaults. SVG(1): a floor of -1 on the policy's log std (left at -5, the std
# collapsed and starved the importance-weighted steps; seeds 0 / 1 learned at 14.8k / 18.8k steps
# and seed 2 never, stored as svg_1@min_log_std=-5). SVG(inf): 10 policy steps per trajectory, where
# Alg. 1 takes one (in a 12k-step trial with one step per trajectory, at policy_lr 3e-4, returns
# stayed at the random policy's, about -1200), truncated backpropagation in blocks of 25 steps
# (through all 200, no seed learned; blocks of 10 did worse) and a penalty of 0.01 on the squared
# pre-squash mean (without it, the policy saturates at a torque bound from about half the starts;
# 0.001 learned on 1 of 3 seeds). The runs without are stored under their settings, e.g.
# svg_inf@backprop_window=0@mean_penalty=0 (all the earlier SVG(inf) runs).
SVG_SETTINGS = {
    "svg_1": {"policy_lr": 1e-3, "min_log_std": -1.0},
    "svg_inf": {"policy_lr": 1e-3, "updates_per_episode": 10, "backprop_window": 25, "mean_penalty": 0.01},
}
PUBLISHED = "SVG(1)-ER learns the swing-ups fastest; SVG(inf) is competitive on some tasks (Figs. 2-3, no Pendulum-v1 numbers)"


def run_svg(variant: str, steps: int, seed: int, changes: dict, keep: Callable[[dict], None]) -> dict:
    """Train SVG for `steps` env steps; every 10 episodes `keep` gets the run so far (complete: false)."""
    env = gym.make(ENV_ID)
    settings = {**SVG_SETTINGS[variant], **changes}
    agent = SVG(SVGConfig(variant=variant, seed=seed, **settings), env.observation_space, env.action_space)
    started, rows = time.perf_counter(), []

    def result(complete: bool) -> dict:
        return {
            "returns": [row["return"] for row in rows], "total_steps": [row["total_steps"] for row in rows],
            "model_loss": [row["model_loss"] for row in rows], "seconds": time.perf_counter() - started,
            "config": {"variant": variant, **settings}, "complete": complete,
        }

    def show(row: dict) -> None:
        rows.append(row)
        if row["episode"] % 10 == 0:
            print(f"  {variant} seed {seed} step {row['total_steps']}: return {row['return']:.1f} ({time.perf_counter() - started:.0f} s)", flush=True)
            keep(result(complete=False))

    agent.train(env, steps=steps, on_episode=show)
    return result(complete=True)


def run_sac(steps: int, seed: int, keep: Callable[[dict], None]) -> dict:
    """Train SB3's SAC for `steps` env steps; every 2000 steps `keep` gets the run so far."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(gym.make(ENV_ID))
    started = time.perf_counter()

    def result(complete: bool) -> dict:
        return {
            "returns": [float(value) for value in env.get_episode_rewards()], "total_steps": np.cumsum(env.get_episode_lengths()).tolist(),
            "seconds": time.perf_counter() - started, "config": "stable-baselines3 SAC defaults", "complete": complete,
        }

    class KeepProgress(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % 2000 == 0:
                keep(result(complete=False))
            return True

    SAC("MlpPolicy", env, seed=seed, verbose=0).learn(total_timesteps=steps, callback=KeepProgress())
    return result(complete=True)


def update_results(change: Callable[[dict], None]) -> dict:
    """Apply `change` to svg.json, shared safely with other processes (`benchmarks/common.py`)."""
    return common.update_results(RESULTS / "svg.json", change)


def windowed(returns: list[float], window: int = 10) -> np.ndarray:
    """Mean return over the last `window` episodes, at every episode."""
    values = np.asarray(returns, dtype=float)
    return np.array([values[max(0, index + 1 - window) : index + 1].mean() for index in range(len(values))])


def first_step_solved(run: dict) -> int | None:
    """The env step at which the 10-episode mean return first reaches SOLVED."""
    reached = np.flatnonzero(windowed(run["returns"]) >= SOLVED)
    return int(run["total_steps"][reached[0]]) if len(reached) else None


def labels(runs: dict) -> list[str]:
    found = {key.split(":")[0] for key in runs}
    return sorted(found, key=lambda label: (METHODS.index(label.split("@")[0]), label))


def report() -> None:
    runs = update_results(lambda stored: None)["runs"]
    summary = {}
    print(f"\n{ENV_ID}; published: {PUBLISHED}")
    for method in labels(runs):
        keyed = {key: run for key, run in sorted(runs.items()) if key.split(":")[0] == method}
        curves = [run["returns"] for run in keyed.values()]
        length = min(map(len, curves))
        mean = np.mean([curve[:length] for curve in curves], axis=0)
        entry = {
            "seeds": [int(key.rsplit(":", 1)[1]) for key in keyed], "steps": [run["total_steps"][-1] for run in keyed.values()],
            "mean_returns": mean.round(1).tolist(), "final_10_episode_mean": [round(float(np.mean(curve[-10:])), 1) for curve in curves],
            "first_step_solved": [first_step_solved(run) for run in keyed.values()], "seconds": [round(run["seconds"]) for run in keyed.values()],
            "complete": [run["complete"] for run in keyed.values()],
        }
        print(f"  {method}: seeds {entry['seeds']}, steps {entry['steps']} (complete {entry['complete']}), final 10-episode mean {entry['final_10_episode_mean']}, "
              f"10-episode mean >= {SOLVED:g} first at step {entry['first_step_solved']}, {entry['seconds']} s")
        summary[method] = entry
    update_results(lambda stored: stored.update(summary=summary))
    print_chart(summary)
    draw(runs)


def print_chart(summary: dict, block: int = 5, width: int = 20) -> None:
    """Seed-mean return per block of `block` episodes as text bars, one column per method (the
    benchmark's settings; the variants are in the lines above)."""
    curves = {method: np.asarray(entry["mean_returns"]) for method, entry in summary.items() if method in METHODS}
    blocks = {method: [curve[start : start + block].mean() for start in range(0, len(curve), block)] for method, curve in curves.items()}
    values = [value for curve in blocks.values() for value in curve]
    if not values:
        return
    low, high = min(values), max(values)
    print(f"\nmean return per {block} episodes ({block * EPISODE} steps), seed mean")
    print(" " * 12 + "".join(f"{method[: width + 8]:>{width + 9}s}" for method in blocks))
    for index in range(max(map(len, blocks.values()))):
        print(common.bar_chart_row(f"  {(index + 1) * block * EPISODE:6d} st  ", list(blocks.values()), index, low, high, width))


def draw(runs: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(7, 4.5))
    colours = {"svg_1": "tab:blue", "svg_inf": "tab:orange", "sac": "tab:gray"}
    for method in METHODS:  # the benchmark's settings; the variants are in the printed table
        for index, (key, run) in enumerate(sorted((key, run) for key, run in runs.items() if key.split(":")[0] == method)):
            axis.plot(run["total_steps"], windowed(run["returns"]), color=colours[method], alpha=0.8, label=method if index == 0 else None)
    axis.axhline(SOLVED, color="k", linestyle=":", linewidth=1)
    axis.set(title=f"{ENV_ID}: 10-episode mean return, one line per seed", xlabel="environment steps", ylabel="return")
    axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "svg.png", dpi=100)
    print(f"\nfigure: {RESULTS / 'svg.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--only", nargs="+", choices=METHODS)
    parser.add_argument("--svg", nargs="+", default=[], metavar="KEY=VALUE", help="change an SVG setting, e.g. updates_per_episode=10; stored as a variant")
    parser.add_argument("--report", action="store_true", help="only print and draw the stored runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        changes = {key: type(getattr(SVGConfig, key))(value) for key, value in (item.split("=") for item in args.svg)}
        for method in args.only or METHODS:
            label = method + "".join(f"@{item}" for item in args.svg) if method != "sac" else method
            for seed in args.seeds:
                print(f"{method} seed {seed}, {args.steps} steps", flush=True)

                def keep(result: dict, key: str = f"{label}:{seed}") -> None:
                    update_results(lambda stored: stored["runs"].update({key: result}))

                if method == "sac":
                    keep(run_sac(args.steps, seed, keep))
                else:
                    keep(run_svg(method, args.steps, seed, changes, keep))
    report()


if __name__ == "__main__":
    main()
