"""A raw shard sample -> training tensors: decode the payload, cut a time window, collate a batch.

The payload is what the model reads along time: `KEY.latents.npy` and/or `KEY.tokens.npy` in a
latent shard (written by a tokenizer stage), else the frames, `KEY.mp4` (decoded with
`encode.decode_mp4`) or `KEY.npy`, uint8 (T, H, W, 3). The episode arrays beside it
(`episodes.ARRAY_MEMBERS`: actions, rewards, terminated, truncated, states) are aligned with the
payload on the first axis; a window of `window` steps with a random start slices all of them alike.
"""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import default_collate

from reverie.shards.payloads import decode_mp4
from reverie.shards.episodes import ARRAY_MEMBERS

LATENT_MEMBERS = ("latents", "tokens")
FRAME_MEMBERS = ("mp4", "npy")


class BadSampleError(Exception):
    """A sample that cannot be turned into tensors; the message names its shard and key."""

    def __init__(self, shard: str, key: str, reason: str):
        super().__init__(f"{shard}: sample {key}: {reason}")
        self.shard, self.key, self.reason = shard, key, reason


def load_npy(payload: bytes) -> np.ndarray:
    """`.npy` bytes -> array; pickled object arrays are refused (shards are data, not code)."""
    return np.load(io.BytesIO(payload), allow_pickle=False)


def frames_of(raw: dict) -> np.ndarray:
    """(T, H, W, 3) uint8 frames from the sample's `mp4` or `npy` member."""
    if "mp4" in raw:
        clip_frames = decode_mp4(raw["mp4"])
    elif "npy" in raw:
        clip_frames = load_npy(raw["npy"])
    else:
        members = sorted(name for name in raw if not name.startswith("__"))
        raise ValueError(f"no payload: neither frames ({'/'.join(FRAME_MEMBERS)}) nor {'/'.join(LATENT_MEMBERS)}.npy among {members}")
    if clip_frames.dtype != np.uint8 or clip_frames.ndim != 4:
        raise ValueError(f"frames are {clip_frames.dtype} {clip_frames.shape}, expected uint8 (T, H, W, C)")
    return clip_frames


def timed_arrays(raw: dict) -> dict[str, np.ndarray]:
    """The payload (latents/tokens, else frames) and the aligned arrays, all with the same length."""
    arrays = {name: load_npy(raw[f"{name}.npy"]) for name in LATENT_MEMBERS if f"{name}.npy" in raw}
    if not arrays:
        arrays["frames"] = frames_of(raw)
    arrays |= {name: load_npy(raw[f"{name}.npy"]) for name in ARRAY_MEMBERS if f"{name}.npy" in raw}
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays are not aligned in time: {lengths}")
    return arrays


def cut_window(arrays: dict[str, np.ndarray], window: int | None, rng: np.random.Generator) -> tuple[int, dict[str, np.ndarray]]:
    """(start, arrays[start : start + window]) with a uniform random start; the whole clip for None."""
    length = len(next(iter(arrays.values())))
    if window is None:
        return 0, arrays
    if length < window:
        raise ValueError(f"clip has {length} steps, fewer than the window of {window}")
    start = int(rng.integers(length - window + 1))
    return start, {name: array[start : start + window] for name, array in arrays.items()}


def frames_tensor(clip_frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (T, C, H, W) float32 in [0, 1]. In NumPy: on CPU its transpose and
    scaling measured several times faster than torch's (benchmarks/loader.py)."""
    channels_first = np.ascontiguousarray(rearrange(clip_frames, "t h w c -> t c h w"))
    return torch.from_numpy(np.multiply(channels_first, np.float32(1 / 255), dtype=np.float32))


def as_tensor(name: str, array: np.ndarray) -> torch.Tensor:
    """Frames -> float32 (T, C, H, W) in [0, 1]; tokens -> int64; the rest as stored."""
    if name == "frames":
        return frames_tensor(array)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.long() if name == "tokens" else tensor


def decode_sample(raw: dict, window: int | None, rng: np.random.Generator) -> dict:
    """A raw sample (member extension -> bytes) -> the training dict; `BadSampleError` if it cannot."""
    key, shard = raw["__key__"], raw.get("__url__", "?")
    try:
        meta = json.loads(raw["json"]) if "json" in raw else {}
        start, arrays = cut_window(timed_arrays(raw), window, rng)
        has_actions = bool(meta.get("has_actions", "actions" in arrays))
        if has_actions and "actions" not in arrays:
            raise ValueError("metadata says has_actions but there is no actions.npy member")
    except Exception as error:  # any decode or format error costs this sample only
        raise BadSampleError(shard, key, f"{type(error).__name__}: {error}") from error
    tensors = {name: as_tensor(name, array) for name, array in arrays.items()}
    return tensors | {"has_actions": has_actions, "key": key, "shard": shard, "window_start": start, "meta": meta}


def collate_clips(samples: list[dict]) -> dict:
    """A batch: tensors of equal shape are stacked (B, ...), numbers and bools become tensors, and
    anything else -- strings, metadata, fields that some samples lack (None there) -- a list."""
    names = list(dict.fromkeys(name for sample in samples for name in sample))
    return {name: stack_or_list([sample.get(name) for sample in samples]) for name in names}


def stack_or_list(values: list):
    if all(isinstance(value, torch.Tensor) for value in values) and len({value.shape for value in values}) == 1:
        return default_collate(values)  # stacks straight into shared memory inside a worker
    if all(isinstance(value, (bool, int, float)) for value in values):
        return torch.tensor(values)
    return values
