"""PILCO ([3] Deisenroth & Rasmussen 2011) on its cart-pole swing-up, beside SAC.

The paper's claim (its cart-pole experiment): after one random trial, PILCO learns to swing the pole up and balance
it within a handful of trials, "after about 17.5 s of interaction" in all. We run one random
trial and then up to `--trials` learned trials of 4 s (`reverie/PilcoCartpole-v0`: dt 0.1 s,
40 steps, 10 RBF basis functions), and stop a seed at its first success: the pole's tip within
0.15 m of the upright target at every step of the trial's last second. For each seed we report
that trial and the seconds of interaction it took (all trials, the random one included, x 4 s).
stable-baselines3's SAC (its defaults) runs on the same environment for the same number of steps
(16 trials) and seeds, judged by the same success test on its training trials.

Each policy improvement is L-BFGS with up to `--evaluations` predicted trials (the PILCO software
allows 150 line searches); on a shared CPU a trial's improvement costs one to several minutes.

    .venv/bin/python benchmarks/agents/pilco.py --seeds 0 1 2 3 4     # PILCO and SAC
    .venv/bin/python benchmarks/agents/pilco.py --only pilco --seeds 3 # one method, one seed
    .venv/bin/python benchmarks/agents/pilco.py --report               # table from stored runs

Each seed is merged into benchmarks/results/pilco.json after every trial (so seeds can run in
separate processes, and a stopped run keeps what it did); the table is printed and drawn to
benchmarks/results/pilco.png.
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

import reverie.envs  # noqa: F401  (registers reverie/PilcoCartpole-v0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/common.py
import common  # noqa: E402
from reverie.agents.pilco import PILCO, PILCOConfig

RESULTS = common.RESULTS
ENV_ID = "reverie/PilcoCartpole-v0"
TRIAL_SECONDS = 4.0
PUBLISHED = "swing-up and balance after about 17.5 s of interaction (cart-pole experiment)"


def update_results(change: Callable[[dict], None]) -> dict:
    """Apply `change` to pilco.json, shared safely with other processes (`benchmarks/common.py`)."""
    return common.update_results(RESULTS / "pilco.json", change)


def run_pilco(seed: int, trials: int, evaluations: int) -> None:
    """One random trial, then learned trials until the first success or `trials` of them."""
    env = gym.make(ENV_ID)
    config = PILCOConfig(seed=seed, policy_evaluations=evaluations)
    agent = PILCO(config, env.observation_space, env.action_space)
    run = {"config": {"policy_evaluations": evaluations, "success_distance": config.success_distance}, "trials": [], "finished": False}
    started = time.perf_counter()
    while agent.episodes < trials + config.random_episodes:
        row = agent.train(env, episodes=agent.episodes + 1)[-1]
        run["trials"].append({key: row[key] for key in ("episode", "return", "final_distance", "success", "predicted_cost", "model_loss", "seconds")})
        learned = row["episode"] > config.random_episodes
        print(f"  pilco seed {seed} trial {row['episode']}: return {row['return']:.2f}, tip distance over the last second "
              f"{row['final_distance']:.3f} m{' SUCCESS' if learned and row['success'] else ''} ({row['seconds']:.0f} s)", flush=True)
        done = learned and row["success"]
        run.update(seconds=time.perf_counter() - started, finished=done or agent.episodes >= trials + config.random_episodes)
        update_results(lambda stored: stored["runs"].update({f"pilco:{seed}": run}))
        if done:
            return


def run_sac(seed: int, trials: int) -> None:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    class TrialEnds(BaseCallback):
        """Records each training trial's return and final-second tip distance."""

        def __init__(self):
            super().__init__()
            self.distances, self.trials = [], []

        def _on_step(self) -> bool:
            info = self.locals["infos"][0]
            self.distances.append(info["tip_distance"])
            if self.locals["dones"][0]:
                last = self.distances[-10:]
                self.trials.append({"episode": len(self.trials) + 1, "return": float(info["episode"]["r"]), "final_distance": float(np.mean(last)), "success": bool(max(last) < 0.15)})
                self.distances = []
            return True

    from stable_baselines3.common.monitor import Monitor

    started = time.perf_counter()
    callback = TrialEnds()
    SAC("MlpPolicy", Monitor(gym.make(ENV_ID)), seed=seed, verbose=0).learn(total_timesteps=(trials + 1) * 40, callback=callback)
    run = {"config": "stable-baselines3 SAC defaults", "trials": callback.trials, "seconds": time.perf_counter() - started, "finished": True}
    update_results(lambda stored: stored["runs"].update({f"sac:{seed}": run}))
    print(f"  sac seed {seed}: best return {max(trial['return'] for trial in callback.trials):.2f}, successes {sum(trial['success'] for trial in callback.trials)}", flush=True)


def first_success(run: dict, random_trials: int) -> int | None:
    """The first successful trial after the random ones, counted from 1 over all trials."""
    return next((trial["episode"] for trial in run["trials"] if trial["episode"] > random_trials and trial["success"]), None)


def report() -> dict:
    runs = update_results(lambda stored: None)["runs"]
    summary = {}
    print(f"\nPILCO cart-pole swing-up ({ENV_ID}); published: {PUBLISHED}")
    print(f"  {'run':10s} {'trials':>6s} {'first success':>14s} {'interaction':>12s} {'compute':>9s}  tip distance over each trial's last second (m)")
    for method in ("pilco", "sac"):
        keyed = sorted((key for key in runs if key.startswith(f"{method}:")), key=lambda key: int(key.split(":")[1]))
        random_trials = 1 if method == "pilco" else 0
        successes = []
        for key in keyed:
            run = runs[key]
            success = first_success(run, random_trials)
            successes.append(success)
            state = "" if run["finished"] else " (running)"
            seconds = f"{success * TRIAL_SECONDS:.0f} s" if success else "-"
            distances = " ".join(f"{trial['final_distance']:.2f}" for trial in run["trials"])
            print(f"  {key:10s} {len(run['trials']):6d} {str(success or '-'):>14s} {seconds:>12s} {run['seconds']:8.0f}s  {distances}{state}")
        if keyed:
            done = [success for success, key in zip(successes, keyed) if success or runs[key]["finished"]]
            summary[method] = {
                "seeds": [int(key.split(":")[1]) for key in keyed], "first_success_trial": successes,
                "interaction_seconds": [success * TRIAL_SECONDS if success else None for success in successes],
                "successes": sum(success is not None for success in successes), "decided_seeds": len(done),
            }
            print(f"  {method}: {summary[method]['successes']} of {len(keyed)} seeds succeeded ({len(done)} decided)")
    update_results(lambda stored: stored.update(summary=summary))
    draw(runs)
    return summary


def draw(runs: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(7, 4))
    for key, run in sorted(runs.items()):
        colour = "tab:blue" if key.startswith("pilco") else "tab:gray"
        seconds = [trial["episode"] * TRIAL_SECONDS for trial in run["trials"]]
        axis.plot(seconds, [trial["final_distance"] for trial in run["trials"]], color=colour, marker=".", alpha=0.8, label=key)
    axis.axhline(0.15, color="k", linestyle=":", linewidth=1)
    axis.axvline(17.5, color="tab:red", linestyle="--", linewidth=1, label="paper: 17.5 s")
    axis.set(yscale="log", xlabel="interaction (s)", ylabel="tip distance, last second (m)", title=ENV_ID)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(RESULTS / "pilco.png", dpi=100)
    print(f"\nfigure: {RESULTS / 'pilco.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=15, help="learned trials after the random one")
    parser.add_argument("--evaluations", type=int, default=PILCOConfig.policy_evaluations, help="L-BFGS predicted trials per policy improvement")
    parser.add_argument("--only", choices=("pilco", "sac"))
    parser.add_argument("--report", action="store_true", help="only print and draw the stored runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        for seed in args.seeds:
            if args.only in (None, "pilco"):
                run_pilco(seed, args.trials, args.evaluations)
            if args.only in (None, "sac"):
                run_sac(seed, args.trials)
    report()


if __name__ == "__main__":
    main()
