"""A JSON results file that several benchmark processes add runs to.

`update_results(path, change)` applies `change` to the stored object (`{"runs": {}}` when the file
does not exist yet) under an exclusive lock on the file's folder, so separate processes can each
merge their runs, and writes it to a temporary name renamed into place, so a reader never sees half
a file. It returns the object as written.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Callable


def update_results(path: str | Path, change: Callable[[dict], None]) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        stored = json.loads(path.read_text()) if path.exists() else {"runs": {}}
        change(stored)
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(stored, indent=1) + "\n")
        os.replace(partial, path)
    finally:
        os.close(folder)
    return stored


def bar_chart_row(label: str, curves: list[list[float]], index: int, low: float, high: float, width: int) -> str:
    """One printed row of a text bar chart: `label`, then each curve's value at `index` with a bar of
    up to `width` marks scaled from `low` to `high` (blank where a curve has ended)."""
    cells = []
    for curve in curves:
        if index >= len(curve):
            cells.append(" " * (width + 9))
            continue
        bar = "#" * round(width * (curve[index] - low) / max(high - low, 1e-9))
        cells.append(f"{curve[index]:8.1f} {bar:<{width}s}")
    return label + "".join(cells)
