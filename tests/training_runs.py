"""Helpers for the training tests: run `reverie train` in its own process (so that it can be
killed or signalled) and read its metrics.csv."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "autoencoder" / "tiny.yaml"


def train_command(run_dir: Path, shards: Path, *overrides: str) -> list[str]:
    """`reverie train` of the tiny autoencoder config; deterministic on CPU."""
    base = [f"data.shards={shards}", f"run.dir={run_dir}", "trainer.log_every_n_steps=1", "trainer.deterministic=true"]
    return [sys.executable, "-m", "reverie.cli.main", "train", str(TINY), *base, *overrides]


def train_config_briefly(config: Path, run_dir: Path, *overrides: str, steps: int = 6) -> Path:
    """`reverie train CONFIG` for `steps` steps of batch 2 into run_dir, logging and checkpointing
    at the last step; fails with the run's output tails when it exits nonzero."""
    brief = [f"run.dir={run_dir}", "data.batch_size=2", f"trainer.max_steps={steps}", "trainer.log_every_n_steps=1", f"checkpoint.every_n_steps={steps}"]
    command = [sys.executable, "-m", "reverie.cli.main", "train", str(config), *overrides, *brief]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    return run_dir


def start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})


def metric_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen | None = None, timeout: float = 240) -> int:
    """Block until metrics.csv has reached `step`; return the step it shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = metric_rows(run_dir)
        if rows and int(rows[-1]["step"]) >= step:
            return int(rows[-1]["step"])
        if process is not None and process.poll() is not None:
            raise AssertionError(f"training exited with {process.returncode} before step {step}")
        time.sleep(0.05)
    raise AssertionError(f"training did not reach step {step} in {timeout} s")
