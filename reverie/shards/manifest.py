"""`manifest.jsonl`: one line per input with `path`, `status` (ok / skipped / failed), `reason`,
`clips` and `shards`. Lines are appended and fsynced one by one; a line cut short by a kill is
dropped when the manifest is next opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATUSES = ("ok", "skipped", "failed")


def read_manifest(path: Path) -> list[dict]:
    """The complete lines of a manifest (rewriting it without a torn last line, if it has one)."""
    path = Path(path)
    if not path.exists():
        return []
    records, torn = [], False
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            torn = True
    if torn:
        write_manifest(path, records)
    return records


def write_manifest(path: Path, records: list[dict]) -> None:
    """Replace the manifest atomically."""
    partial = Path(f"{path}.tmp")
    partial.write_text("".join(json.dumps(record) + "\n" for record in records))
    os.replace(partial, path)


class ManifestAppender:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a")

    def append(self, record: dict) -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()
