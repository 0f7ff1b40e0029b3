"""Short seeded runs of every agent, for checking that a change leaves the agents' numbers as they
were: run it before and after, and compare.

Each run goes through the same functions as the agent benchmarks beside this file, on seed 0, with
small budgets: Dyna-Q (n = 5, 15 episodes) and Dyna-Q+ (blocking maze, 1500 steps), prioritized
sweeping (8 episodes), PETS TS-inf on the cart-pole swing-up (2 trials), MBPO on InvertedPendulum
(2k steps, evaluations every 500), SVG(1) and SVG(inf) on Pendulum (800 steps), PILCO (2 trials) and
MB-MF's model-based phase on HalfCheetah (2 episodes of 200 steps). Every number is kept exactly.

    .venv/bin/python benchmarks/agents/seeded_runs.py --out /tmp/before.json       # on the old checkout
    .venv/bin/python benchmarks/agents/seeded_runs.py --compare /tmp/before.json   # on the new one

`--compare` exits 1 and names the runs whose numbers differ. About 4 minutes on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the agent benchmarks beside this file
import dyna_maze  # noqa: E402
import mbpo  # noqa: E402
import pets  # noqa: E402
import svg  # noqa: E402
import reverie.envs  # noqa: E402,F401  (registers the reverie/ envs)
from reverie.agents.registry import AGENTS  # noqa: E402


def make(name: str, env: gym.Env, **config):
    agent_class = AGENTS.get(name)
    return agent_class(agent_class.config_class(**config), env.observation_space, env.action_space)


def prioritized_sweeping() -> list:
    env = gym.make("reverie/DynaMaze-v0")
    return [(row["steps"], row["backups"]) for row in make("prioritized_sweeping", env, seed=0).train(env, episodes=8)]


def mbpo_run() -> list:
    run = mbpo.run_mbpo(0, 2000, 500, 3, mbpo.CPU)
    return [run["eval_returns"], run["train_returns"], run["sac_updates"]]


def pilco() -> list:
    env = gym.make("reverie/PilcoCartpole-v0")
    return [row["return"] for row in make("pilco", env, seed=0, policy_evaluations=10).train(env, episodes=2)]


def mbmf() -> list:
    env = gym.make("HalfCheetah-v5", max_episode_steps=200)
    agent = make("mbmf", env, seed=0, random_episodes=1, samples=50, horizon=5, hidden=32, epochs=2)
    return [row["return"] for row in agent.train(env, episodes=2)]


RUNS: dict[str, Callable[[], object]] = {
    "dyna_q_n5": lambda: dyna_maze.steps_per_episode(5, 0, 15),
    "dyna_q_plus_blocking": lambda: dyna_maze.cumulative_reward("dyna_q_plus", "reverie/BlockingMaze-v0", 1500, 0)[-1],
    "prioritized_sweeping": prioritized_sweeping,
    "pets": lambda: pets.run_pets("reverie/CartpoleSwingup-v0", "ts_inf", 2, 0, pets.PLANNER)["returns"],
    "mbpo": mbpo_run,
    "svg_1": lambda: svg.run_svg("svg_1", 800, 0, {}, lambda run: None)["returns"],
    "svg_inf": lambda: svg.run_svg("svg_inf", 800, 0, {}, lambda run: None)["returns"],
    "pilco": pilco,
    "mbmf": mbmf,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--out", type=Path, help="write the numbers here")
    output.add_argument("--compare", type=Path, metavar="JSON", help="compare with numbers written by --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    numbers = {name: RUNS[name]() for name in args.only}
    numbers = json.loads(json.dumps(numbers))  # tuples as lists, as the stored file has them
    if args.out:
        args.out.write_text(json.dumps(numbers) + "\n")
        print(f"wrote {args.out}")
        return 0
    stored = json.loads(args.compare.read_text())
    differ = [name for name in numbers if stored.get(name) != numbers[name]]
    for name in numbers:
        print(f"  {name:22s} {'DIFFERENT' if name in differ else 'same'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
