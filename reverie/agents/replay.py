"""A transition replay buffer: (observation, action, reward, next observation, terminated) rows in
numpy arrays, first in first out past its capacity, saved to and loaded from safetensors.

Experience replay is Lin 1992 (not in the survey), "Self-Improving Reactive Agents Based on
Reinforcement Learning, Planning and Teaching", Machine Learning 8; here it is the data set D of
the model-based agents: [9] PETS and [6] MB-MF fit their models to all of it, [8] MBPO (D_env) and
[4] SVG(1) sample minibatches from it, [3] PILCO fits its GPs to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated")


class ReplayBuffer:
    """Holds up to `capacity` transitions of `observation_dim` and `action_dim` floats."""

    def __init__(self, observation_dim: int, action_dim: int, capacity: int = 1_000_000):
        self.capacity = capacity
        self.observations = np.zeros((capacity, observation_dim), np.float32)
        self.actions = np.zeros((capacity, action_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.next_observations = np.zeros((capacity, observation_dim), np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.added = 0  # transitions ever added; the newest sits at (added - 1) % capacity

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def add(self, observation, action, reward: float, next_observation, terminated: bool) -> None:
        row = self.added % self.capacity
        self.observations[row] = observation
        self.actions[row] = action
        self.rewards[row] = reward
        self.next_observations[row] = next_observation
        self.terminated[row] = terminated
        self.added += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """Every stored transition (views, in storage order)."""
        return {name: getattr(self, name)[: len(self)] for name in FIELDS}

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        rows = rng.integers(len(self), size=batch_size)
        return {name: getattr(self, name)[rows] for name in FIELDS}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**{f"replay.{name}": np.ascontiguousarray(array) for name, array in self.arrays().items()}, "replay.added": np.array([self.added, self.capacity], np.int64)}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.added, capacity = arrays["replay.added"].tolist()
        if capacity != self.capacity:
            raise ValueError(f"replay state holds capacity {capacity}, this buffer has {self.capacity}")
        for name in FIELDS:
            stored = arrays[f"replay.{name}"]
            getattr(self, name)[: len(stored)] = stored

    def save(self, path: str | Path) -> None:
        save_file(self.state_dict(), str(path))

    @classmethod
    def load(cls, path: str | Path) -> "ReplayBuffer":
        arrays = load_file(str(path))
        buffer = cls(arrays["replay.observations"].shape[1], arrays["replay.actions"].shape[1], int(arrays["replay.added"][1]))
        buffer.load_state_dict(arrays)
        return buffer
