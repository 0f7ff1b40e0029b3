"""webdataset tar shards, written under a temporary name and renamed into place when full.

A shard is `PREFIX{index:06d}.tar` with `key.json` and `key.mp4` (or `key.npy`) members: stock
`webdataset` and `tar` read it. Until it is renamed, the shard is `....tar.tmp`; a killed run leaves
at most that file, which the next run deletes.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import webdataset as wds


def _sync_rename(partial: Path, final: Path) -> None:
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, final)


@dataclass
class ShardWriter:
    """Writes samples into consecutive shards of at most `max_count` samples and `max_bytes` bytes.

    `on_finalize(name)` is called after each shard is renamed into place.
    """

    shard_dir: Path
    prefix: str = ""
    start_index: int = 0
    max_count: int = 1000
    max_bytes: int = 1 << 30
    on_finalize: Callable[[str], None] = lambda name: None
    _tar: wds.TarWriter | None = field(default=None, repr=False)
    _count: int = 0
    _bytes: int = 0

    def __post_init__(self) -> None:
        self.shard_dir = Path(self.shard_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self._index = self.start_index

    @property
    def current_name(self) -> str:
        return f"{self.prefix}{self._index:06d}.tar"

    @property
    def is_open(self) -> bool:
        return self._tar is not None

    def write(self, sample: dict) -> str:
        """Add one sample; return the name of the shard it lands in."""
        if self._tar is None:
            self._tar = wds.TarWriter(str(self.shard_dir / f"{self.current_name}.tmp"))
        self._tar.write(sample)
        self._count += 1
        self._bytes += sum(len(value) for key, value in sample.items() if isinstance(value, (bytes, str)) and key != "__key__")
        name = self.current_name
        if self._count >= self.max_count or self._bytes >= self.max_bytes:
            self.finalize()
        return name

    def abort(self) -> None:
        """Close the open shard without renaming it: it stays `.tmp` and the next run deletes it."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def finalize(self) -> None:
        """Close the open shard (if any) and rename it into place."""
        if self._tar is None:
            return
        self._tar.close()
        name = self.current_name
        _sync_rename(self.shard_dir / f"{name}.tmp", self.shard_dir / name)
        self._tar, self._count, self._bytes = None, 0, 0
        self._index += 1
        self.on_finalize(name)


@dataclass
class ShardContents:
    """What finished shards already hold: clip key -> shard name, and clip metadata in shard order."""

    shard_of: dict[str, str] = field(default_factory=dict)
    metas: list[dict] = field(default_factory=list)
    next_index: int = 0


def shard_names(shard_dir: Path, prefix: str = "", suffix: str = ".tar") -> list[str]:
    """Names of `prefix` shards (`PREFIX000000.tar`, ...), or of their unfinished `.tar.tmp` files."""
    pattern = re.compile(re.escape(prefix) + r"\d{6}" + re.escape(suffix))
    return sorted(p.name for p in Path(shard_dir).glob(f"{prefix}*{suffix}") if pattern.fullmatch(p.name))


def read_shard_contents(shard_dir: Path, prefix: str = "") -> ShardContents:
    """Scan finished shards of `prefix` (and delete its leftover `.tmp` shards)."""
    shard_dir = Path(shard_dir)
    contents = ShardContents()
    if not shard_dir.is_dir():
        return contents
    for leftover in shard_names(shard_dir, prefix, suffix=".tar.tmp"):
        (shard_dir / leftover).unlink()
    for name in shard_names(shard_dir, prefix):
        with tarfile.open(shard_dir / name) as tar:
            for member in tar:
                key, _, extension = member.name.partition(".")
                contents.shard_of[key] = name
                if extension == "json":
                    contents.metas.append(json.load(tar.extractfile(member)))
        contents.next_index = int(name[len(prefix) : -len(".tar")]) + 1
    return contents
