"""What the benchmark scripts share: where results go, atomic and shared JSON result files, inputs
generated once, the machine's description, and the rows of the printed bar charts.

- `write_json(path, payload)`: write a result file to a temporary name and rename it into place,
  so a reader never sees half a file.
- `update_results(path, change)`: apply `change` to the stored object (`{"runs": {}}` when the
  file does not exist yet) under an exclusive lock on the file's folder, so that separate
  benchmark processes can each merge their runs into one file; returns the object as written.
- `generated_once(folder, make)`: build reference inputs (test videos) into `folder` the first
  time, in a `.partial` folder renamed into place, so a killed run leaves none half-made.
- `train_and_export(config, out, slug)`: a model trained through `reverie train` from a config dict
  and exported as a model folder, once (a rerun finds the folder and the recorded training time).

The scripts in `benchmarks/agents/` put this folder on `sys.path` to import it.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "benchmarks" / ".data"  # generated inputs, kept between runs (git-ignored)


def write_json(path: str | Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(partial, path)
    return path


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


def generated_once(folder: Path, make: Callable[[Path], None], what: str) -> Path:
    """`folder`, made by `make(partial_folder)` the first time it is asked for."""
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    print(f"generating {what} into {folder} (once) ...", flush=True)
    make(partial)
    partial.rename(folder)
    return folder


def train_and_export(config: dict, out: Path, slug: str) -> tuple[Path, float]:
    """Train `config` (its run.dir set to out/runs/slug) through `reverie train`, export the trained
    weights (not the EMA) to out/models/slug; the model folder and the training wall time."""
    run_dir, folder = out / "runs" / slug, out / "models" / slug
    timing = run_dir.with_name(f"{slug}.seconds")
    if (folder / "model.safetensors").exists():
        return folder, float(timing.read_text())
    path = out / "configs" / f"{slug}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = config | {"run": {"name": slug, "dir": str(run_dir)}}
    path.write_text(json.dumps(config, indent=1))  # YAML is a superset of JSON
    started = time.perf_counter()
    reverie = [sys.executable, "-m", "reverie.cli.main"]
    subprocess.run([*reverie, "train", str(path)], check=True)
    seconds = float(timing.read_text()) if timing.exists() else time.perf_counter() - started  # a finished run trains no further
    timing.write_text(f"{seconds}")
    subprocess.run([*reverie, "export", str(run_dir), "--out", str(folder), "--no-ema"], check=True)
    return folder, seconds


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "cores": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


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
