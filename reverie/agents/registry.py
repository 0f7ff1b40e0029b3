"""The agent registry, agent checkpoint files, and loading any agent's checkpoint by the name
written in it.

A checkpoint is one safetensors file: the agent's arrays, and metadata holding its registered name
and JSON fields (its config, its spaces, ...). It is written to a temporary name and renamed.

An agent module exposes a dataclass config and a class registered here by name, with
`cls(config, observation_space, action_space)`, `train(env, episodes=..., steps=...)`,
`save(path)` and the classmethod `load(path)`. Entries are lazy: an agent's module is imported
the first time its name is asked for, so `reverie list` stays cheap.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from reverie.agents.spaces import box_fields, boxes_from_fields
from reverie.registry import Registry

AGENTS: Registry[type] = Registry(
    "agent",
    lazy={
        "dyna_q": "reverie.agents.dyna",
        "dyna_q_plus": "reverie.agents.dyna",
        "prioritized_sweeping": "reverie.agents.prioritized_sweeping",
        "pets": "reverie.agents.pets",
        "mbpo": "reverie.agents.mbpo",
        "pilco": "reverie.agents.pilco",
        "svg": "reverie.agents.svg",
        "mbmf": "reverie.agents.mbmf",
    },
)


def write_checkpoint(path: str | Path, agent_name: str, arrays: dict[str, np.ndarray], **fields) -> Path:
    """Write `arrays` and the JSON `fields` as agent `agent_name`'s checkpoint, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"agent": agent_name} | {name: json.dumps(value) for name, value in fields.items()}
    partial = path.with_name(path.name + ".tmp")
    save_file({name: np.ascontiguousarray(array) for name, array in arrays.items()}, str(partial), metadata=metadata)
    os.replace(partial, path)
    return path


def read_checkpoint(path: str | Path, agent_name: str) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, JSON fields) of a checkpoint, which must have been written by agent `agent_name`."""
    with safe_open(str(path), framework="numpy") as checkpoint:
        metadata = checkpoint.metadata() or {}
        arrays = {name: checkpoint.get_tensor(name) for name in checkpoint.keys()}
    if metadata.get("agent") != agent_name:
        raise ValueError(f"{path}: a checkpoint of agent {metadata.get('agent')!r}, not {agent_name!r}")
    return arrays, {name: json.loads(value) for name, value in metadata.items() if name != "agent"}


def optimizer_arrays(optimizer: torch.optim.Optimizer, prefix: str) -> dict[str, np.ndarray]:
    """An optimizer's per-parameter state (Adam's moments and step) as arrays `{prefix}.{index}.{key}`."""
    return {
        f"{prefix}.{index}.{key}": torch.as_tensor(value).numpy()
        for index, state in optimizer.state_dict()["state"].items()
        for key, value in state.items()
    }


def load_optimizer_arrays(optimizer: torch.optim.Optimizer, arrays: dict[str, np.ndarray], prefix: str) -> None:
    """Restore the state `optimizer_arrays(optimizer, prefix)` wrote."""
    state, start = optimizer.state_dict(), f"{prefix}."
    for name, value in arrays.items():
        if name.startswith(start):
            index, key = name[len(start):].split(".")
            value = torch.from_numpy(value.copy())
            state["state"].setdefault(int(index), {})[key] = value.reshape(()) if key == "step" else value  # Adam's step is 0-d
    optimizer.load_state_dict(state)


def generator_arrays(generators: dict[str, torch.Generator], skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The states of named random streams as arrays `generator.{name}`, except those in `skip`
    (streams a part saves itself, e.g. its SAC learner's)."""
    return {f"generator.{name}": generator.get_state().numpy() for name, generator in generators.items() if name not in skip}


def load_generator_arrays(generators: dict[str, torch.Generator], arrays: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> None:
    """Restore the states `generator_arrays(generators, skip)` wrote."""
    for name, generator in generators.items():
        if name not in skip:
            generator.set_state(torch.from_numpy(arrays[f"generator.{name}"]))


class TaskAgentCheckpoint:
    """`save` and `load` for an agent of a flat continuous task, built as
    `cls(config, observation_space, action_space, task=task_id)`: the checkpoint holds
    `state_dict()`, the config, the spaces (`observation_dim`, action bounds `low` and `high`) and
    the task id, plus what `checkpoint_fields` adds and `restore_fields` reads back."""

    registry_name: str
    config_class: type

    def checkpoint_fields(self) -> dict:
        spaces = box_fields(self.observation_dim, self.low.tolist(), self.high.tolist())
        return {"config": asdict(self.config), "spaces": spaces, "task": self.task_id}

    def restore_fields(self, fields: dict) -> None:
        """Restore what a subclass's `checkpoint_fields` added (nothing here)."""

    def save(self, path: str | Path) -> Path:
        """Write the agent (models, optimizers, data, random streams) to one safetensors file, atomically."""
        return write_checkpoint(path, self.registry_name, self.state_dict(), **self.checkpoint_fields())

    @classmethod
    def load(cls, path: str | Path):
        arrays, fields = read_checkpoint(path, cls.registry_name)
        observation_space, action_space = boxes_from_fields(fields["spaces"])
        agent = cls(cls.config_class(**fields["config"]), observation_space, action_space, task=fields["task"])
        agent.load_state_dict(arrays)
        agent.restore_fields(fields)
        return agent


def checkpoint_agent_name(path: str | Path) -> str:
    """The registered agent name a checkpoint was written by."""
    with safe_open(str(path), framework="numpy") as checkpoint:
        metadata = checkpoint.metadata() or {}
    if "agent" not in metadata:
        raise ValueError(f"{path}: not an agent checkpoint (no 'agent' in its metadata)")
    return metadata["agent"]


def load_agent(path: str | Path):
    """Build the agent a checkpoint names and restore its state."""
    return AGENTS.get(checkpoint_agent_name(path)).load(path)
