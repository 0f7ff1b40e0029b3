"""The agent registry, agent checkpoint files, and loading any agent's checkpoint by the name
written in it.

A checkpoint is one safetensors file: the agent's arrays, and metadata holding its registered name
and JSON fields (its config, its spaces, ...). It is written to a temporary name and renamed.

An agent module exposes a dataclass config and a class registered here by name, with
`cls(config, observation_space, action_space)`, `train(env, episodes=..., steps=...)`,
`save(path)` and the classmethod `load(path)` (the continuous-control agents get these from
`reverie.agents.base.TaskAgent`). Entries are lazy: an agent's module is imported the first time
its name is asked for, so `reverie list` stays cheap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from torch import nn

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
        "diamond": "reverie.agents.diamond",
        "iris": "reverie.agents.iris",
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


def module_arrays(module: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    """A module's parameters and buffers as arrays `{prefix}.{name}`."""
    return {f"{prefix}.{name}": value.detach().numpy() for name, value in module.state_dict().items()}


def load_module_arrays(module: nn.Module, arrays: dict[str, np.ndarray], prefix: str) -> None:
    """Restore the parameters and buffers `module_arrays(module, prefix)` wrote."""
    start = f"{prefix}."
    module.load_state_dict({name[len(start):]: torch.from_numpy(value) for name, value in arrays.items() if name.startswith(start)})


def generator_arrays(generators: dict[str, torch.Generator], skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The states of named random streams as arrays `generator.{name}`, except those in `skip`
    (streams a part saves itself, e.g. its SAC learner's)."""
    return {f"generator.{name}": generator.get_state().numpy() for name, generator in generators.items() if name not in skip}


def load_generator_arrays(generators: dict[str, torch.Generator], arrays: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> None:
    """Restore the states `generator_arrays(generators, skip)` wrote."""
    for name, generator in generators.items():
        if name not in skip:
            generator.set_state(torch.from_numpy(arrays[f"generator.{name}"]))


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
