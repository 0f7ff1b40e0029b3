"""The learned simulator `reverie/WorldModel-v0` (`reverie.envs.learned`): steps a second of the
world models that benchmarks/world_models.py trained on Breakout, as one env and as a vector env
of N worlds stepped in one model call, beside the real ALE Breakout env they learned.

Steps are timed after a reset and one warm-up step, on CPU with `--threads` torch threads; a vector
env's rate counts world-steps (N per call). Writes benchmarks/results/learned_sim.json.

    .venv/bin/python benchmarks/world_models.py    # trains the models first, once
    .venv/bin/python benchmarks/learned_sim.py
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import reverie.envs  # noqa: F401  (registers reverie/WorldModel-v0)
from common import DATA, RESULTS, machine, write_json

MODELS = ("diamond_edm", "iris_gpt", "dit_diffusion_forcing")
WORLD_MODELS = DATA / "world_models" / "steps800" / "models"
STARTS = DATA / "breakout64" / "held_out" / "shards"


def steps_per_second(env, actions: np.ndarray, steps: int) -> float:
    """World-steps a second over `steps` calls of env.step after a seeded reset and one warm-up step."""
    env.reset(seed=0)
    env.step(actions[0])
    began = time.perf_counter()
    for index in range(steps):
        env.step(actions[(index + 1) % len(actions)])
    worlds = getattr(env, "num_envs", 1)
    return worlds * steps / (time.perf_counter() - began)


def real_env_rate(steps: int) -> float:
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5")
    env.action_space.seed(0)
    return steps_per_second(env, np.array([env.action_space.sample() for _ in range(steps + 1)]), steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--worlds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    missing = [name for name in MODELS if not (WORLD_MODELS / name).is_dir()]
    if missing or not STARTS.is_dir():
        raise SystemExit(f"needs the Breakout world models of benchmarks/world_models.py ({', '.join(missing) or 'its episodes'} missing): run it first")
    rng = np.random.default_rng(0)
    rows = {"real ALE/Breakout-v5": {"single": real_env_rate(200 * args.steps)}}
    for name in MODELS:
        single = gym.make("reverie/WorldModel-v0", model=str(WORLD_MODELS / name), starts=str(STARTS), without_rewards=True)
        batched = gym.make_vec("reverie/WorldModel-v0", num_envs=args.worlds, model=str(WORLD_MODELS / name), starts=str(STARTS), without_rewards=True)
        count = single.action_space.n
        rows[name] = {
            "single": steps_per_second(single, rng.integers(count, size=args.steps + 1), args.steps),
            f"vector_{args.worlds}": steps_per_second(batched, rng.integers(count, size=(args.steps + 1, args.worlds)), args.steps),
        }
        print(f"{name:24s} single {rows[name]['single']:8.1f} steps/s   {args.worlds} worlds {rows[name][f'vector_{args.worlds}']:8.1f} steps/s", flush=True)
    print(f"{'real ALE/Breakout-v5':24s} single {rows['real ALE/Breakout-v5']['single']:8.1f} steps/s")
    write_json(RESULTS / "learned_sim.json", {"machine": machine(), "threads": args.threads, "steps": args.steps, "worlds": args.worlds, "steps_per_second": rows})


if __name__ == "__main__":
    main()
