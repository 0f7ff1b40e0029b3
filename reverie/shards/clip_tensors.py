"""A raw shard sample -> training tensors: decode the payload, cut a time window, collate a batch.

The payload is what the model reads along time: `KEY.latents.npy` and/or `KEY.tokens.npy` in a
latent shard (written by a tokenizer stage), else the frames, `KEY.mp4` (as `payloads.encode_mp4`
writes it) or `KEY.npy`, uint8 (T, H, W, 3). The episode arrays beside it
(`episodes.ARRAY_MEMBERS`: actions, rewards, terminated, truncated, states) are aligned with the
payload on the first axis; a window of `window` steps with a random start slices all of them alike.

A sample is checked before it is decoded, so a corrupt or hostile one costs its own bytes, not the
worker. An `.npy` header must declare exactly the bytes the member holds, and no Python objects.
An mp4 (opened as mp4, without probing for other formats) is decoded only up to the frame count
and size its JSON states (`frames`, `height`, `width`, which an mp4 clip must have), and refused
as soon as its header, or its next frame, says more. npy frames must match the JSON where it
states them (an npy cannot expand past its own bytes). Aligned arrays must be numbers or booleans,
one value per step for rewards and episode ends. Any failure is a `BadSampleError` whose one-line
message names the shard, the key and the reason.
"""

from __future__ import annotations

import io
import json
import math

import av
import numpy as np
import torch
from einops import rearrange
from torch.utils.data import default_collate

from reverie.shards.episodes import ARRAY_MEMBERS

LATENT_MEMBERS = ("latents", "tokens")
FRAME_MEMBERS = ("mp4", "npy")
CLIP_SIZE = ("frames", "height", "width")  # what a clip's JSON states about its frames
PER_STEP = ("rewards", "terminated", "truncated")  # one value per step: (T,)
NPY_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class BadSampleError(Exception):
    """A sample that cannot be turned into tensors; the message, one line, names its shard and key."""

    def __init__(self, shard: str, key: str, reason: str):
        reason = " ".join(reason.split())  # library messages may span lines; a warning is one
        super().__init__(f"{shard}: sample {key}: {reason}")
        self.shard, self.key, self.reason = shard, key, reason


class SampleFormatError(ValueError):
    """A member that breaks the shard format; the message is the whole reason."""


def npy_header(payload: bytes, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an `.npy` member's header alone, if the member holds exactly the bytes
    it declares and no Python objects (shards are data, not code)."""
    buffer = io.BytesIO(payload)
    try:
        read_header = NPY_READERS.get(np.lib.format.read_magic(buffer))
        if read_header is None:
            raise SampleFormatError(f"{member} is not an .npy of format 1.0 or 2.0")
        shape, _, dtype = read_header(buffer)
    except ValueError as error:
        raise SampleFormatError(f"{member} has no readable .npy header ({error})") from None
    if dtype.hasobject:
        raise SampleFormatError(f"{member} holds Python objects (pickles are refused)")
    declared, held = math.prod(shape) * dtype.itemsize, len(payload) - buffer.tell()
    if declared != held:
        raise SampleFormatError(f"{member} declares {dtype} {shape}, {declared} bytes, but holds {held}")
    return shape, dtype


def load_npy(payload: bytes, member: str = "npy") -> np.ndarray:
    """`.npy` bytes -> array, once `npy_header` has checked them."""
    npy_header(payload, member)
    return np.load(io.BytesIO(payload), allow_pickle=False)


def stated_size(meta: dict) -> dict[str, int]:
    """The frame count and size that the clip's JSON states (`CLIP_SIZE`), those it has."""
    stated = {name: meta[name] for name in CLIP_SIZE if meta.get(name) is not None}
    for name, value in stated.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SampleFormatError(f"json {name} is {value!r}, not a positive integer")
    return stated


def decode_mp4_within(payload: bytes, frames: int, height: int, width: int) -> np.ndarray:
    """mp4 bytes -> (frames, height, width, 3) uint8 RGB, refused as soon as the stream declares,
    or decodes, another frame size or more frames: at most `frames + 1` frames are decoded."""
    try:
        container = av.open(io.BytesIO(payload), format="mp4")
    except av.FFmpegError as error:
        raise SampleFormatError(f"mp4 does not open: {error}") from None
    with container:
        if not container.streams.video:
            raise SampleFormatError("mp4 has no video stream")
        stream = container.streams.video[0]
        declared = (stream.codec_context.width, stream.codec_context.height)
        if declared != (0, 0) and declared != (width, height):
            raise SampleFormatError(f"mp4 frames are {declared[0]}x{declared[1]}, its json says {width}x{height}")
        if stream.frames > frames:
            raise SampleFormatError(f"mp4 declares {stream.frames} frames, its json says {frames}")
        clip_frames, count = np.empty((frames, height, width, 3), np.uint8), 0
        try:
            for frame in container.decode(stream):
                if count == frames:
                    raise SampleFormatError(f"mp4 holds more than the {frames} frames its json says")
                if (frame.width, frame.height) != (width, height):
                    raise SampleFormatError(f"mp4 frame {count} is {frame.width}x{frame.height}, its json says {width}x{height}")
                clip_frames[count] = frame.to_ndarray(format="rgb24")
                count += 1
        except av.FFmpegError as error:
            raise SampleFormatError(f"mp4 breaks off after {count} of its {frames} frames ({error})") from None
    if count < frames:
        raise SampleFormatError(f"mp4 holds {count} frames, its json says {frames}")
    return clip_frames


def frames_of(raw: dict, meta: dict) -> np.ndarray:
    """(T, H, W, 3) uint8 frames from the sample's `mp4` or `npy` member, checked against `meta`."""
    stated = stated_size(meta)
    if "mp4" in raw:
        missing = [name for name in CLIP_SIZE if name not in stated]
        if missing:
            raise SampleFormatError(f"json has no {', '.join(missing)}: an mp4 is decoded only up to the size its json states")
        return decode_mp4_within(raw["mp4"], stated["frames"], stated["height"], stated["width"])
    if "npy" not in raw:
        members = sorted(name for name in raw if not name.startswith("__"))
        raise SampleFormatError(f"no payload: neither frames ({'/'.join(FRAME_MEMBERS)}) nor {'/'.join(LATENT_MEMBERS)}.npy among {members}")
    shape, dtype = npy_header(raw["npy"], "npy")
    if dtype != np.uint8 or len(shape) != 4:
        raise SampleFormatError(f"npy frames are {dtype} {shape}, not uint8 (T, H, W, C)")
    if any(shape[axis] != stated[name] for axis, name in enumerate(CLIP_SIZE) if name in stated):
        said = " x ".join(str(stated.get(name, "?")) for name in CLIP_SIZE)
        raise SampleFormatError(f"npy frames are {shape}, its json says {said}")
    return load_npy(raw["npy"])


def timed_arrays(raw: dict, meta: dict) -> dict[str, np.ndarray]:
    """The payload (latents/tokens, else frames) and the aligned arrays, all with the same length."""
    arrays = {name: load_npy(raw[f"{name}.npy"], f"{name}.npy") for name in LATENT_MEMBERS if f"{name}.npy" in raw}
    if not arrays:
        arrays["frames"] = frames_of(raw, meta)
    arrays |= {name: load_npy(raw[f"{name}.npy"], f"{name}.npy") for name in ARRAY_MEMBERS if f"{name}.npy" in raw}
    for name, array in arrays.items():
        if name != "frames" and array.dtype.kind not in "biuf":
            raise SampleFormatError(f"{name}.npy holds {array.dtype}, not numbers or booleans")
        if name in PER_STEP and array.ndim != 1:
            raise SampleFormatError(f"{name}.npy is {array.shape}, not (T,)")
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise SampleFormatError(f"arrays are not aligned in time: {lengths}")
    return arrays


def cut_window(arrays: dict[str, np.ndarray], window: int | None, rng: np.random.Generator) -> tuple[int, dict[str, np.ndarray]]:
    """(start, arrays[start : start + window]) with a uniform random start; the whole clip for None."""
    length = len(next(iter(arrays.values())))
    if window is None:
        return 0, arrays
    if length < window:
        raise SampleFormatError(f"clip has {length} steps, fewer than the window of {window}")
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


def sample_meta(raw: dict) -> dict:
    """The sample's JSON member as a dict ({} without one)."""
    if "json" not in raw:
        return {}
    try:
        meta = json.loads(raw["json"])
    except ValueError as error:
        raise SampleFormatError(f"json does not parse: {error}") from None
    if not isinstance(meta, dict):
        raise SampleFormatError(f"json is a {type(meta).__name__}, not an object")
    return meta


def decode_sample(raw: dict, window: int | None, rng: np.random.Generator) -> dict:
    """A raw sample (member extension -> bytes) -> the training dict; `BadSampleError` if it cannot."""
    key, shard = raw["__key__"], raw.get("__url__", "?")
    try:
        meta = sample_meta(raw)
        start, arrays = cut_window(timed_arrays(raw, meta), window, rng)
        has_actions = bool(meta.get("has_actions", "actions" in arrays))
        if has_actions and "actions" not in arrays:
            raise SampleFormatError("metadata says has_actions but there is no actions.npy member")
        tensors = {name: as_tensor(name, array) for name, array in arrays.items()}
    except SampleFormatError as error:
        raise BadSampleError(shard, key, str(error)) from error
    except Exception as error:  # any decode or library error costs this sample only
        raise BadSampleError(shard, key, f"{type(error).__name__}: {error}") from error
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
