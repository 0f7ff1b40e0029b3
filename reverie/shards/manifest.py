"""`manifest.jsonl`: one line per input with `path`, `status` (ok / skipped / failed), `reason`,
`clips` and `shards`. Lines are appended and fsynced one by one. A line cut short by a kill is
skipped by readers and dropped by the next writer, when it opens the manifest; readers never change
the file, since a live run may be appending to it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from reverie.shards.writer import fsync_folder, sync_rename

STATUSES = ("ok", "skipped", "failed")


def read_manifest(path: Path) -> list[dict]:
    """The complete lines of a manifest (a torn last line is left out, and left in the file)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_manifest(path: Path, records: list[dict]) -> None:
    """Replace the manifest atomically and durably (temporary name, fsync, rename, fsync the folder)."""
    partial = Path(f"{path}.tmp")
    partial.write_text("".join(json.dumps(record) + "\n" for record in records))
    sync_rename(partial, path)


def _ends_torn(path: Path) -> bool:
    """Whether the last line lacks its newline: an append that a kill cut short."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


class ManifestAppender:
    """Appends lines to a manifest, first rewriting it without a torn last line (so the next line
    starts on a line of its own). Only the run that holds the folder's lock opens one."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        if existed and _ends_torn(self.path):
            write_manifest(self.path, read_manifest(self.path))
        self._handle = open(self.path, "a")
        if not existed:
            fsync_folder(self.path.parent)

    def append(self, record: dict) -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()
