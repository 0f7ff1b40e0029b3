"""MBPO ([8] Janner et al. 2019) on InvertedPendulum-v5, beside stable-baselines3's SAC.

The paper's Fig. 2: MBPO reaches the pendulum's best return of 1000 within a few thousand steps
(read off the curve), where SAC needs more. The issue's claim: MBPO reaches at least 900 within
15k environment steps, with SB3 SAC (its defaults) on the same env, budget and seeds beside it.

Both learners are evaluated the same way every `--eval-every` steps: the mean return of
`--eval-episodes` episodes acting with the policy's mode, reset with seeds 10000 + 100 * seed + i.

The paper's MBPO settings (7 members of 4 x 200 units, M = 400 rollouts per step, G = 20 SAC
updates of 2 x 256 units per step) are too slow here: one such SAC update took about 22 ms on the
2 CPU cores these benchmarks share with other jobs, so G = 20 alone would take about 2 hours per
15k-step seed. By default MBPO therefore runs with `CPU` below: the same
schedule (retrain every 250 steps, k = 1, real ratio 0.05, 7 members and 5 elites, the paper's
pendulum entropy target -0.05) with smaller networks, M = 100 and G = 10. `--paper` uses the paper's.

    .venv/bin/python benchmarks/agents/mbpo.py                      # MBPO and SAC, seeds 0 1 2
    .venv/bin/python benchmarks/agents/mbpo.py --only mbpo --seeds 0
    .venv/bin/python benchmarks/agents/mbpo.py --report             # table and figure from stored runs

Each run is merged into benchmarks/results/mbpo.json as it finishes (so runs can go in separate
processes); the figure is printed as a table and drawn to benchmarks/results/mbpo.png.
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
from reverie.agents.mbpo import MBPO, MBPOConfig

RESULTS = common.RESULTS
ENV_ID = "InvertedPendulum-v5"
CLAIM = 900.0  # the bar, within the step budget
PUBLISHED = "MBPO about 1000 within a few thousand steps (Fig. 2, read off the curve)"
CPU = dict(hidden=64, layers=3, rollouts_per_step=100, updates_per_step=10, sac_hidden=64, target_entropy=-0.05)
PAPER = dict(target_entropy=-0.05)  # MBPOConfig's defaults are the paper's pendulum settings
METHODS = ("mbpo", "sac")


def evaluate(act: Callable[[np.ndarray], np.ndarray], env: gym.Env, seed: int, episodes: int) -> float:
    """Mean return of `episodes` episodes of `act`, reset with the shared evaluation seeds
    (`MBPO.evaluate` uses the same ones)."""
    returns = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=10_000 + 100 * seed + episode)
        total, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(act(observation))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_mbpo(seed: int, steps: int, eval_every: int, eval_episodes: int, settings: dict) -> dict:
    env = gym.make(ENV_ID)
    config = MBPOConfig(**settings, eval_every=eval_every, eval_episodes=eval_episodes, seed=seed)
    agent = MBPO(config, env.observation_space, env.action_space)
    started, shown = time.perf_counter(), 0

    def show(row: dict) -> None:
        nonlocal shown
        if len(agent.evaluations) > shown:
            shown = len(agent.evaluations)
            print(f"  mbpo seed {seed} step {agent.total_steps}: eval {agent.evaluations[-1][1]:.0f} ({time.perf_counter() - started:.0f} s)", flush=True)

    rows = agent.train(env, steps=steps, on_episode=show)
    return {
        "eval_steps": [step for step, _ in agent.evaluations], "eval_returns": [value for _, value in agent.evaluations],
        "train_returns": [row["return"] for row in rows], "sac_updates": agent.sac.updates,
        "seconds": time.perf_counter() - started, "config": settings,
    }


def run_sac(seed: int, steps: int, eval_every: int, eval_episodes: int) -> dict:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    eval_env, evaluations = gym.make(ENV_ID), []
    started = time.perf_counter()

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                value = evaluate(lambda observation: self.model.predict(observation, deterministic=True)[0], eval_env, seed, eval_episodes)
                evaluations.append((self.num_timesteps, value))
                print(f"  sac seed {seed} step {self.num_timesteps}: eval {value:.0f} ({time.perf_counter() - started:.0f} s)", flush=True)
            return True

    env = Monitor(gym.make(ENV_ID))
    SAC("MlpPolicy", env, seed=seed, verbose=0).learn(total_timesteps=steps, callback=Evaluate())
    return {
        "eval_steps": [step for step, _ in evaluations], "eval_returns": [value for _, value in evaluations],
        "train_returns": [float(value) for value in env.get_episode_rewards()],
        "seconds": time.perf_counter() - started, "config": "stable-baselines3 SAC defaults",
    }


def update_results(change: Callable[[dict], None]) -> dict:
    """Apply `change` to mbpo.json, shared safely with other processes (`benchmarks/common.py`)."""
    return common.update_results(RESULTS / "mbpo.json", change)


def first_step_at(run: dict, level: float) -> int | None:
    return next((step for step, value in zip(run["eval_steps"], run["eval_returns"]) if value >= level), None)


def report() -> None:
    runs = update_results(lambda stored: None)["runs"]
    summary, curves = {}, {}
    print(f"\n{ENV_ID}; published: {PUBLISHED}; claim: >= {CLAIM:g} within the budget")
    for method in sorted({key.split(":")[0] for key in runs}, key=lambda label: (METHODS.index(label.split("@")[0]), label)):
        keyed = {key: run for key, run in sorted(runs.items()) if key.split(":")[0] == method}
        length = min(len(run["eval_steps"]) for run in keyed.values())
        steps = next(iter(keyed.values()))["eval_steps"][:length]
        returns = np.array([run["eval_returns"][:length] for run in keyed.values()])  # (seeds, evaluations)
        curves[method] = (steps, returns)
        seeds = [int(key.rsplit(":", 1)[1]) for key in keyed]
        first = [first_step_at(run, CLAIM) for run in keyed.values()]
        summary[method] = {
            "seeds": seeds, "eval_steps": steps, "mean_returns": returns.mean(0).round(1).tolist(),
            "min_returns": returns.min(0).round(1).tolist(), "max_returns": returns.max(0).round(1).tolist(),
            "best_per_seed": returns.max(1).round(1).tolist(), "final_per_seed": returns[:, -1].round(1).tolist(),
            "first_step_at_900": first, "all_seeds_reach_900": all(step is not None for step in first),
            "seconds_per_run": round(float(np.mean([run["seconds"] for run in keyed.values()])), 1),
        }
        print(f"  {method}: seeds {seeds}, {summary[method]['seconds_per_run']:.0f} s per run; first evaluation >= {CLAIM:g} at steps {first}")
    update_results(lambda stored: stored.update(summary=summary))
    print_table(curves)
    draw(curves)


def print_table(curves: dict) -> None:
    """Mean (min-max over seeds) evaluation return at each evaluation step, one column per method."""
    methods = list(curves)
    print("\n  env steps  " + "".join(f"{method:>24s}" for method in methods))
    for index, step in enumerate(max((steps for steps, _ in curves.values()), key=len)):
        cells = []
        for method in methods:
            steps, returns = curves[method]
            column = returns[:, index] if index < len(steps) else None
            cells.append(" " * 24 if column is None else f"{column.mean():8.1f} ({column.min():6.1f}-{column.max():6.1f})")
        print(f"  {step:9d}  " + "".join(cells))


def draw(curves: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(6, 4))
    for method, (steps, returns) in curves.items():
        colour = {"mbpo": "tab:blue", "sac": "tab:gray"}[method.split("@")[0]]
        axis.plot(steps, returns.mean(0), color=colour, label=f"{method} (mean of {len(returns)})")
        axis.fill_between(steps, returns.min(0), returns.max(0), color=colour, alpha=0.2)
    axis.axhline(CLAIM, color="k", linestyle=":", linewidth=1)
    axis.set(title=ENV_ID, xlabel="environment steps", ylabel="evaluation return")
    axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "mbpo.png", dpi=100)
    print(f"\nfigure: {RESULTS / 'mbpo.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=15_000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--paper", action="store_true", help="the paper's MBPO networks, M and G (slow on CPU)")
    parser.add_argument("--report", action="store_true", help="only print and draw the stored runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        for method in args.only:
            for seed in args.seeds:
                print(f"{method} seed {seed}", flush=True)
                if method == "sac":
                    result, label = run_sac(seed, args.steps, args.eval_every, args.eval_episodes), "sac"
                else:
                    settings, label = (PAPER, "mbpo@paper") if args.paper else (CPU, "mbpo")
                    result = run_mbpo(seed, args.steps, args.eval_every, args.eval_episodes, settings)
                update_results(lambda stored: stored["runs"].update({f"{label}:{seed}": result}))
    report()


if __name__ == "__main__":
    main()
