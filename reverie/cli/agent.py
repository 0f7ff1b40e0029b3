"""Train an agent on a gymnasium environment: `reverie agent NAME --env ENV [key=value ...] --out DIR`.

NAME is a registered agent (`reverie list agent`). Each `key=value` sets a field of the agent's
config (`planning_steps=50 alpha=0.5`), the budget (`episodes=N`, default 50, or `steps=N`, both
counted from the run's start), `checkpoint_every=N` episodes (default 1), or an argument of the
environment (`env.scale=2`). DIR gets run.json (what was asked), metrics.csv (one row per episode:
return, steps, total steps, backups) and checkpoint.safetensors. Run the same command again to
resume from the checkpoint, with a larger budget to train on; `--fresh` starts over.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

BUDGET_KEYS = {"episodes", "steps", "checkpoint_every"}
METRICS_COLUMNS = ["episode", "return", "steps", "total_steps", "backups"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="a registered agent, e.g. dyna_q, dyna_q_plus, prioritized_sweeping")
    parser.add_argument("--env", required=True, help="a gymnasium id, e.g. reverie/DynaMaze-v0")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/agents/NAME-ENV)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out and start over")


def split_overrides(overrides: list[str]) -> tuple[dict, dict, list[str]]:
    """`key=value` items -> (budget, environment kwargs, agent config items)."""
    parsed = OmegaConf.to_container(OmegaConf.from_dotlist(overrides))
    budget = {key: parsed.pop(key) for key in BUDGET_KEYS & parsed.keys()}
    env_kwargs = parsed.pop("env", {})
    agent_items = [item for item in overrides if item.split("=", 1)[0] not in BUDGET_KEYS and not item.startswith("env.")]
    return budget, env_kwargs, agent_items


def resolve_config(agent_class: type, seed: int, agent_items: list[str]):
    schema = OmegaConf.structured(agent_class.config_class(seed=seed))
    return OmegaConf.to_object(OmegaConf.merge(schema, OmegaConf.from_dotlist(agent_items)))


def write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, path)


def keep_metrics(path: Path, episodes: int) -> None:
    """Rewrite metrics.csv with the episodes the checkpoint holds: rows written after it are redone."""
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    lines = [",".join(METRICS_COLUMNS)] + [",".join(row[column] for column in METRICS_COLUMNS) for row in rows if int(row["episode"]) <= episodes]
    write_atomic(path, "\n".join(lines) + "\n")


def differences(stored: dict, asked: dict, prefix: str = "") -> list[str]:
    """`key: stored -> asked` for every leaf where two run descriptions differ."""
    lines = []
    for key in sorted(stored.keys() | asked.keys()):
        old, new = stored.get(key), asked.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            lines.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return lines


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym  # loads only for this command

    import reverie.envs  # noqa: F401  (registers the reverie/ envs)
    from reverie.agents.registry import AGENTS

    try:
        agent_class = AGENTS.get(args.name)
        budget, env_kwargs, agent_items = split_overrides(args.overrides)
        config = resolve_config(agent_class, args.seed, agent_items)
        env = gym.make(args.env, **env_kwargs)
    except (KeyError, OmegaConfBaseException, gym.error.Error, TypeError, ValueError) as error:
        print(f"reverie agent: {error}", file=sys.stderr)
        return 2
    out = args.out or Path("runs/agents") / f"{args.name}-{args.env.replace('/', '_')}"
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.safetensors"
    wanted = {"agent": args.name, "env": args.env, "env_kwargs": env_kwargs, "config": asdict(config)}
    if checkpoint.exists() and not args.fresh:
        changed = differences(json.loads((out / "run.json").read_text()), wanted)
        if changed:
            print(f"reverie agent: {out} holds another run ({'; '.join(changed)}); use --fresh or another --out", file=sys.stderr)
            return 2
        agent = agent_class.load(checkpoint)
        if hasattr(env.unwrapped, "set_total_steps"):  # a maze that changes after so many steps goes on from the run's count
            env.unwrapped.set_total_steps(agent.total_steps)
        print(f"resuming {args.name} from {checkpoint} after {agent.episodes} episodes")
    else:
        agent = agent_class(config, env.observation_space, env.action_space)
        write_atomic(out / "run.json", json.dumps(wanted, indent=2) + "\n")
    metrics = out / "metrics.csv"
    keep_metrics(metrics, agent.episodes)
    checkpoint_every = budget.get("checkpoint_every", 1)

    def on_episode(row: dict) -> None:
        with metrics.open("a") as file:
            file.write(",".join(str(row[column]) for column in METRICS_COLUMNS) + "\n")
        if row["episode"] % checkpoint_every == 0:
            agent.save(checkpoint)

    episodes = budget.get("episodes", None if "steps" in budget else 50)
    rows = agent.train(env, episodes=episodes, steps=budget.get("steps"), on_episode=on_episode)
    agent.save(checkpoint)
    last = f", last episode {rows[-1]['steps']} steps, return {rows[-1]['return']:g}" if rows else ""
    print(f"{args.name} on {args.env}: {agent.episodes} episodes, {agent.total_steps} steps{last} -> {out}")
    return 0
