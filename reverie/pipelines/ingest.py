"""`reverie ingest`: raw video in, webdataset shards and a manifest out; resumable, fault-isolated.

Workers (a pebble process pool) probe and cut each input into a spool tar. The main process
commits finished inputs strictly in input order: it drops near-duplicate clips, appends the rest to
the shards, and writes an input's manifest line once all its clips sit in shards that were renamed
into place. A killed run therefore leaves a prefix of the clip stream; the next run skips the
inputs in the manifest, reuses finished spools, and skips clip keys already in shards, so the final
set of clips equals an uninterrupted run's.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import tarfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from pebble import ProcessExpired, ProcessPool

from reverie.pipelines.clips import ClipSpec, ingest_file, input_key
from reverie.pipelines.errors import VideoDecodeError
from reverie.pipelines.filters import DedupIndex
from reverie.shards.manifest import read_manifest
from reverie.pipelines.probe import probe
from reverie.pipelines.progress import IngestProgress
from reverie.shards.sink import ShardSink


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
    decode_timeout: float = 120.0  # seconds, plus timeout_per_second for each second of video
    timeout_per_second: float = 10.0
    slice_index: int | None = None
    num_slices: int = 1
    progress: bool = True

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
        self.sink = ShardSink(
            config.out / "shards",
            config.manifest_path,
            prefix=config.shard_prefix,
            max_count=config.shard_max_count,
            max_bytes=config.shard_max_bytes,
        )
        self.dedup = DedupIndex()
        for meta in self.sink.existing_metas:
            self.dedup.add(meta["scores"]["phash"])

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
    os.replace(partial, spool_dir / f"{record['key']}.json")


def _load_record(spool_dir: Path, path: str) -> dict | None:
    saved = spool_dir / f"{input_key(path)}.json"
    if not saved.exists():
        return None
    record = json.loads(saved.read_text())
    if record["clips"] and not (spool_dir / f"{record['key']}.tar").exists():
        return None
    return record


def _in_worker(function, *args):
    """Run `function` in a pool worker; any error comes back as a `VideoDecodeError` that pickles."""
    try:
        return function(*args)
    except VideoDecodeError:
        raise
    except Exception as error:  # a library error on one input must cost that input only
        raise VideoDecodeError(args[0], f"{type(error).__name__}: {error}") from None


class _Task:
    """One input moving through probe -> cut; `record` is set when it is finished."""

    def __init__(self, path: str, pool: ProcessPool, config: IngestConfig):
        self.path, self.pool, self.config = path, pool, config
        self.record = _load_record(config.spool_dir, path)
        self.stage = "done" if self.record else "probe"
        self.future = None if self.record else pool.schedule(_in_worker, (probe, path), timeout=config.probe_timeout)

    def advance(self) -> None:
        if self.record or not self.future.done():
            return
        try:
            result = self.future.result()
        except VideoDecodeError as error:
            self.record = _failed(self.path, error.reason)
        except concurrent.futures.TimeoutError:
            self.record = _failed(self.path, f"{self.stage} timed out after {self.future_timeout:.0f} s")
        except ProcessExpired as error:
            self.record = _failed(self.path, f"decoder process crashed during {self.stage} (exit code {error.exitcode})")
        else:
            if self.stage == "probe":
                self._schedule_cut(result)
                return
            self.record = result
        _save_record(self.config.spool_dir, self.record)

    @property
    def future_timeout(self) -> float:
        return self.config.probe_timeout if self.stage == "probe" else self._cut_timeout

    def _schedule_cut(self, info) -> None:
        self.stage = "decode"
        self._cut_timeout = self.config.decode_timeout + self.config.timeout_per_second * info.duration
        args = (self.path, self.config.spec, str(self.config.spool_dir), info)
        self.future = self.pool.schedule(_in_worker, (ingest_file, *args), timeout=self._cut_timeout)


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
    """Ingest `config.slice_inputs`; return the manifest lines of this slice (old and new)."""
    config.out.mkdir(parents=True, exist_ok=True)
    config.spool_dir.mkdir(parents=True, exist_ok=True)
    for leftover in config.spool_dir.glob("*.partial"):
        leftover.unlink()
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
    if not any(config.spool_dir.parent.iterdir()):
        config.spool_dir.parent.rmdir()
    return read_manifest(config.manifest_path)


def save_run_config(config: IngestConfig) -> None:
    """Record the settings and the full input list next to the shards (used by `--merge`)."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("inputs", "out")}
    settings["spec"] = asdict(config.spec)
    config.out.mkdir(parents=True, exist_ok=True)
    partial = config.out / "ingest.json.tmp"
    partial.write_text(json.dumps({"settings": settings, "inputs": config.inputs, "time": time.time()}, indent=2, default=str))
    os.replace(partial, config.out / "ingest.json")
