"""The agent registry, and loading any agent's checkpoint by the name written in it.

An agent module exposes a dataclass config and a class registered here by name, with
`cls(config, observation_space, action_space)`, `train(env, episodes=..., steps=...)`,
`save(path)` and the classmethod `load(path)`. Entries are lazy: an agent's module is imported
the first time its name is asked for, so `reverie list` stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from reverie.registry import Registry

AGENTS: Registry[type] = Registry(
    "agent",
    lazy={
        "dyna_q": "reverie.agents.dyna",
        "dyna_q_plus": "reverie.agents.dyna",
        "prioritized_sweeping": "reverie.agents.prioritized_sweeping",
        "pets": "reverie.agents.pets",
    },
)


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
