"""Episodes in the shard format: frames with the actions, rewards and episode ends beside them.

A recorded or imported episode is cut into clips like ingested video. Each clip is one webdataset
sample with these members (T = the clip's frames):

    KEY.mp4 | KEY.npy     frames, (T, H, W, 3) uint8 (as in ingestion)
    KEY.actions.npy       (T, A) float32 for continuous actions, (T,) int64 for discrete ones,
                          (T, K) int64 for multi-discrete (keyboard/mouse-like) ones
    KEY.rewards.npy       (T,) float32: the reward received after the frame's action
    KEY.terminated.npy    (T,) bool: the episode ended after this frame's action (a true end)
    KEY.truncated.npy     (T,) bool: the episode was cut off after this frame's action
    KEY.states.npy        (T, S) float32, optional: the low-dimensional state at the frame
    KEY.json              metadata: the ingestion fields plus `episode`, `step` (index of the
                          clip's first frame in its episode), `env_id`, `action_space`, `has_actions`

Frame t is the observation before action t: the LeRobot convention (observation.*, action,
next.reward, next.done). Unlabeled video has no actions member and `has_actions: false`; actions
are never filled with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ARRAY_MEMBERS = ("actions", "rewards", "terminated", "truncated", "states")


def describe_space(space) -> dict | None:
    """A JSON description of a gymnasium action space (None for no actions)."""
    from gymnasium import spaces

    if space is None:
        return None
    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "multi_discrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "multi_binary", "n": int(np.prod(space.shape))}
    if isinstance(space, spaces.Box):
        return {"type": "box", "shape": list(space.shape), "low": space.low.tolist(), "high": space.high.tolist()}
    raise TypeError(f"action space {space} is not supported (Discrete, MultiDiscrete, MultiBinary, Box)")


def action_dtype(action_space: dict) -> np.dtype:
    return np.dtype(np.float32) if action_space["type"] == "box" else np.dtype(np.int64)


@dataclass
class Episode:
    """One episode, all arrays aligned on the frame axis (length L)."""

    frames: np.ndarray  # (L, H, W, 3) uint8
    actions: np.ndarray | None  # (L, ...) see the module docstring; None for unlabeled video
    rewards: np.ndarray  # (L,) float32
    terminated: np.ndarray  # (L,) bool
    truncated: np.ndarray  # (L,) bool
    states: np.ndarray | None = None  # (L, S) float32
    meta: dict = field(default_factory=dict)  # env_id, episode, seed, fps, action_space, source

    def __len__(self) -> int:
        return len(self.frames)


def clip_starts(length: int, clip_frames: int, stride: int | None = None) -> list[int]:
    """First frames of the clips of an episode: every `stride` frames (default: consecutive clips),
    plus one clip ending on the episode's last frame so its end is never lost."""
    stride = stride or clip_frames
    if length < clip_frames:
        return []
    starts = list(range(0, length - clip_frames + 1, stride))
    if starts[-1] != length - clip_frames:
        starts.append(length - clip_frames)
    return starts


def episode_clip_arrays(episode: Episode, start: int, clip_frames: int) -> dict[str, np.ndarray]:
    """The frames and the aligned arrays of one clip, keyed by member name."""
    window = slice(start, start + clip_frames)
    arrays = {
        "frames": episode.frames[window],
        "rewards": episode.rewards[window].astype(np.float32),
        "terminated": episode.terminated[window].astype(bool),
        "truncated": episode.truncated[window].astype(bool),
    }
    if episode.actions is not None:
        arrays["actions"] = episode.actions[window]
    if episode.states is not None:
        arrays["states"] = episode.states[window].astype(np.float32)
    return arrays


def episode_samples(
    episode: Episode, key_prefix: str, clip_frames: int, stride: int | None, fps: float, clip_format: str
):
    """The webdataset samples (dicts) of an episode's clips, keys `{key_prefix}_{start:06d}`."""
    from reverie.shards.payloads import encode_clip

    for start in clip_starts(len(episode), clip_frames, stride):
        arrays = episode_clip_arrays(episode, start, clip_frames)
        frames = arrays.pop("frames")
        key = f"{key_prefix}_{start:06d}"
        meta = {
            "key": key,
            "source": episode.meta.get("source", ""),
            "env_id": episode.meta.get("env_id"),
            "episode": episode.meta.get("episode"),
            "step": start,
            "episode_length": len(episode),
            "frames": clip_frames,
            "fps": fps,
            "width": int(frames.shape[2]),
            "height": int(frames.shape[1]),
            "format": clip_format,
            "action_space": episode.meta.get("action_space"),
            "has_actions": episode.actions is not None,
            "has_states": episode.states is not None,
        }
        sample = {"__key__": key, clip_format: encode_clip(frames, fps, clip_format), "json": meta}
        sample |= {f"{name}.npy": np.ascontiguousarray(value) for name, value in arrays.items()}
        yield sample
