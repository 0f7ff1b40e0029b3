"""A learned simulator as a gymnasium env: `reverie/WorldModel-v0`, any generative world model's
folder stepped in place of the real env, as World Models [7] (Ha & Schmidhuber 2018, "training
inside of the dream"), IRIS [14] and DIAMOND [16] train their agents in imagination.

    env = gym.make("reverie/WorldModel-v0", model="runs/diamond/model", starts="data/episodes/shards")
    envs = gym.make_vec("reverie/WorldModel-v0", num_envs=16, model=..., starts=...)  # one model call a step

- `reset` starts the world from a real frame, the first frame of an episode of `starts` drawn
  with the env's seeded generator (or one of `starts` given as an (N, H, W, 3) uint8 array of
  frames, such as an agent's replay holds), or from an image: `prompt=IMAGE` for every reset, or
  `reset(options={"prompt": IMAGE})` for one (resized to the model's frames);
- `step` returns the model's next frame (H, W, 3) uint8 and the reward and termination of its
  heads, or of a separately trained reward model (`reward_model=DIR`, `reverie.pretrain.reward_model`);
  a model with neither is refused unless `without_rewards=True` (reward 0, no termination);
- the action space comes from the model folder (`reverie.envs.learned_worlds.action_space_of`);
- `render_mode="rgb_array"` renders the current frame;
- episodes end at termination, or are truncated by the time limit (`max_episode_steps`, 1000 by
  default for both envs).

Sampling draws from a torch generator seeded at every reset from the env's own generator, so
`reset(seed=s)` and the same actions give the same frames. The vector env (`WorldModelVectorEnv`,
gymnasium's `make_vec` entry point) steps all N worlds in one model call and resets a world on the
step after it ends (gymnasium's next-step autoreset), returning its start frame with reward 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from reverie.envs.learned_worlds import LearnedEnvError, LearnedWorlds, StartFrames, load_world_model

RENDER_FPS = 15
MAX_EPISODE_STEPS = 1000


def observation_space_of(frame_size: tuple[int, int]) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, (*frame_size, 3), np.uint8)


def check_render_mode(render_mode: str | None) -> None:
    if render_mode not in (None, "rgb_array"):
        raise LearnedEnvError(f"render_mode {render_mode!r}: a learned env renders rgb_array frames (or nothing)")


class WorldModelEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(self, model: str | Path | torch.nn.Module, starts: Sequence[str | Path] | str | Path | np.ndarray | None = None,
                 prompt: str | Path | None = None, device: str = "cpu", render_mode: str | None = None,
                 reward_model: str | Path | torch.nn.Module | None = None, without_rewards: bool = False):  # fmt: skip
        check_render_mode(render_mode)
        playable = load_world_model(model, device)
        self.worlds = LearnedWorlds(playable, 1, device, reward_model, without_rewards)
        self.starts = StartFrames(starts, prompt, playable.frame_size)
        self.observation_space = observation_space_of(playable.frame_size)
        self.action_space = self.worlds.action_space
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.worlds.seed(int(self.np_random.integers(2**63 - 1)))
        frame = self.starts.draw(self.np_random, (options or {}).get("prompt"))
        self.worlds.restart([0], [frame])
        return frame.copy(), {}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        frames, rewards, terminated = self.worlds.step(np.asarray(action)[None])
        return frames[0], float(rewards[0]), bool(terminated[0]), False, {}

    def render(self) -> np.ndarray | None:
        return self.worlds.current()[0] if self.render_mode == "rgb_array" else None


class WorldModelVectorEnv(VectorEnv):
    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, model: str | Path | torch.nn.Module, starts: Sequence[str | Path] | str | Path | np.ndarray | None = None,
                 prompt: str | Path | None = None, device: str = "cpu", render_mode: str | None = None,
                 max_episode_steps: int | None = MAX_EPISODE_STEPS, reward_model: str | Path | torch.nn.Module | None = None,
                 without_rewards: bool = False):  # fmt: skip
        check_render_mode(render_mode)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise LearnedEnvError(f"max_episode_steps {max_episode_steps}: must be at least 1 (or None: no time limit)")
        playable = load_world_model(model, device)
        self.num_envs, self.render_mode, self.max_episode_steps = num_envs, render_mode, max_episode_steps
        self.worlds = LearnedWorlds(playable, num_envs, device, reward_model, without_rewards)
        self.starts = StartFrames(starts, prompt, playable.frame_size)
        self.single_observation_space = observation_space_of(playable.frame_size)
        self.single_action_space = self.worlds.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.elapsed = np.zeros(num_envs, np.int64)
        self.ended = np.zeros(num_envs, bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.worlds.seed(int(self.np_random.integers(2**63 - 1)))
        frames = [self.starts.draw(self.np_random, (options or {}).get("prompt")) for _ in range(self.num_envs)]
        self.worlds.restart(range(self.num_envs), frames)
        self.elapsed[:], self.ended[:] = 0, False
        return np.stack(frames), {}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        restarting = self.ended.copy()
        frames, rewards, terminated = self.worlds.step(np.asarray(actions))
        self.elapsed += 1
        truncated = np.zeros(self.num_envs, bool) if self.max_episode_steps is None else self.elapsed >= self.max_episode_steps
        if restarting.any():  # next-step autoreset: these worlds' step is their reset
            worlds = np.flatnonzero(restarting)
            starts = [self.starts.draw(self.np_random) for _ in worlds]
            self.worlds.restart(worlds, starts)
            frames[worlds], rewards[worlds], terminated[worlds], truncated[worlds] = np.stack(starts), 0.0, False, False
            self.elapsed[worlds] = 0
        self.ended = terminated | truncated
        return frames, rewards, terminated, truncated, {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        return tuple(self.worlds.current()) if self.render_mode == "rgb_array" else None
