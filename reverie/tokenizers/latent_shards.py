"""`reverie tokenize`: frame shards in, latent shards and a manifest out; resumable after kill -9.

Each clip of the input shards (ingested video, recorded or imported episodes) is encoded by a video
tokenizer from a model folder into the latent shard format of `reverie.tokenizers.latents`, in
DIR/shards/*.tar, and each input shard gets one line in DIR/manifest.jsonl: `path`, `status` (ok;
failed: the tar could not be read whole, the clips before the break are kept), `reason`, `clips`,
`shards`, `dropped` (clips whose frames do not decode, `undecodable`; that the tokenizer cannot
take, `unencodable`, e.g. a size that does not divide by its compression; whose key an earlier
clip of this run already has, `key_taken`) and `errors` (the first of them, "KEY: reason").

Order. Clips are written in input order: the input shards as given, each clip in tar order. The
model sees batches of `batch_size` consecutive clips of one input shard (clips of another size in
a batch go through it apart), cut the same way whatever an earlier run did, so a clip's latents
do not depend on where a killed run stopped. `workers` processes (a pebble pool, as ingestion's)
read and decode the frames of the batches ahead; the main process encodes them on `device` and
writes them through the shard sink (`reverie.shards.sink`), which appends an input's manifest
line once all its clips sit in shards renamed into place.

Resume. A killed run leaves a prefix of the clip stream in finished shards. The next run skips the
inputs the manifest names and, of a partly written input, the clips already in finished shards
(each clip's JSON names its source shard and key), so the shards end up holding what an unbroken
run writes, each clip once. A run holds DIR's lock while it writes; DIR/tokenize.json names the
model (its `model_id`), and a run with another model into a DIR that holds latents is refused
(`LatentFolderError`) before any file changes, as is an input that is a latent shard, not frames
(`TokenizeInputError`).
"""

from __future__ import annotations

import json
import tarfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pebble import ProcessPool
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from webdataset.tariterators import base_plus_ext

from reverie.pipelines.errors import SettingsError, check_setting
from reverie.pipelines.isolation import in_worker, outcome
from reverie.shards.clip_tensors import FRAME_MEMBERS, LATENT_MEMBERS, SampleFormatError, frames_of, frames_tensor, sample_meta
from reverie.shards.folder_lock import FolderLock
from reverie.shards.manifest import read_manifest
from reverie.shards.sample_order import list_shards
from reverie.shards.sink import ShardSink
from reverie.shards.writer import write_text_atomically
from reverie.tokenizers.latents import encode_frames, model_identity, tokenizer_fields, video_tokenizer

RUN_FILE = "tokenize.json"
MAX_ERRORS = 10  # clips named per manifest line; `dropped` counts them all
DROPPED = ("undecodable", "unencodable", "key_taken")


@dataclass(frozen=True)
class TokenizeConfig:
    model_folder: Path
    inputs: list[str]  # frame shards: tar paths, folders (their *.tar, or shards/*.tar), globs
    out: Path
    workers: int = 1  # processes that read and decode frames; 0: the main process does it
    batch_size: int = 8  # consecutive clips of one input shard through the model at once
    device: str = "cpu"
    shard_max_count: int = 1000
    shard_max_bytes: int = 1 << 30
    progress: bool = True

    def __post_init__(self) -> None:
        check_setting(self.workers >= 0, "--workers", self.workers, "must be 0 (decode in the main process) or more")
        check_setting(self.batch_size >= 1, "--batch-size", self.batch_size, "must be at least 1")
        check_setting(self.shard_max_count >= 1, "--shard-size", self.shard_max_count, "must be at least 1")
        check_setting(self.shard_max_bytes >= 1, "--shard-bytes", self.shard_max_bytes, "must be at least 1")
        try:
            device = torch.device(self.device)
        except RuntimeError as error:
            raise SettingsError("--device", self.device, " ".join(str(error).split())) from None
        check_setting(device.type != "cuda" or torch.cuda.is_available(), "--device", self.device, "no CUDA device here")


class TokenizeInputError(ValueError):
    """An input that `reverie tokenize` cannot read as frame shards; names the file."""


class LatentFolderError(ValueError):
    """An output folder that holds latents of another model; names the folder and both models."""


@dataclass
class ClipMembers:
    """Where one clip's members lie in its tar: extension -> (offset of the data, size)."""

    key: str
    members: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class DecodedClip:
    key: str
    meta: dict
    frames: np.ndarray | None  # (T, H, W, 3) uint8; None when they could not be decoded
    members: dict[str, bytes]  # the clip's other members (actions.npy, ...), as stored
    reason: str = ""  # why there are no frames


def run_tokenize(config: TokenizeConfig) -> list[dict]:
    """Tokenize the input shards not yet in DIR's manifest; return all its lines. Raises
    `NotAVideoTokenizerError`, `TokenizeInputError`, `LatentFolderError` or `FolderLockedError`
    before any file is changed."""
    model = video_tokenizer(config.model_folder)
    model_id = model_identity(config.model_folder)
    shards = input_shards(config.inputs, config.out)
    with FolderLock(config.out):
        save_run_file(config, model, model_id)
        return _tokenize(config, model.to(config.device), model_id, shards)


def input_shards(inputs: list[str], out: Path) -> list[str]:
    """The absolute paths of the frame shards that `inputs` name, in order, each once."""
    shards = []
    for spec in inputs:
        try:
            shards += [str(Path(shard).resolve()) for shard in list_shards(spec)]
        except FileNotFoundError as error:
            raise TokenizeInputError(str(error)) from None
    output = (Path(out) / "shards").resolve()
    for shard in dict.fromkeys(shards):
        if not Path(shard).is_file():
            raise TokenizeInputError(f"{shard}: no such shard file")
        if Path(shard).parent == output:
            raise TokenizeInputError(f"{shard}: is inside --out {out}, which this run writes")
        check_frame_shard(shard)
    return list(dict.fromkeys(shards))


def check_frame_shard(shard: str) -> None:
    """`TokenizeInputError` if the first clip of `shard` holds latents or codes, not frames (a tar that
    cannot be read passes: the run records why in its manifest line)."""
    clips, _ = plan_shard(shard, limit=1)
    held = [f"{name}.npy" for name in LATENT_MEMBERS if clips and f"{name}.npy" in clips[0].members]
    if held:
        raise TokenizeInputError(
            f"{shard}: a latent shard (clip {clips[0].key} holds {held[0]}), not frames; reverie tokenize reads frame "
            f"shards (KEY.mp4 or KEY.npy), such as the ones it was tokenized from"
        )


def plan_shard(shard: str, limit: int | None = None) -> tuple[list[ClipMembers], str]:
    """The clips of a tar (at most `limit`), from its headers alone, in tar order, and why it could
    not be read whole ("" when it could). After a break the last clip is left out: it may be cut."""
    clips: list[ClipMembers] = []
    try:
        size = Path(shard).stat().st_size
        with tarfile.open(shard) as tar:
            for member in tar:
                key, extension = base_plus_ext(member.name)
                if not member.isreg() or key is None:
                    continue
                if member.offset_data + member.size > size:
                    raise tarfile.ReadError(f"{member.name} is cut short")
                if not clips or clips[-1].key != key:
                    if limit is not None and len(clips) == limit:
                        break
                    clips.append(ClipMembers(key))
                clips[-1].members[extension] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError) as error:
        left_out = f"; its last clip {clips.pop().key} is left out" if clips else ""
        return clips, f"the tar breaks off after {len(clips)} whole clips ({type(error).__name__}: {error}){left_out}"
    return clips, ""


def read_clips(shard: str, clips: list[ClipMembers]) -> list[DecodedClip]:
    """Read and decode the frames of `clips` (in a pool worker): one `DecodedClip` each."""
    decoded = []
    with open(shard, "rb") as file:
        for clip in clips:
            raw = {}
            for extension, (offset, size) in clip.members.items():
                file.seek(offset)
                raw[extension] = file.read(size)
            decoded.append(decode_clip(clip.key, raw))
    return decoded


def decode_clip(key: str, raw: dict[str, bytes]) -> DecodedClip:
    """A clip's frames, checked against its JSON as the loader checks them, and its other members."""
    members = {extension: payload for extension, payload in raw.items() if extension not in ("json", *FRAME_MEMBERS)}
    try:
        meta = sample_meta(raw)
        held = [f"{name}.npy" for name in LATENT_MEMBERS if f"{name}.npy" in raw]
        if held:
            raise SampleFormatError(f"holds {held[0]}: a latent shard's clip, not frames")
        return DecodedClip(key, meta, frames_of(raw, meta), members)
    except SampleFormatError as error:
        return DecodedClip(key, {}, None, {}, str(error))
    except Exception as error:  # a library error on one clip costs that clip only
        return DecodedClip(key, {}, None, {}, f"{type(error).__name__}: {error}")


def save_run_file(config: TokenizeConfig, model: nn.Module, model_id: str) -> None:
    """Record the model in DIR/tokenize.json; `LatentFolderError` if DIR holds latents of another
    model, or shards that `reverie tokenize` did not write."""
    run_file = config.out / RUN_FILE
    if (config.out / "manifest.jsonl").exists() or any((config.out / "shards").glob("*.tar*")):
        if not run_file.exists():
            raise LatentFolderError(f"{config.out} holds shards or a manifest but no {RUN_FILE}: not a reverie tokenize folder; tokenize into a new --out")
        saved = json.loads(run_file.read_text())["model"]
        if saved["model_id"] != model_id:
            raise LatentFolderError(
                f"{config.out} holds latents of {saved['name']} {saved['model_id']} ({saved['model_folder']}), as {run_file} says, "
                f"not of {config.model_folder} ({model_id}); rerun with that model folder, or tokenize into a new --out"
            )
    described = {"name": model.registry_name, "model_id": model_id, "model_folder": str(Path(config.model_folder).resolve())}
    settings = {"batch_size": config.batch_size, "device": config.device, "workers": config.workers}
    record = {"model": described, "settings": settings, "inputs": list(config.inputs), "time": time.time()}
    write_text_atomically(run_file, json.dumps(record, indent=2))


@dataclass
class _InputState:
    """What one input shard has given so far: its clips' output shards, dropped clips, the first errors."""

    shards: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def drop(self, why: str, key: str, reason: str) -> None:
        self.dropped[why] += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{key}: {reason}")


class _Inline:
    """A pool of no workers: the clips are decoded in the main process when their result is asked for."""

    def schedule(self, function, args):
        return _Deferred(function, args)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


class _Deferred:
    def __init__(self, function, args):
        self.function, self.args = function, args

    def result(self):
        return self.function(*self.args)


class _LatentWriter:
    """Encodes decoded batches and writes their new clips to the sink, in input order."""

    def __init__(self, config: TokenizeConfig, model: nn.Module, model_id: str, sink: ShardSink, sources: dict[str, str], progress):
        self.config, self.model, self.model_id, self.sink, self.sources = config, model, model_id, sink, sources
        self.progress, self.states, self.dropped = progress, {}, 0

    def needs_decoding(self, shard: str, clips: list[ClipMembers]) -> bool:
        """Whether a batch holds a clip that is not yet in a finished shard."""
        return any(self.sources.get(clip.key) != shard or clip.key not in self.sink.shard_of for clip in clips)

    def commit_batch(self, shard: str, clips: list[ClipMembers], decoded: list[DecodedClip] | None, reason: str) -> None:
        state = self.states.setdefault(shard, _InputState())
        dropped_before = state.dropped.total()
        decoded = decoded or [DecodedClip(clip.key, {}, None, {}, reason) for clip in clips]
        stored = self.encode([clip for clip in decoded if clip.frames is not None]) if reason == "" else {}
        for clip in decoded:
            taken = clip.key in state.keys or self.sources.get(clip.key, shard) != shard
            state.keys.add(clip.key)
            if taken:
                state.drop("key_taken", clip.key, f"key taken by an earlier clip of {self.sources.get(clip.key, shard)}")
            elif clip.key in self.sink.shard_of:
                state.shards.append(self.sink.shard_of[clip.key])
            elif clip.frames is None:
                state.drop("undecodable", clip.key, clip.reason)
            elif isinstance(stored[clip.key], str):
                state.drop("unencodable", clip.key, stored[clip.key])
            else:
                state.shards.append(self.sink.write(self.latent_sample(shard, clip, *stored[clip.key])))
                self.sources[clip.key] = shard
        self.dropped += state.dropped.total() - dropped_before
        self.progress.update(self.progress.task_ids[0], clips=len(self.sources), dropped=self.dropped)

    def encode(self, clips: list[DecodedClip]) -> dict[str, tuple[np.ndarray, dict] | str]:
        """key -> (the stored array, the JSON `tokenizer` fields), or why the clip cannot be encoded.
        Clips of one frame size go through the model together, in batch order."""
        groups: dict[tuple, list[DecodedClip]] = {}
        for clip in clips:
            groups.setdefault(clip.frames.shape, []).append(clip)
        stored = {}
        for (frames, height, width, _), group in groups.items():
            try:
                fields = tokenizer_fields(self.model, self.model_id, self.config.model_folder, frames, height, width)
            except ValueError as error:  # the tokenizer's FrameShapeError: it cannot take this size
                stored |= {clip.key: str(error) for clip in group}
                continue
            batch = torch.stack([frames_tensor(clip.frames) for clip in group]).to(self.config.device)
            for clip, array in zip(group, encode_frames(self.model, batch)):
                finite = array.dtype.kind != "f" or np.isfinite(array).all()
                stored[clip.key] = (array, fields) if finite else "latents overflow float16"
        return stored

    def latent_sample(self, shard: str, clip: DecodedClip, array: np.ndarray, fields: dict) -> dict:
        source = {"source_shard": shard, "source_key": clip.key}
        meta = clip.meta | {"tokenizer": fields | source}
        return {"__key__": clip.key, **clip.members, f"{fields['payload']}.npy": np.ascontiguousarray(array), "json": meta}

    def commit_end(self, shard: str, reason: str) -> None:
        state = self.states.pop(shard, _InputState())
        line = {"path": shard, "status": "failed" if reason else "ok", "reason": reason, "clips": len(state.shards)}
        line |= {"shards": sorted(set(state.shards)), "dropped": {why: state.dropped[why] for why in DROPPED}, "errors": state.errors}
        self.sink.add_line(line, state.shards)
        self.progress.advance(self.progress.task_ids[0])


def _work(shards: list[str], batch_size: int):
    """(shard, clips, "") for each batch of each input shard, then (shard, None, why it broke off)."""
    for shard in shards:
        clips, reason = plan_shard(shard)
        for start in range(0, len(clips), batch_size):
            yield shard, clips[start : start + batch_size], ""
        yield shard, None, reason


def _tokenize(config: TokenizeConfig, model: nn.Module, model_id: str, shards: list[str]) -> list[dict]:
    manifest_path = config.out / "manifest.jsonl"
    done = {line["path"] for line in read_manifest(manifest_path)}
    todo = [shard for shard in shards if shard not in done]
    sources: dict[str, str] = {}  # output key -> the input shard it came from

    def remember(meta: dict) -> None:
        sources[meta["tokenizer"]["source_key"]] = meta["tokenizer"]["source_shard"]

    sink = ShardSink(config.out / "shards", manifest_path, max_count=config.shard_max_count, max_bytes=config.shard_max_bytes, on_meta=remember)
    pool = ProcessPool(max_workers=config.workers) if config.workers else _Inline()
    try:
        with _progress(len(shards), len(shards) - len(todo), config.progress) as progress, pool:
            writer = _LatentWriter(config, model, model_id, sink, sources, progress)
            _run_in_order(writer, pool, _work(todo, config.batch_size), window=2 * max(1, config.workers))
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return read_manifest(manifest_path)


def _run_in_order(writer: _LatentWriter, pool, work, window: int) -> None:
    """Keep `window` batches decoding ahead; commit them, and each input's end, in input order."""
    pending: deque = deque()
    while True:
        while len(pending) < window and (item := next(work, None)) is not None:
            shard, clips, _ = item
            decodes = clips is not None and writer.needs_decoding(shard, clips)
            pending.append((item, pool.schedule(in_worker, args=(read_clips, shard, clips)) if decodes else None))
        if not pending:
            return
        (shard, clips, reason), future = pending.popleft()
        if clips is None:
            writer.commit_end(shard, reason)
            continue
        decoded, failed = outcome(future, "decode", "") if future else (None, "")
        writer.commit_batch(shard, clips, decoded, failed)


def _progress(total: int, done: int, enabled: bool) -> Progress:
    progress = Progress(
        TextColumn("[bold]tokenize"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("shards  {task.fields[clips]} clips  {task.fields[dropped]} dropped"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )
    progress.add_task("tokenize", total=total, completed=done, clips=0, dropped=0)
    return progress
