"""`reverie ingest`: raw video in, webdataset shards and a manifest out; resumable, fault-isolated.

Workers (a pebble process pool) probe and cut each input into a spool tar. The main process
commits finished inputs strictly in input order: it drops near-duplicate clips, appends the rest to
the shards, and writes an input's manifest line once all its clips sit in shards that were renamed
into place. A killed run therefore leaves a prefix of the clip stream; the next run skips the
inputs in the manifest, reuses finished spools, and skips clip keys already in shards, so the final
set of clips equals an uninterrupted run's.

A run holds the folder's lock (an array task: its slice's lock) while it writes, so a second copy of
the command stops before it changes any file. The clip settings are saved in `ingest.json`; a
resumed run whose settings would change the clips (`CONTENT_SETTINGS`) is refused, while budget
and layout (workers, timeouts, caps, shard size, progress) may change between runs. Failed inputs
stay failed unless the run is asked to `retry_failed`. Each input's decode gets at most
`max_timeout` seconds and a frame of at most `max_pixels`, whatever the file declares.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import shutil
import tarfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from pebble import ProcessPool

from reverie.pipelines.clips import SPEC_FLAGS, ClipSpec, ingest_file, input_key
from reverie.pipelines.errors import SettingsChangedError, check_setting
from reverie.pipelines.isolation import in_worker, outcome
from reverie.pipelines.filters import HASH_BITS, DedupIndex
from reverie.pipelines.probe import VideoInfo, probe
from reverie.pipelines.progress import IngestProgress
from reverie.shards.folder_lock import LOCK_NAME, FolderLock
from reverie.shards.manifest import read_manifest, write_manifest
from reverie.shards.sink import ShardSink
from reverie.shards.writer import sync_rename

MAX_PIXELS_8K = 7680 * 4320

# The settings that change what clips an input gives; a resumed run must keep them (see
# `check_run_settings`). The others are budget and layout.
CONTENT_SETTINGS = {**SPEC_FLAGS, "dedup": "--dedup", "dedup_distance": "--dedup-distance", "num_slices": "--num-slices"}


@dataclass(frozen=True)
class IngestConfig:
    inputs: list[str]
    out: Path
    spec: ClipSpec = field(default_factory=ClipSpec)
    workers: int = 1
    shard_max_count: int = 1000
    shard_max_bytes: int = 1 << 30
    dedup: bool = True
    dedup_distance: int = 8  # of filters.HASH_BITS bits
    probe_timeout: float = 60.0
    decode_timeout: float = 120.0  # seconds, plus timeout_per_second for each second of video ...
    timeout_per_second: float = 10.0
    max_timeout: float = 600.0  # ... and never more than this, whatever duration a file declares
    max_pixels: int = MAX_PIXELS_8K  # a file that declares larger frames fails without being decoded
    slice_index: int | None = None
    num_slices: int = 1
    progress: bool = True
    retry_failed: bool = False  # decode the inputs that the manifest says failed again

    def __post_init__(self) -> None:
        positive_seconds = "must be a positive number of seconds"
        check_setting(self.workers >= 1, "--workers", self.workers, "must be at least 1")
        check_setting(self.shard_max_count >= 1, "--shard-size", self.shard_max_count, "must be at least 1")
        check_setting(self.shard_max_bytes >= 1, "--shard-bytes", self.shard_max_bytes, "must be at least 1")
        check_setting(0 <= self.dedup_distance <= HASH_BITS, "--dedup-distance", self.dedup_distance, f"must be within 0..{HASH_BITS}")
        check_setting(0 < self.probe_timeout < math.inf, "--probe-timeout", self.probe_timeout, positive_seconds)
        check_setting(0 < self.decode_timeout < math.inf, "--timeout", self.decode_timeout, positive_seconds)
        check_setting(0 <= self.timeout_per_second < math.inf, "--timeout-per-second", self.timeout_per_second, "must be 0 or more seconds")
        check_setting(0 < self.max_timeout < math.inf, "--max-timeout", self.max_timeout, positive_seconds)
        check_setting(
            self.decode_timeout <= self.max_timeout, "--timeout", self.decode_timeout, f"must not exceed --max-timeout {self.max_timeout:g}"
        )
        check_setting(self.max_pixels >= 1, "--max-pixels", self.max_pixels, "must be at least 1")
        check_setting(self.num_slices >= 1, "--num-slices", self.num_slices, "must be at least 1")
        if self.slice_index is not None:
            within = f"must be within 0..{self.num_slices - 1} (--num-slices {self.num_slices})"
            check_setting(0 <= self.slice_index < self.num_slices, "--slice", self.slice_index, within)

    @property
    def slice_inputs(self) -> list[str]:
        if self.slice_index is None:
            return list(self.inputs)
        return list(self.inputs[self.slice_index :: self.num_slices])

    @property
    def shard_prefix(self) -> str:
        return "" if self.slice_index is None else f"s{self.slice_index:04d}-"

    @property
    def manifest_path(self) -> Path:
        if self.slice_index is None:
            return self.out / "manifest.jsonl"
        return self.out / "manifests" / f"slice-{self.slice_index:04d}.jsonl"

    @property
    def spool_dir(self) -> Path:
        return self.out / ".spool" / (self.shard_prefix.rstrip("-") or "local")

    @property
    def lock_name(self) -> str:
        """The folder's lock, or an array task's own: the slices write their own files into one DIR."""
        return LOCK_NAME if self.slice_index is None else f"{LOCK_NAME}-{self.shard_prefix.rstrip('-')}"


def cut_timeout(config: IngestConfig, declared_duration: float) -> float:
    """Seconds an input may take to decode: `decode_timeout` plus `timeout_per_second` for each
    second the file declares, capped at `max_timeout` (a file may declare any duration, or none)."""
    if not math.isfinite(declared_duration):
        return config.max_timeout
    return min(config.max_timeout, config.decode_timeout + config.timeout_per_second * max(0.0, declared_duration))


def _failed(path: str, reason: str) -> dict:
    return {"path": path, "key": input_key(path), "status": "failed", "reason": reason, "clips": []}


def _manifest_line(record: dict, shards: list[str]) -> dict:
    line = {key: record[key] for key in ("path", "status", "reason")}
    line |= {"clips": len(shards), "shards": sorted(set(shards)), "key": record["key"]}
    if "info" in record:
        line |= {"duration": record["info"]["duration"], "decoded_frames": record.get("frames", 0)}
    if "dropped" in record:
        line["dropped"] = record["dropped"]
    return line


class _Committer:
    """Appends finished inputs to the shards in input order, dropping near-duplicate clips."""

    def __init__(self, config: IngestConfig, progress: IngestProgress):
        self.config, self.progress = config, progress
        self.dedup = DedupIndex()
        self.sink = ShardSink(
            config.out / "shards",
            config.manifest_path,
            prefix=config.shard_prefix,
            max_count=config.shard_max_count,
            max_bytes=config.shard_max_bytes,
            on_meta=lambda meta: self.dedup.add(meta["scores"]["phash"]),  # a resume keeps the hashes only
        )

    def commit(self, record: dict) -> None:
        shards: list[str] = []
        samples = _spool_samples(self.config.spool_dir / f"{record['key']}.tar") if record["clips"] else iter(())
        record.setdefault("dropped", {})["duplicate"] = 0
        for meta, (sample_key, sample) in zip(record["clips"], samples):
            assert sample_key == meta["key"], f"spool of {record['path']} out of order at {sample_key}"
            if meta["key"] in self.sink.shard_of:
                shards.append(self.sink.shard_of[meta["key"]])
                continue
            if self.config.dedup:
                meta["scores"]["dup_distance"] = self.dedup.nearest(meta["scores"]["phash"])
                if meta["scores"]["dup_distance"] <= self.config.dedup_distance:
                    record["dropped"]["duplicate"] += 1
                    continue
            payload_ext, payload = next((k, v) for k, v in sample.items() if k != "json")
            shards.append(self.sink.write({"__key__": meta["key"], payload_ext: payload, "json": meta}))
            self.dedup.add(meta["scores"]["phash"])
        self.progress.committed(record, clips=len(shards))
        self.sink.add_line(_manifest_line(record, shards), shards, on_written=lambda: self._drop_spool(record["key"]))

    def _drop_spool(self, key: str) -> None:
        for leftover in (f"{key}.tar", f"{key}.json"):
            (self.config.spool_dir / leftover).unlink(missing_ok=True)


def _spool_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each clip of a spool tar, streamed in the order written."""
    key, sample = None, {}
    with tarfile.open(path) as tar:
        for member in tar:
            member_key, _, extension = member.name.partition(".")
            if member_key != key and sample:
                yield key, sample
                sample = {}
            key = member_key
            sample[extension] = tar.extractfile(member).read()
    if sample:
        yield key, sample


def _save_record(spool_dir: Path, record: dict) -> None:
    partial = spool_dir / f"{record['key']}.json.tmp"
    partial.write_text(json.dumps(record))
    sync_rename(partial, spool_dir / f"{record['key']}.json")


def _load_record(spool_dir: Path, path: str) -> dict | None:
    """The record a killed run left for `path`, or None to decode it again: when there is none, or
    its record or spool tar is empty, cut short or unreadable (the broken files are deleted)."""
    key = input_key(path)
    saved, spool = spool_dir / f"{key}.json", spool_dir / f"{key}.tar"
    if not saved.exists():
        return None
    try:
        record = json.loads(saved.read_text())
        usable = not record["clips"] or _spool_holds(spool, record["clips"])
    except (OSError, ValueError, KeyError, TypeError, tarfile.TarError):  # ValueError: JSON or text cut short
        usable = False
    if not usable:
        saved.unlink(missing_ok=True)
        spool.unlink(missing_ok=True)
        return None
    return record


def _spool_holds(spool: Path, clips: list[dict]) -> bool:
    """Whether the spool tar holds each clip's two members, in order and whole."""
    expected = [f"{meta['key']}.{extension}" for meta in clips for extension in sorted(("json", meta["format"]))]
    with tarfile.open(spool) as tar:
        members = tar.getmembers()
    return [member.name for member in members] == expected and members[-1].offset_data + members[-1].size <= spool.stat().st_size


class _Task:
    """One input moving through probe -> cut; `record` is set when it is finished."""

    def __init__(self, path: str, pool: ProcessPool, config: IngestConfig):
        self.path, self.pool, self.config = path, pool, config
        self.record = _load_record(config.spool_dir, path)
        if self.record and config.retry_failed and self.record["status"] == "failed":
            self.record = None
        self.stage = "done" if self.record else "probe"
        self.future = None if self.record else pool.schedule(in_worker, (probe, path), timeout=config.probe_timeout)

    def advance(self) -> None:
        if self.record or not self.future.done():
            return
        result, reason = outcome(self.future, self.stage, self._timeout_said())
        if reason:
            self.record = _failed(self.path, reason)
        elif self.stage == "decode":
            self.record = result
        elif result.width * result.height > self.config.max_pixels:
            self.record = _failed(self.path, _over_pixel_cap(result, self.config.max_pixels))
        else:
            self._schedule_cut(result)
            return
        _save_record(self.config.spool_dir, self.record)

    def _timeout_said(self) -> str:
        if self.stage == "probe":
            return f"{self.config.probe_timeout:.0f} s"
        capped = self._cut_timeout == self.config.max_timeout
        return f"{self._cut_timeout:.0f} s" + (" (--max-timeout)" if capped else "")

    def _schedule_cut(self, info: VideoInfo) -> None:
        self.stage = "decode"
        self._cut_timeout = cut_timeout(self.config, info.duration)
        args = (self.path, self.config.spec, str(self.config.spool_dir), info)
        self.future = self.pool.schedule(in_worker, (ingest_file, *args), timeout=self._cut_timeout)


def _over_pixel_cap(info: VideoInfo, max_pixels: int) -> str:
    pixels = info.width * info.height
    return f"frame size {info.width}x{info.height} is over --max-pixels {max_pixels} ({pixels} pixels); not decoded"


def _run_pool(config: IngestConfig, todo: list[str], committer: _Committer) -> None:
    """Keep a window of inputs in the pool; commit them as they finish, in input order."""
    queue, tasks = deque(todo), deque()
    window = 4 * max(1, config.workers)
    with ProcessPool(max_workers=max(1, config.workers)) as pool:
        while queue or tasks:
            while queue and len(tasks) < window:
                tasks.append(_Task(queue.popleft(), pool, config))
            for task in tasks:
                task.advance()
            while tasks and tasks[0].record is not None:
                committer.commit(tasks.popleft().record)
            running = [task.future for task in tasks if task.record is None]
            if running:
                concurrent.futures.wait(running, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)


def run_ingest(config: IngestConfig) -> list[dict]:
    """Ingest `config.slice_inputs`; return the manifest lines of this slice (old and new).

    Raises `FolderLockedError` when another process writes the same files, and
    `SettingsChangedError` when the folder holds clips made with other clip settings; either
    before any file is changed.
    """
    with FolderLock(config.out, config.lock_name):
        if config.slice_index is None:
            save_run_config(config)
        else:
            check_run_settings(config)  # the array's settings are the submission's, in ingest.json
        return _ingest(config)


def _ingest(config: IngestConfig) -> list[dict]:
    config.spool_dir.mkdir(parents=True, exist_ok=True)
    for leftover in [*config.spool_dir.glob("*.partial"), *config.spool_dir.glob("*.tmp")]:
        leftover.unlink()
    if config.retry_failed:
        _drop_failed_lines(config.manifest_path)
    done = {line["path"] for line in read_manifest(config.manifest_path)}
    todo = [path for path in config.slice_inputs if path not in done]
    with IngestProgress(total=len(config.slice_inputs), done=len(done), enabled=config.progress) as progress:
        committer = _Committer(config, progress)
        try:
            _run_pool(config, todo, committer)
        except BaseException:
            committer.sink.abort()
            raise
        committer.sink.close()
    shutil.rmtree(config.spool_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # still holds another slice's spool
        config.spool_dir.parent.rmdir()
    return read_manifest(config.manifest_path)


def _drop_failed_lines(manifest_path: Path) -> None:
    """Forget the failed inputs, so that they are decoded again (the manifest is replaced atomically)."""
    lines = read_manifest(manifest_path)
    kept = [line for line in lines if line["status"] != "failed"]
    if len(kept) < len(lines):
        write_manifest(manifest_path, kept)


def _settings(config: IngestConfig) -> dict:
    return {key: value for key, value in asdict(config).items() if key not in ("inputs", "out")}


def _content(settings: dict) -> dict:
    """The `CONTENT_SETTINGS` of saved settings (`spec` nested, as `ingest.json` has them)."""
    flat = settings["spec"] | {key: value for key, value in settings.items() if key != "spec"}
    return {key: flat[key] for key in CONTENT_SETTINGS if key in flat}


def _holds_output(out: Path) -> bool:
    """Whether `out` holds clips or manifest lines yet, not only a `--slurm` submission's files."""
    patterns = ("manifest.jsonl", "manifests/*.jsonl", "shards/*.tar", "shards/*.tar.tmp", ".spool/*/*")
    return any(next(out.glob(pattern), None) for pattern in patterns)


def check_run_settings(config: IngestConfig) -> None:
    """Raise `SettingsChangedError` if `config.out` holds output made with other `CONTENT_SETTINGS`
    (as its `ingest.json` says): resuming would mix clips of two settings in one dataset."""
    saved_file = config.out / "ingest.json"
    if not saved_file.exists() or not _holds_output(config.out):
        return
    saved = _content(json.loads(saved_file.read_text())["settings"])
    current = _content(_settings(config))
    changes = {CONTENT_SETTINGS[key]: (value, saved[key]) for key, value in current.items() if key in saved and value != saved[key]}
    if changes:
        raise SettingsChangedError(config.out, saved_file, changes)


def save_run_config(config: IngestConfig) -> None:
    """Record the settings and the full input list next to the shards (used by `--merge` and by the
    check of a resumed run's settings); refuse settings that differ from the folder's
    (`check_run_settings`)."""
    check_run_settings(config)
    config.out.mkdir(parents=True, exist_ok=True)
    partial = config.out / "ingest.json.tmp"
    partial.write_text(json.dumps({"settings": _settings(config), "inputs": config.inputs, "time": time.time()}, indent=2, default=str))
    sync_rename(partial, config.out / "ingest.json")
