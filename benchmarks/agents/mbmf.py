"""MB-MF ([6] Nagabandi et al. 2018) on gymnasium's HalfCheetah-v5, beside PPO from scratch.

The paper's claims (Figs. 5-6): the model-based controller alone (random-shooting MPC on a learned
residual model, with data aggregation) reaches moderate returns with about 100x fewer samples than
model-free learners, and TRPO fine-tuning that starts from a policy imitating the MPC controller
reaches the model-free learner's final return 3-5x faster than model-free from scratch.

Three curves of training-time return against real environment steps, same env, seeds and total
budget of real steps:

- `mb`: `reverie.agents.mbmf.MBMF`, `random_episodes` random episodes, then one MPC episode per
  aggregation iteration, for `mpc_episodes` episodes;
- `mbmf`: the same run, then DAgger (`dagger_iterations` policy rollouts labelled by the MPC
  controller, every `label_every`-th state), then stable-baselines3 PPO (its defaults) started
  from the imitation policy for the rest of the budget; the curve holds all three phases' episodes;
- `ppo`: stable-baselines3 PPO (its defaults) from scratch for the whole budget.

On 2 shared CPU cores the paper's controller (K = 1000 sequences through a 2 x 500 network) costs
about 70 ms per step, so the benchmark plans with K = 500 through a 2 x 256 network (`BUDGETS`).

    .venv/bin/python benchmarks/agents/mbmf.py --seeds 0 1 2   # run seeds, merge, report
    .venv/bin/python benchmarks/agents/mbmf.py --report         # table and figure from stored runs
    .venv/bin/python benchmarks/agents/mbmf.py --budget mini    # a smaller budget, to mbmf_mini.json

Each seed is merged into benchmarks/results/mbmf.json as it finishes (written to a temporary name
and renamed, under a lock, so seeds can run in separate processes); the figure is printed as a
table and drawn to benchmarks/results/mbmf.png.
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
from reverie.agents.mbmf import MBMF, MBMFConfig
from reverie.agents.mbmf_finetune import FinetuneConfig, imitate, ppo_from_policy

RESULTS = common.RESULTS
ENV_ID = "HalfCheetah-v5"
METHODS = ("mb", "mbmf", "ppo")
BUDGETS = {  # name: (budget, steps at which the table reads the curves)
    "full": ({
        "total_steps": 50_000,  # real steps for mbmf and ppo
        "random_episodes": 5,
        "mpc_episodes": 7,
        "dagger_iterations": 2,
        "label_every": 2,
        "agent": {"samples": 500, "horizon": 10, "sample_std": 0.3, "hidden": 256, "layers": 2, "epochs": 30},
    }, (5_000, 10_000, 12_000, 15_000, 20_000, 30_000, 40_000, 50_000)),
    "mini": ({  # for a machine too busy for "full": K = 200 through 2 x 128, 7k model-based steps
        "total_steps": 20_000,
        "random_episodes": 3,
        "mpc_episodes": 4,
        "dagger_iterations": 1,
        "label_every": 4,
        "agent": {"samples": 200, "horizon": 10, "sample_std": 0.3, "hidden": 128, "layers": 2, "epochs": 30},
    }, (3_000, 5_000, 7_000, 10_000, 15_000, 20_000)),
}
BUDGET = BUDGETS["full"][0]


def monitored_returns(env) -> tuple[list[float], list[int]]:
    """(returns, episode lengths) a stable-baselines3 Monitor recorded."""
    return [float(value) for value in env.get_episode_rewards()], [int(value) for value in env.get_episode_lengths()]


def run_seed(seed: int, budget: dict, log: Callable[[str], None] = print) -> dict:
    """The three runs of one seed: {method: {returns, steps (cumulative at each episode's end), seconds}}."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor

    env = gym.make(ENV_ID)
    started = time.perf_counter()
    agent = MBMF(MBMFConfig(seed=seed, random_episodes=budget["random_episodes"], **budget["agent"]), env.observation_space, env.action_space)
    episodes = budget["random_episodes"] + budget["mpc_episodes"]
    mb_rows = agent.train(env, episodes=episodes, on_episode=lambda row: log(f"  mb seed {seed} episode {row['episode']}: return {row['return']:.1f} ({row['seconds']:.0f} s)"))
    mb = {"returns": [row["return"] for row in mb_rows], "steps": [row["total_steps"] for row in mb_rows], "seconds": time.perf_counter() - started}

    config = FinetuneConfig(dagger_iterations=budget["dagger_iterations"], label_every=budget["label_every"], seed=seed)
    policy, dagger_rows = imitate(agent, env, config, on_episode=lambda row: log(f"  dagger seed {seed} rollout {row['episode']}: return {row['return']:.1f}"))
    used = dagger_rows[-1]["total_steps"]
    monitored = Monitor(gym.make(ENV_ID))
    ppo_from_policy(policy, monitored, seed).learn(total_timesteps=budget["total_steps"] - used)
    finetune_returns, lengths = monitored_returns(monitored)
    mbmf = {
        "returns": mb["returns"] + [row["return"] for row in dagger_rows] + finetune_returns,
        "steps": mb["steps"] + [row["total_steps"] for row in dagger_rows] + (used + np.cumsum(lengths)).tolist(),
        "phases": {"mb": len(mb_rows), "dagger": len(dagger_rows), "ppo": len(finetune_returns)},
        "seconds": time.perf_counter() - started,
    }
    log(f"  mbmf seed {seed}: last PPO returns {[round(value, 1) for value in finetune_returns[-3:]]}")

    started = time.perf_counter()
    monitored = Monitor(gym.make(ENV_ID))
    PPO("MlpPolicy", monitored, seed=seed, device="cpu", verbose=0).learn(total_timesteps=budget["total_steps"])
    scratch_returns, lengths = monitored_returns(monitored)
    ppo = {"returns": scratch_returns, "steps": np.cumsum(lengths).tolist(), "seconds": time.perf_counter() - started}
    log(f"  ppo seed {seed}: last returns {[round(value, 1) for value in scratch_returns[-3:]]}")
    return {"mb": mb, "mbmf": mbmf, "ppo": ppo}


def results_name(budget_name: str) -> str:
    return "mbmf" if budget_name == "full" else f"mbmf_{budget_name}"


def update_results(change: Callable[[dict], None], budget_name: str = "full") -> dict:
    """Apply `change` to mbmf.json (mbmf_mini.json, ...), shared safely with other processes."""
    return common.update_results(RESULTS / f"{results_name(budget_name)}.json", change)


def return_at(run: dict, step: int) -> float | None:
    """The return of the last episode that ended by real step `step` (None before the first
    and after the run's end)."""
    if step > run["steps"][-1]:
        return None
    ended = [value for value, at in zip(run["returns"], run["steps"]) if at <= step]
    return ended[-1] if ended else None


def first_step_reaching(run: dict, level: float) -> int | None:
    return next((at for value, at in zip(run["returns"], run["steps"]) if value >= level), None)


def summarise(runs: dict, checkpoints: tuple[int, ...]) -> dict:
    """Per method: the mean over seeds of the return at each checkpoint; and the paper's two
    comparisons: the steps PPO from scratch needs to reach MB's final return, and to reach the
    return MB-MF ends with, against the steps MB-MF took."""
    seeds = sorted({key.split(":")[1] for key in runs})
    summary = {"seeds": [int(seed) for seed in seeds], "checkpoints": list(checkpoints), "methods": {}}
    for method in METHODS:
        keyed = [runs[f"{method}:{seed}"] for seed in seeds if f"{method}:{seed}" in runs]
        at = [[return_at(run, step) for run in keyed] for step in checkpoints]
        summary["methods"][method] = {"mean_return_at": [None if None in values else round(float(np.mean(values)), 1) for values in at], "last_step": [run["steps"][-1] for run in keyed]}
    comparisons = []
    for seed in seeds:
        mb, mbmf, ppo = (runs.get(f"{method}:{seed}") for method in METHODS)
        if None in (mb, mbmf, ppo):
            continue
        mb_final, mbmf_final = (float(np.mean(run["returns"][-3:])) for run in (mb, mbmf))
        comparisons.append({
            "seed": int(seed), "mb_final_return": round(mb_final, 1), "mb_steps": mb["steps"][-1],
            "ppo_steps_to_mb_final": first_step_reaching(ppo, mb_final),
            "mbmf_final_return": round(mbmf_final, 1), "mbmf_steps": mbmf["steps"][-1],
            "ppo_final_return": round(float(np.mean(ppo["returns"][-3:])), 1),
            "ppo_steps_to_mbmf_final": first_step_reaching(ppo, mbmf_final),
        })
    summary["comparisons"] = comparisons
    return summary


def report(budget_name: str) -> None:
    stored = update_results(lambda stored: None, budget_name)
    checkpoints = BUDGETS[budget_name][1]
    summary = summarise(stored["runs"], checkpoints)
    update_results(lambda stored: stored.update(summary=summary), budget_name)
    print(f"\n{ENV_ID}: mean training return (last episode ended by each step), seeds {summary['seeds']}, budget {stored.get('budget')}")
    print(f"  {'steps':>8s}" + "".join(f"{method:>10s}" for method in METHODS))
    for index, step in enumerate(checkpoints):
        cells = [summary["methods"][method]["mean_return_at"][index] for method in METHODS]
        print(f"  {step:8d}" + "".join(f"{'-' if value is None else f'{value:.1f}':>10s}" for value in cells))
    print("\nper seed: MB's and MB-MF's final returns (mean of their last 3 episodes) and the first PPO episode to reach each")
    for row in summary["comparisons"]:
        print(
            f"  seed {row['seed']}: MB {row['mb_final_return']:.1f} at {row['mb_steps']} steps, PPO reaches it at {row['ppo_steps_to_mb_final']}; "
            f"MB-MF {row['mbmf_final_return']:.1f} at {row['mbmf_steps']}, PPO ends at {row['ppo_final_return']:.1f} and reaches MB-MF's at {row['ppo_steps_to_mbmf_final']}"
        )
    draw(stored["runs"], results_name(budget_name))


def draw(runs: dict, name: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(7, 4))
    colours = {"mb": "tab:blue", "mbmf": "tab:green", "ppo": "tab:gray"}
    for key, run in sorted(runs.items()):
        method, seed = key.split(":")
        axis.plot(run["steps"], run["returns"], color=colours[method], marker="." if method == "mb" else None, alpha=0.8, label=method if seed == min(k.split(":")[1] for k in runs) else None)
    axis.set(title=f"{ENV_ID}: MB-MF (Nagabandi et al. 2018) vs PPO", xlabel="real environment steps", ylabel="training-time return")
    axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / f"{name}.png", dpi=100)
    print(f"\nfigure: {RESULTS / name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    parser.add_argument("--report", action="store_true", help="only print and draw the stored runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        for seed in args.seeds:
            print(f"seed {seed}", flush=True)
            budget = BUDGETS[args.budget][0]
            runs = run_seed(seed, budget, log=lambda line: print(line, flush=True))
            update_results(lambda stored: stored["runs"].update({f"{method}:{seed}": run for method, run in runs.items()}) or stored.update(budget=budget), args.budget)
    report(args.budget)


if __name__ == "__main__":
    main()
