"""Samples into shards, with one manifest line per unit of work (an input file, an episode).

A unit's line is appended only once every shard holding its samples has been renamed into place,
and lines keep the order units were added. After a kill, the shards therefore hold a prefix of the
sample stream, the manifest names the units that are wholly in it, and `shard_of` tells the next
run which samples of a partly written unit are already there.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Callable

from reverie.shards.manifest import ManifestAppender
from reverie.shards.writer import ShardWriter, read_shard_contents


class ShardSink:
    """`on_meta` is handed the metadata of each sample already in finished shards (see
    `read_shard_contents`)."""

    def __init__(
        self,
        shard_dir: Path,
        manifest_path: Path,
        prefix: str = "",
        max_count: int = 1000,
        max_bytes: int = 1 << 30,
        on_meta: Callable[[dict], None] | None = None,
    ):
        contents = read_shard_contents(shard_dir, prefix, on_meta)
        self.shard_of: dict[str, str] = contents.shard_of
        self.writer = ShardWriter(shard_dir, prefix=prefix, start_index=contents.next_index, max_count=max_count, max_bytes=max_bytes)
        self.manifest = ManifestAppender(manifest_path)
        self._waiting: deque[tuple[dict, set[str], Callable[[], None] | None]] = deque()

    def write(self, sample: dict) -> str:
        """Write a sample unless its key is already in a finished shard; return its shard's name."""
        return self.shard_of.get(sample["__key__"]) or self.writer.write(sample)

    def add_line(self, line: dict, shards: list[str], on_written: Callable[[], None] | None = None) -> None:
        """Queue a manifest line for a unit whose samples went to `shards`; `on_written` runs once
        the line is on disk."""
        self._waiting.append((line, set(shards), on_written))
        self._flush()

    def close(self) -> None:
        self.writer.finalize()
        self._flush()
        self.manifest.close()

    def abort(self) -> None:
        """Stop without finishing the open shard (it stays `.tmp`, for the next run to delete)."""
        self.writer.abort()
        self.manifest.close()

    def _flush(self) -> None:
        open_shard = self.writer.current_name if self.writer.is_open else None
        while self._waiting and open_shard not in self._waiting[0][1]:
            line, _, on_written = self._waiting.popleft()
            self.manifest.append(line)
            if on_written:
                on_written()
