"""A raw shard sample -> training tensors: decode the payload, cut a time window, collate a batch.

The payload is what the model reads along time: `KEY.latents.npy` (T', C, h, w) and/or
`KEY.tokens.npy` (T', h, w) in a latent shard (written by `reverie tokenize`; the format is in
`reverie.tokenizers.latents`), else the frames, `KEY.mp4` (as `payloads.encode_mp4` writes it) or
`KEY.npy`, uint8 (T, H, W, 3). The episode arrays beside it (`episodes.ARRAY_MEMBERS`: actions,
rewards, terminated, truncated, states) have one entry per frame. For frames, and for latents of a
tokenizer without temporal compression, they line up with the payload one to one, and a window of
`window` steps with a random start slices all of them alike. A latent shard's JSON names its
tokenizer's temporal compression s_T (`tokenizer.compression`); with s_T > 1 the clip's T frames
have T' = 1 + ceil((T - 1) / s_T) latent frames, latent frame j stands for frame j s_T, and a window
of `window` latent frames from j comes with the per-frame entries j s_T .. (j + window - 1) s_T
(1 + (window - 1) s_T of them; windows that would reach past the clip's last frame are not drawn).

A reader may say what it expects (`expect_payload`): frames, latents or tokens, and the tokenizer
(its `model_id`) the latents must come from. A sample that holds something else is a
`PayloadMismatchError` naming its shard: a dataset set up wrong, which stops the run.

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
PAYLOADS = ("frames", *LATENT_MEMBERS)  # what a sample's model reads along time
CAST = {"latents": np.float32, "tokens": np.int64}  # the dtype the loader hands a latent payload out in
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


class PayloadMismatchError(ValueError):
    """A sample that holds another payload (frames, latents, tokens), or another tokenizer's latents,
    than its reader expects; the message names its shard. Never skipped: the dataset is wrong."""


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


def held_payload(raw: dict) -> str:
    """What the sample's model reads: "latents", "tokens" (the first a latent shard holds) or "frames"."""
    return next((name for name in LATENT_MEMBERS if f"{name}.npy" in raw), "frames")


def temporal_stride(meta: dict) -> int:
    """s_T of the tokenizer that made a latent sample (its JSON's `tokenizer.compression`); 1 without one."""
    tokenizer = meta.get("tokenizer")
    if tokenizer is None:
        return 1
    compression = tokenizer.get("compression") if isinstance(tokenizer, dict) else None
    stride = compression[0] if isinstance(compression, list) and compression else None
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise SampleFormatError(f"json tokenizer.compression is {compression!r}, not [s_T, s_H, s_W] of positive integers")
    return stride


def timed_arrays(raw: dict, meta: dict) -> dict[str, np.ndarray]:
    """The payload (latents/tokens, else frames) and the per-frame arrays, checked to line up:
    T' = 1 + ceil((T - 1) / s_T) payload steps for T frames (T' = T for frames and s_T = 1)."""
    arrays = {name: load_npy(raw[f"{name}.npy"], f"{name}.npy") for name in LATENT_MEMBERS if f"{name}.npy" in raw}
    if not arrays:
        arrays["frames"] = frames_of(raw, meta)
    arrays |= {name: load_npy(raw[f"{name}.npy"], f"{name}.npy") for name in ARRAY_MEMBERS if f"{name}.npy" in raw}
    for name, array in arrays.items():
        if name != "frames" and array.dtype.kind not in "biuf":
            raise SampleFormatError(f"{name}.npy holds {array.dtype}, not numbers or booleans")
        if name in PER_STEP and array.ndim != 1:
            raise SampleFormatError(f"{name}.npy is {array.shape}, not (T,)")
    stride, stated = temporal_stride(meta), (meta.get("tokenizer") or {}).get("frames")
    lengths = {name: len(array) for name, array in arrays.items()}
    steps = {length for name, length in lengths.items() if name in PAYLOADS}
    frames = {length for name, length in lengths.items() if name not in PAYLOADS} | ({stated} if isinstance(stated, int) else set())
    if len(steps) != 1 or any(steps != {1 + -(-(count - 1) // stride)} for count in frames) or len(frames) > 1:
        at = "" if stride == 1 else f" at s_T {stride}, T' = 1 + ceil((T - 1) / s_T)"
        said = f" (its json: {stated} frames)" if isinstance(stated, int) else ""
        raise SampleFormatError(f"arrays are not aligned in time{at}: {lengths}{said}")
    return arrays


def cut_window(
    arrays: dict[str, np.ndarray], window: int | None, rng: np.random.Generator, stride: int = 1
) -> tuple[int, dict[str, np.ndarray]]:
    """(start, the window) with a uniform random start; the whole clip for None. The payload is cut
    to steps [start, start + window), the per-frame arrays to frames start * stride ..
    (start + window - 1) * stride (see the module docstring; the same steps for stride 1)."""
    if window is None:
        return 0, arrays
    steps = next(len(array) for name, array in arrays.items() if name in PAYLOADS)
    frames = next((len(array) for name, array in arrays.items() if name not in PAYLOADS), 1 + (steps - 1) * stride)
    starts = min(steps - window, (frames - 1) // stride - window + 1) + 1
    if starts < 1:
        within = "" if stride == 1 else f" (of {frames} frames at s_T {stride}: a window needs 1 + (window - 1) s_T)"
        raise SampleFormatError(f"clip has {steps} steps{within}, fewer than the window of {window}")
    start = int(rng.integers(starts))
    first, span = start * stride, 1 + (window - 1) * stride
    return start, {
        name: array[start : start + window] if name in PAYLOADS else array[first : first + span] for name, array in arrays.items()
    }


def expect_payload(raw: dict, meta: dict, payload: str | None = None, tokenizer: str | None = None) -> None:
    """`PayloadMismatchError` naming the shard unless the sample holds `payload` ("frames",
    "latents" or "tokens"; None: any) made by the tokenizer whose `model_id` is `tokenizer` (None: any)."""
    held, where = held_payload(raw), f"{raw.get('__url__', '?')}: sample {raw['__key__']}"
    if payload is not None and payload != held and not (payload in LATENT_MEMBERS and f"{payload}.npy" in raw):
        hint = "; encode it with `reverie tokenize` first" if held == "frames" else "; read frames from the shards it was tokenized from"
        raise PayloadMismatchError(f"{where}: holds {held}, but this reader expects {payload}{hint}")
    if tokenizer is None:
        return
    if held == "frames":
        raise PayloadMismatchError(f"{where}: holds frames, but this reader expects latents of tokenizer {tokenizer}; encode it with `reverie tokenize` first")
    made_by = meta.get("tokenizer") if isinstance(meta.get("tokenizer"), dict) else {}
    if made_by.get("model_id") != tokenizer:
        named = f"tokenizer {made_by.get('name')!r} {made_by.get('model_id')} ({made_by.get('model_folder')})" if made_by else "an unnamed tokenizer"
        raise PayloadMismatchError(f"{where}: holds {held} of {named}, but this reader expects those of {tokenizer}")


def frames_tensor(clip_frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (T, C, H, W) float32 in [0, 1]. In NumPy: on CPU its transpose and
    scaling measured several times faster than torch's (benchmarks/loader.py)."""
    channels_first = np.ascontiguousarray(rearrange(clip_frames, "t h w c -> t c h w"))
    return torch.from_numpy(np.multiply(channels_first, np.float32(1 / 255), dtype=np.float32))


def as_tensor(name: str, array: np.ndarray) -> torch.Tensor:
    """Frames -> float32 (T, C, H, W) in [0, 1]; latents (stored as float16) -> float32; tokens
    (stored in the smallest integer dtype that holds them) -> int64; the rest as stored."""
    if name == "frames":
        return frames_tensor(array)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=CAST.get(name)))


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


def decode_sample(
    raw: dict, window: int | None, rng: np.random.Generator, payload: str | None = None, tokenizer: str | None = None
) -> dict:
    """A raw sample (member extension -> bytes) -> the training dict; `BadSampleError` if it cannot,
    `PayloadMismatchError` if it is not what the reader expects (`expect_payload`)."""
    key, shard = raw["__key__"], raw.get("__url__", "?")
    try:
        meta = sample_meta(raw)
        expect_payload(raw, meta, payload, tokenizer)
        start, arrays = cut_window(timed_arrays(raw, meta), window, rng, temporal_stride(meta))
        has_actions = bool(meta.get("has_actions", "actions" in arrays))
        if has_actions and "actions" not in arrays:
            raise SampleFormatError("metadata says has_actions but there is no actions.npy member")
        tensors = {name: as_tensor(name, array) for name, array in arrays.items()}
    except PayloadMismatchError:
        raise
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
