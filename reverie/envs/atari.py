"""Atari as the pixel agents of [14] IRIS (Micheli et al. 2023, appendix on the environment) and
[16] DIAMOND (Alonso et al. 2024, appendix on Atari) play it: the ALE game without sticky actions
and at its minimal action set, a random number (up to 30) of no-op steps after each reset, every
action repeated for 4 emulator frames with the last two frames max-pooled, and the RGB frame
resized to `size` x `size` (64 in both papers). In training a lost life ends the episode
(`life_loss_ends`), as both papers' collectors do; evaluation plays whole games.

This is gymnasium's `AtariPreprocessing` over ale-py (Machado et al. 2018's protocol), with the
frame kept in colour. One deviation: after a lost life a training episode starts a new game, where
the papers' collectors play on from the next life.
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.wrappers import AtariPreprocessing

MAX_EMULATOR_FRAMES = 108_000  # 30 minutes of play at 60 Hz, the usual Atari cap


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


def atari_env(env_id: str, size: int = 64, life_loss_ends: bool = True, noop_max: int = 30, frame_skip: int = 4) -> gym.Env:
    """`env_id` (an ale-py id, e.g. ALE/RoadRunner-v5) with observations (size, size, 3) uint8 and
    the game's minimal Discrete action set."""
    if not is_atari(env_id):
        raise ValueError(f"{env_id!r} is not an Atari id; give an ale-py id such as ALE/RoadRunner-v5")
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.0, full_action_space=False, max_num_frames_per_episode=MAX_EMULATOR_FRAMES)
    return AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=size, terminal_on_life_loss=life_loss_ends, grayscale_obs=False)
