"""What every continuous-control agent does the same way: take flat Box spaces, bind one task, run
episodes, and save and load itself. An agent file subclasses `TaskAgent` and writes only its
paper's method, in the hooks below.

Not a paper's: this is the frame the model-based agents share, [3] PILCO (Deisenroth & Rasmussen
2011), [4] SVG (Heess et al. 2015), [6] MB-MF (Nagabandi et al. 2018), [8] MBPO (Janner et al.
2019) and [9] PETS (Chua et al. 2018); each paper's algorithm alternates acting in the world,
storing the transitions and learning from them, which is this loop. An agent is built as
`cls(config, observation_space, action_space, task=None)` and holds:

- what `bind_spaces` keeps of the spaces: for flat Boxes `observation_dim`, `action_dim` and the
  action bounds `low`, `high` ((A,) float32 tensors); the pixel agents override it;
- `generators`: one seeded `torch.Generator` per random stream named in `streams`, stream i seeded
  `config.seed * 1000 + i`, so one part's draws never shift another's;
- `replay`: the real transitions (`build_buffers` may make others, `buffers` names those saved);
- the integer counters named in `counters` (`episodes`, `total_steps`, ...), all starting at 0;
- `task_id` and what `build_task` made for it, once a task is bound.

`train(env, episodes=..., steps=...)` runs episodes; episode i is reset with seed `config.seed + i`,
so a resumed agent sees the episodes the saved one would have. One real step is
`behaviour_action` -> `env.step` -> `store` -> count -> `after_step`; an episode is
`start_episode`, its steps, then `end_episode`, whose fields go into the episode's row.

A checkpoint (`save`, `load`) holds the generators' states (`generator.{name}`, less the streams in
`own_streams`, which a part saves itself), the `counters` array, each buffer's `replay.*` arrays
under its prefix, and what `extra_state` adds; its metadata holds the config, the spaces
(`space_fields`) and the task id, plus what `checkpoint_fields` adds.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import gymnasium as gym
import numpy as np
import torch

from reverie.agents.registry import generator_arrays, load_generator_arrays, read_checkpoint, write_checkpoint
from reverie.agents.replay import ReplayBuffer
from reverie.agents.spaces import box_fields, boxes_from_fields, flat_box
from reverie.envs.model_tasks import model_task


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generator seeded `seed`, and restore it afterwards: a
    network built inside starts from the same weights whatever was drawn before."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


class TaskAgent:
    """The frame of an agent for one flat continuous task; see the module docstring."""

    registry_name: str  # the name the agent is registered and checkpointed under
    config_class: type
    display_name: str  # the agent's name in error messages ("PETS", "MB-MF")
    streams: tuple[str, ...] = ("act",)  # random streams, in seed order
    own_streams: tuple[str, ...] = ()  # streams a part saves in its own state (a SAC learner's)
    counters: tuple[str, ...] = ("episodes", "total_steps", "model_steps")  # saved as the `counters` array

    def __init__(self, config, observation_space: gym.Space, action_space: gym.Space, task: str | None = None):
        self.config = config
        self.bind_spaces(observation_space, action_space)
        self.generators = {name: torch.Generator().manual_seed(config.seed * 1000 + offset) for offset, name in enumerate(self.streams)}
        for name in self.counters:
            setattr(self, name, 0)
        self.task_id: str | None = None
        self.build_buffers()
        self.build()
        if task is not None:
            self.set_task(task)

    # -- hooks: what an agent builds -------------------------------------------------------------

    def bind_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Check the spaces and keep what the agent reads of them: here flat Boxes, giving
        `observation_dim`, `action_space`, the bounds `low` and `high` and `action_dim`."""
        self.observation_dim = flat_box(observation_space, self.display_name, "observation").shape[0]
        self.action_space = flat_box(action_space, self.display_name, "action")
        self.low = torch.as_tensor(self.action_space.low, dtype=torch.float32)  # (A,)
        self.high = torch.as_tensor(self.action_space.high, dtype=torch.float32)
        self.action_dim = len(self.low)

    def build_buffers(self) -> None:
        """The transition stores: one replay buffer of the real transitions."""
        self.replay = ReplayBuffer(self.observation_dim, self.action_dim, self.config.replay_capacity)

    def build(self) -> None:
        """The agent's parts that do not depend on the task (networks, planners, optimizers)."""

    def build_task(self, task_id: str) -> None:
        """What depends on the task: here its known reward and termination (`model_task`)."""
        self.task = model_task(task_id)

    def set_task(self, task_id: str) -> None:
        """Bind the agent to `task_id` (an env id) and build what depends on it; an agent learns one
        task for life, so binding another is an error."""
        if self.task_id == task_id:
            return
        if self.task_id is not None:
            raise ValueError(f"this {self.display_name} agent learns {self.task_id!r}, not {task_id!r}")
        self.build_task(task_id)
        self.task_id = task_id

    def model_features(self) -> int:
        """The width of the task's model input features of an observation."""
        return self.task.model_input(torch.zeros(self.observation_dim)).shape[-1]

    # -- hooks: acting and learning --------------------------------------------------------------

    def act(self, observation: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def random_action(self) -> np.ndarray:
        """(A,) uniform in [low, high], from the `act` stream."""
        return (self.low + (self.high - self.low) * torch.rand(self.action_dim, generator=self.generators["act"])).numpy()

    def behaviour_action(self, observation: np.ndarray) -> np.ndarray:
        """The action a training step takes in the environment: `act`'s."""
        return self.act(observation)

    def store(self, observation: np.ndarray, action: np.ndarray, reward: float, next_observation: np.ndarray, terminated: bool) -> None:
        """Keep one real transition."""
        self.replay.add(observation, action, reward, next_observation, terminated)

    def start_episode(self) -> None:
        """Called after an episode's reset, before its first step."""

    def after_step(self) -> None:
        """Learning after one real step (counted in `total_steps` already)."""

    def end_episode(self, steps: int) -> dict:
        """Learning after an episode of `steps` real steps (counted in `episodes` already); returns
        the fields the agent adds to the episode's row."""
        return {}

    # -- the loop --------------------------------------------------------------------------------

    def real_step(self, env: gym.Env, observation: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """(next observation, reward, episode over) of one real step from `observation`."""
        action = self.behaviour_action(observation)
        next_observation, reward, terminated, truncated, _ = env.step(action)
        self.store(observation, action, float(reward), next_observation, bool(terminated))
        self.total_steps += 1
        self.after_step()
        return next_observation, float(reward), terminated or truncated

    def run_episode(self, env: gym.Env, steps: int | None) -> dict | None:
        """One episode's row, or None if it was cut off by the budget of `steps` real steps in all
        (then it is not counted, and the next `train` starts it over)."""
        started = time.perf_counter()
        observation, _ = env.reset(seed=self.config.seed + self.episodes)
        self.start_episode()
        episode_return, episode_steps, done = 0.0, 0, False
        while not done:
            if steps is not None and self.total_steps >= steps:
                return None
            observation, reward, done = self.real_step(env, observation)
            episode_return += reward
            episode_steps += 1
        self.episodes += 1
        fields = self.end_episode(episode_steps)
        return {
            "episode": self.episodes, "return": episode_return, "steps": episode_steps, "total_steps": self.total_steps,
            **fields, "seconds": time.perf_counter() - started,
        }

    def train(
        self, env: gym.Env, episodes: int | None = None, steps: int | None = None, on_episode: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Run episodes until `episodes` episodes or `steps` real steps in all (counting any before a
        resume). Returns one row per finished episode: episode, return, steps, total_steps, the
        agent's fields (`end_episode`), seconds; `on_episode` gets each as it ends."""
        if episodes is None and steps is None:
            raise ValueError("train needs a budget: episodes or steps")
        self.set_task(env.spec.id)
        rows = []
        while episodes is None or self.episodes < episodes:
            row = self.run_episode(env, steps)
            if row is None:
                return rows
            rows.append(row)
            if on_episode is not None:
                on_episode(row)
        return rows

    # -- checkpoints -----------------------------------------------------------------------------

    def buffers(self) -> dict[str, ReplayBuffer]:
        """The buffers a checkpoint holds, by the prefix of their arrays."""
        return {"": self.replay}

    def extra_state(self) -> dict[str, np.ndarray]:
        """The agent's own arrays (models, optimizers, ...) for `state_dict`."""
        return {}

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what `extra_state` wrote; the buffers are loaded already."""

    def state_dict(self) -> dict[str, np.ndarray]:
        arrays = generator_arrays(self.generators, skip=self.own_streams)
        arrays["counters"] = np.array([getattr(self, name) for name in self.counters], np.int64)
        for prefix, buffer in self.buffers().items():
            arrays.update({prefix + name: value for name, value in buffer.state_dict().items()})
        arrays.update(self.extra_state())
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        load_generator_arrays(self.generators, arrays, skip=self.own_streams)
        for name, value in zip(self.counters, arrays["counters"].tolist()):
            setattr(self, name, value)
        for prefix, buffer in self.buffers().items():
            start = prefix + "replay."
            buffer.load_state_dict({name[len(prefix):]: value for name, value in arrays.items() if name.startswith(start)})
        self.load_extra_state(arrays)

    def space_fields(self) -> dict:
        """What a checkpoint records of the spaces: the observation width and the action bounds."""
        return box_fields(self.observation_dim, self.low.tolist(), self.high.tolist())

    @classmethod
    def spaces_from_fields(cls, spaces: dict) -> tuple[gym.spaces.Box, gym.spaces.Box]:
        """The (observation, action) spaces `space_fields` recorded."""
        return boxes_from_fields(spaces)

    def checkpoint_fields(self) -> dict:
        return {"config": asdict(self.config), "spaces": self.space_fields(), "task": self.task_id}

    def restore_fields(self, fields: dict) -> None:
        """Restore what a subclass's `checkpoint_fields` added (nothing here)."""

    def save(self, path: str | Path) -> Path:
        """Write the agent (models, optimizers, data, random streams) to one safetensors file, atomically."""
        return write_checkpoint(path, self.registry_name, self.state_dict(), **self.checkpoint_fields())

    @classmethod
    def make_env(cls, config, env_id: str, **kwargs) -> gym.Env:
        """The env a run of this agent on `env_id` trains in (`reverie agent`): `gym.make`'s."""
        return gym.make(env_id, **kwargs)

    @classmethod
    def load(cls, path: str | Path):
        """The agent `save` wrote to `path`, bound to its task, with its state restored."""
        arrays, fields = read_checkpoint(path, cls.registry_name)
        observation_space, action_space = cls.spaces_from_fields(fields["spaces"])
        agent = cls(cls.config_class(**fields["config"]), observation_space, action_space, task=fields["task"])
        agent.load_state_dict(arrays)
        agent.restore_fields(fields)
        return agent
