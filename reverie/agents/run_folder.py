"""An agent's run folder, as `reverie agent NAME --env ENV [key=value ...] --out DIR` keeps it.

Each `key=value` sets a field of the agent's config (`planning_steps=50 alpha=0.5`), the budget
(`episodes=N`, default 50, or `steps=N`, both counted from the run's start), `checkpoint_every=N`
episodes (default 1), or an argument of the environment (`env.scale=2`). The folder holds
`run.json` (what was asked), `metrics.csv` (one row per episode: return, steps, total steps,
backups) and `checkpoint.safetensors`, each written to a temporary name and renamed. The env is
`gym.make`'s, or the agent's own `make_env(config, env_id, **kwargs)` where it has one (the Atari
agents play by their papers' protocol). Asked again for the same run, `train_agent_run` resumes
from the checkpoint, with a larger budget to train on: metrics rows written after the checkpoint
are dropped and redone, and a maze that changes after so many steps goes on from the run's step
count. `fresh=True` starts over.

One process writes a run folder at a time: `open_agent_run` takes the folder's lock (a second
process gets `FolderLockedError` before it changes any file), and the `AgentRun` holds it until it
is closed (`with open_agent_run(...) as run:`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
from omegaconf import OmegaConf

import reverie.envs  # noqa: F401  (registers the reverie/ envs)
from reverie.agents.registry import AGENTS
from reverie.shards.folder_lock import FolderLock
from reverie.shards.writer import write_text_atomically

BUDGET_KEYS = {"episodes", "steps", "checkpoint_every"}
METRICS_COLUMNS = ["episode", "return", "steps", "total_steps", "backups"]
DEFAULT_EPISODES = 50
CHECKPOINT = "checkpoint.safetensors"


class RunFolderError(ValueError):
    """A run folder that holds another run than the one asked for."""


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


def default_run_folder(name: str, env_id: str) -> Path:
    return Path("runs/agents") / f"{name}-{env_id.replace('/', '_')}"


def keep_metrics(path: Path, episodes: int) -> None:
    """Rewrite metrics.csv with the episodes the checkpoint holds: rows written after it are redone."""
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    lines = [",".join(METRICS_COLUMNS)] + [",".join(row[column] for column in METRICS_COLUMNS) for row in rows if int(row["episode"]) <= episodes]
    write_text_atomically(path, "\n".join(lines) + "\n")


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


@dataclass
class AgentRun:
    name: str  # the agent's registered name
    agent: object  # a registered agent
    env: gym.Env
    folder: Path
    budget: dict  # episodes / steps / checkpoint_every, as asked
    lock: FolderLock  # the folder's, held until `close`

    def close(self) -> None:
        self.lock.release()

    def __enter__(self) -> "AgentRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_agent_run(name: str, env_id: str, overrides: list[str], out: Path | None = None, seed: int = 0, fresh: bool = False) -> AgentRun:
    """Agent `name` on `env_id` in the run folder `out` (default `runs/agents/NAME-ENV`): restored
    from its checkpoint unless `fresh`, else new. Raises KeyError (unknown agent), OmegaConf,
    gymnasium, TypeError or ValueError errors for a bad request, RunFolderError when `out` holds
    another run, FolderLockedError when another process writes it."""
    agent_class = AGENTS.get(name)
    budget, env_kwargs, agent_items = split_overrides(overrides)
    config = resolve_config(agent_class, seed, agent_items)
    make_env = getattr(agent_class, "make_env", None)  # an agent that plays by its paper's protocol (Atari's) builds its env
    env = make_env(config, env_id, **env_kwargs) if make_env else gym.make(env_id, **env_kwargs)
    out = out or default_run_folder(name, env_id)
    wanted = {"agent": name, "env": env_id, "env_kwargs": env_kwargs, "config": asdict(config)}
    lock = FolderLock(out).acquire()  # makes the folder
    try:
        agent = restore_or_start(agent_class, config, env, out, wanted, fresh)
    except BaseException:
        lock.release()
        raise
    return AgentRun(name, agent, env, out, budget, lock)


def restore_or_start(agent_class: type, config, env: gym.Env, out: Path, wanted: dict, fresh: bool):
    """The agent restored from `out`'s checkpoint (when it holds the `wanted` run) unless `fresh`,
    else a new one, with `wanted` written to run.json."""
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not fresh:
        changed = differences(json.loads((out / "run.json").read_text()), wanted)
        if changed:
            raise RunFolderError(f"{out} holds another run ({'; '.join(changed)}); use --fresh or another --out")
        agent = agent_class.load(checkpoint)
        if hasattr(env.unwrapped, "set_total_steps"):  # a maze that changes after so many steps goes on from the run's count
            env.unwrapped.set_total_steps(agent.total_steps)
        print(f"resuming {wanted['agent']} from {checkpoint} after {agent.episodes} episodes")
    else:
        agent = agent_class(config, env.observation_space, env.action_space)
        write_text_atomically(out / "run.json", json.dumps(wanted, indent=2) + "\n")
    return agent


def train_agent_run(run: AgentRun) -> str:
    """Train to the run's budget, appending to metrics.csv and checkpointing every
    `checkpoint_every` episodes and at the end; returns a one-line summary."""
    agent, checkpoint, metrics = run.agent, run.folder / CHECKPOINT, run.folder / "metrics.csv"
    keep_metrics(metrics, agent.episodes)
    checkpoint_every = run.budget.get("checkpoint_every", 1)

    def on_episode(row: dict) -> None:
        with metrics.open("a") as file:
            file.write(",".join(str(row[column]) for column in METRICS_COLUMNS) + "\n")
        if row["episode"] % checkpoint_every == 0:
            agent.save(checkpoint)

    episodes = run.budget.get("episodes", None if "steps" in run.budget else DEFAULT_EPISODES)
    rows = agent.train(run.env, episodes=episodes, steps=run.budget.get("steps"), on_episode=on_episode)
    agent.save(checkpoint)
    last = f", last episode {rows[-1]['steps']} steps, return {rows[-1]['return']:g}" if rows else ""
    return f"{run.name} on {run.env.spec.id}: {agent.episodes} episodes, {agent.total_steps} steps{last} -> {run.folder}"
