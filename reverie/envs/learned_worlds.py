"""B worlds of one generative world model, stepped together: the core of the learned gymnasium envs
(`reverie.envs.learned`), which World Models [7], IRIS [14] and DIAMOND [16] train agents inside.

The model is anything behind `reverie.nn.world_model`'s interface. Each world keeps its own
history, its last `max_context` frames and the actions between them. While no world is restarted,
one `step` is one model call for all B worlds and the model keeps its own rollout state. When
worlds are restarted (a reset), the model is started again from every world's history, cut to the
shortest one, because the interface starts all B worlds from contexts of one length; a model of
one context frame loses nothing by this, one of a longer context rebuilds it over the next steps.

Actions come as the gymnasium space gives them (`action_space_of`) and reach the model as its
training data held them: int64 codes for discrete and multi-discrete spaces, float32 vectors for
continuous ones, None for a model trained without actions. Reward and termination come from the
model's heads (a model whose `predicts_rewards`), or from a separately trained reward model
(`reverie.pretrain.reward_model`, `reward_model=DIR`) that reads each transition; a model with
neither is refused unless `without_rewards` asks for reward 0 and no termination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch

from reverie.play.playable import Playable, PlayError, loaded_model, playable_of
from reverie.play.session import to_uint8
from reverie.play.start_frames import episode_starts, prompt_frame


class LearnedEnvError(ValueError):
    """A model, start or action the learned env cannot use; names it and why, in one line."""


def load_world_model(model: str | Path | torch.nn.Module, device: str) -> Playable:
    """A model folder (or a loaded model) as a Playable on `device`; LearnedEnvError naming the folder."""
    try:
        if isinstance(model, (str, Path)):
            return playable_of(loaded_model(model), str(model), device)
        return playable_of(model, model.registry_name, device)
    except PlayError as error:
        raise LearnedEnvError(str(error)) from error


def action_space_of(playable: Playable) -> gym.Space:
    """The gymnasium space of the model's actions: Discrete, MultiDiscrete, Box (unbounded: a model
    folder holds no action bounds) or, for a model without actions, Discrete(1)."""
    if playable.kind == "discrete":
        return gym.spaces.Discrete(playable.nvec[0])
    if playable.kind == "multi_discrete":
        return gym.spaces.MultiDiscrete(np.array(playable.nvec, dtype=np.int64))
    if playable.kind == "continuous":
        return gym.spaces.Box(-np.inf, np.inf, playable.nvec, np.float32)
    return gym.spaces.Discrete(1)


def last(items: list, count: int) -> list:
    """The last `count` items (none for 0)."""
    return items[len(items) - count :] if count > 0 else []


class StartFrames:
    """Where resets start: the first frame of every episode of `starts` (episode shards, or the
    frames themselves as an (N, H, W, 3) uint8 array), or one prompt image."""

    def __init__(self, starts: Sequence[str | Path] | str | Path | np.ndarray | None, prompt: str | Path | None, frame_size: tuple[int, int]):
        self.frame_size = frame_size
        if isinstance(starts, np.ndarray):
            if starts.ndim != 4 or starts.dtype != np.uint8 or tuple(starts.shape[1:]) != (*frame_size, 3):
                raise LearnedEnvError(f"starts: an array of shape {starts.shape} ({starts.dtype}); give start frames (N, {frame_size[0]}, {frame_size[1]}, 3) uint8")
            self.frames = list(starts)
            return
        if isinstance(starts, (str, Path)):
            starts = [starts]
        if prompt is None and not starts:
            raise LearnedEnvError("nothing to start from: give starts=EPISODE_SHARDS (their episodes' first frames) or prompt=IMAGE")
        try:
            self.frames = [prompt_frame(prompt, frame_size).frame] if prompt is not None else [s.frame for s in episode_starts(starts, frame_size)]
        except PlayError as error:
            raise LearnedEnvError(str(error)) from error
        if not self.frames:
            raise LearnedEnvError(f"starts {' '.join(map(str, starts))}: no readable clip that starts an episode")

    def draw(self, rng: np.random.Generator, prompt: str | Path | None = None) -> np.ndarray:
        """(H, W, 3) uint8: `prompt` resized to the model's frames if given, else a start drawn uniformly."""
        if prompt is not None:
            try:
                return prompt_frame(prompt, self.frame_size).frame
            except PlayError as error:
                raise LearnedEnvError(str(error)) from error
        return self.frames[int(rng.integers(len(self.frames)))]


def reward_model_of(playable: Playable, reward_model: str | Path | torch.nn.Module | None, without_rewards: bool, device: str) -> torch.nn.Module | None:
    """The reward model the worlds read rewards from, on `device`; None where the world model's own
    heads give them (or, with `without_rewards`, nothing does). LearnedEnvError naming what does not fit."""
    if reward_model is None:
        if not playable.model.predicts_rewards and not without_rewards:
            raise LearnedEnvError(
                f"{playable.name}: has no reward head; give reward_model=DIR (a reward_model trained on the same episodes, "
                "configs/world_models/reward_model_tiny.yaml) or without_rewards=True to step it with reward 0 and no termination"
            )
        return None
    where = str(reward_model) if isinstance(reward_model, (str, Path)) else "the reward model"
    try:
        model = loaded_model(reward_model) if isinstance(reward_model, (str, Path)) else reward_model
    except PlayError as error:
        raise LearnedEnvError(str(error)) from error
    if getattr(model, "registry_name", None) != "reward_model":
        raise LearnedEnvError(f"reward_model {where}: holds {getattr(model, 'registry_name', type(model).__name__)}, not a reward_model")
    embedding = model.action_embedding
    sizes = embedding.shape if embedding.kind == "continuous" else tuple(embedding.sizes)
    if playable.steps_without_action or (embedding.kind, sizes) != (playable.kind, playable.nvec):
        raise LearnedEnvError(f"reward_model {where}: reads {embedding.describe()}; {playable.name} takes {playable.describe_actions()}")
    return model.to(device).eval()


class LearnedWorlds:
    def __init__(self, playable: Playable, num_worlds: int, device: str, reward_model: str | Path | torch.nn.Module | None = None,
                 without_rewards: bool = False):  # fmt: skip
        if num_worlds < 1:
            raise LearnedEnvError(f"num_envs {num_worlds}: must be at least 1")
        self.playable, self.num_worlds, self.device = playable, num_worlds, torch.device(device)
        self.reward_model = reward_model_of(playable, reward_model, without_rewards, device)
        self.max_context = max(1, int(playable.model.max_context))
        self.action_space = action_space_of(playable)
        self.frames: list[list[torch.Tensor]] = [[] for _ in range(num_worlds)]  # per world, (3, H, W) in [0, 1]
        self.actions: list[list[torch.Tensor]] = [[] for _ in range(num_worlds)]  # per world, the model's action between them
        self.in_sync = False  # whether the model's rollout state is every world's history
        self.generator = torch.Generator(device=self.device)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def restart(self, worlds: Sequence[int], frames: Sequence[np.ndarray]) -> None:
        """Start each of `worlds` afresh from its frame (H, W, 3) uint8."""
        for world, frame in zip(worlds, frames):
            self.frames[world] = [torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1).float() / 255]
            self.actions[world] = []
        self.in_sync = False

    def model_actions(self, actions: np.ndarray) -> torch.Tensor | None:
        """Actions (B, *space shape) from the gymnasium space -> what the model steps with."""
        if self.playable.steps_without_action:
            return None
        actions = np.asarray(actions)
        if not all(self.action_space.contains(action) for action in actions.astype(self.action_space.dtype)):
            raise LearnedEnvError(f"actions {actions.tolist()}: not in {self.action_space}")
        dtype = torch.float32 if self.playable.kind == "continuous" else torch.int64
        return torch.as_tensor(actions, dtype=dtype, device=self.device).reshape(self.num_worlds, *self.action_space.shape)

    def start_model(self) -> None:
        length = min(len(frames) for frames in self.frames)
        context = torch.stack([torch.stack(frames[-length:]) for frames in self.frames])  # (B, K, 3, H, W)
        actions = None
        if length > 1 and not self.playable.steps_without_action:
            actions = torch.stack([torch.stack(last(acts, length - 1)) for acts in self.actions])
        self.playable.model.start(context, actions, self.generator)
        self.in_sync = True

    @torch.no_grad()
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every world takes its action: next frames (B, H, W, 3) uint8, rewards (B,) float32, terminated (B,) bool."""
        model_actions = self.model_actions(actions)
        if not self.in_sync:
            self.start_model()
        world_step = self.playable.model.step(model_actions)
        reward, termination = world_step.reward, world_step.terminated
        if self.reward_model is not None:  # it reads each world's frame before this step, not yet replaced below
            previous = torch.stack([frames[-1] for frames in self.frames])
            reward, termination = self.reward_model.predict(previous, model_actions, world_step.frame.float())
        for world in range(self.num_worlds):
            self.frames[world] = last(self.frames[world] + [world_step.frame[world].float()], self.max_context)
            if model_actions is not None:
                self.actions[world] = last(self.actions[world] + [model_actions[world]], self.max_context - 1)
        zeros = np.zeros(self.num_worlds, np.float32)
        rewards = zeros if reward is None else reward.float().cpu().numpy()
        terminated = zeros.astype(bool) if termination is None else termination.bool().cpu().numpy()
        return to_uint8(world_step.frame), rewards, terminated

    def current(self) -> np.ndarray:
        """(B, H, W, 3) uint8: each world's last frame."""
        return to_uint8(torch.stack([frames[-1] for frames in self.frames]))
