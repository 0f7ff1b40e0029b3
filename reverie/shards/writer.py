"""webdataset tar shards, written under a temporary name and renamed into place when full.

A shard is `PREFIX{index:06d}.tar` with `key.json` and `key.mp4` (or `key.npy`) members: stock
`webdataset` and `tar` read it. Until it is renamed, the shard is `....tar.tmp`; a killed run leaves
at most that file, which the next run deletes. `sync_rename` fsyncs the file, renames it and fsyncs
its folder, so a shard that is renamed stays renamed and whole through a power cut.

`TarWriter` writes the members itself rather than through `webdataset.TarWriter`: importing
webdataset imports torch, which costs every `reverie ingest` run over a second of start-up.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


def _member_bytes(name: str, value) -> bytes | bytearray | memoryview:
    """A sample value as the bytes of tar member `name`, encoded as webdataset's writer does:
    bytes as they are, text as UTF-8, `.json` values as JSON, `.npy` arrays in NumPy's format."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    extension = name.rpartition(".")[2]
    if extension == "json":
        return json.dumps(value).encode("utf-8")
    if extension == "npy" and isinstance(value, np.ndarray):
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, value)
        return buffer.getvalue()
    raise TypeError(f"{name}: cannot store a {type(value).__name__} as .{extension}")


class TarWriter:
    """Appends samples (`{"__key__": key, extension: value, ...}`) to a new tar file as members
    `key.extension`, in sorted order of extension, as webdataset does."""

    def __init__(self, path: str | Path):
        self._file = open(path, "wb")

    def write(self, sample: dict) -> int:
        """Add one sample; return the bytes of its members' contents."""
        names = {f"{sample['__key__']}.{extension}": extension for extension in sorted(sample) if not extension.startswith("_")}
        members = {name: memoryview(_member_bytes(name, sample[extension])) for name, extension in names.items()}
        for name, payload in members.items():
            self._add(name, payload)
        return sum(payload.nbytes for payload in members.values())

    def close(self) -> None:
        """End the archive as `tarfile` does: two zero blocks, then zeros up to a whole record."""
        self._file.write(bytes(2 * tarfile.BLOCKSIZE))
        self._file.write(bytes(-self._file.tell() % tarfile.RECORDSIZE))
        self._file.close()

    def __enter__(self) -> "TarWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _add(self, name: str, payload: memoryview) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = payload.nbytes, time.time(), 0o444
        self._file.write(info.tobuf(tarfile.USTAR_FORMAT))
        self._file.write(payload)
        self._file.write(bytes(-payload.nbytes % tarfile.BLOCKSIZE))


def fsync_folder(folder: Path) -> None:
    """Make the names in `folder` (a rename, a new file) durable, not only the files' bytes."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_text_atomically(path: Path, text: str, mode: int = 0o666) -> Path:
    """Write `text` to `path` through a temporary file of a name of its own in the same folder,
    fsynced and renamed into place (the folder fsynced too): a reader, or a second writer, sees
    the old file or the new one, never a part. `mode` is before the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with open(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def sync_rename(partial: Path, final: Path) -> None:
    """Rename a finished file into place durably: fsync its bytes, rename, fsync the folder."""
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, final)
    fsync_folder(Path(final).parent)


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
    _tar: TarWriter | None = field(default=None, repr=False)
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
            self._tar = TarWriter(self.shard_dir / f"{self.current_name}.tmp")
        self._bytes += self._tar.write(sample)
        self._count += 1
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
        sync_rename(self.shard_dir / f"{name}.tmp", self.shard_dir / name)
        self._tar, self._count, self._bytes = None, 0, 0
        self._index += 1
        self.on_finalize(name)


@dataclass
class ShardContents:
    """What finished shards already hold: sample key -> shard name, and the next shard's index."""

    shard_of: dict[str, str] = field(default_factory=dict)
    next_index: int = 0


def shard_names(shard_dir: Path, prefix: str = "", suffix: str = ".tar") -> list[str]:
    """Names of `prefix` shards (`PREFIX000000.tar`, ...), or of their unfinished `.tar.tmp` files."""
    pattern = re.compile(re.escape(prefix) + r"\d{6}" + re.escape(suffix))
    return sorted(p.name for p in Path(shard_dir).glob(f"{prefix}*{suffix}") if pattern.fullmatch(p.name))


def read_shard_contents(shard_dir: Path, prefix: str = "", on_meta: Callable[[dict], None] | None = None) -> ShardContents:
    """Scan finished shards of `prefix` (and delete its leftover `.tmp` shards).

    `on_meta` is handed each sample's `.json` metadata in shard order and the metadata is not kept,
    so that resuming a run of millions of clips holds what it needs (a hash each), not every clip's
    metadata. Without `on_meta` the `.json` members are not read at all.
    """
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
                if on_meta is not None and extension == "json":
                    on_meta(json.load(tar.extractfile(member)))
        contents.next_index = int(name[len(prefix) : -len(".tar")]) + 1
    return contents
