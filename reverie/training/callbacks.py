"""Trainer callbacks of the training core: `metrics.csv`, RNG state in checkpoints, the loader's
resume position, and checkpoints at the last step and on a stop signal."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn


class MetricsCSV(L.Callback):
    """One row per optimizer step in `RUN/metrics.csv`: step, every loss term, lr, samples/s.

    The loss terms are the `terms` the task's training step returns; those of an accumulated step's
    micro-batches are averaged. The file is only ever appended to, a row at a time: a resumed run
    first cuts off, in place, the rows past the step it resumed from (and a last row a kill cut
    short), so the file never holds a step twice and the rows it keeps are never rewritten.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._pending: dict[str, list[float]] = {}
        self._samples = 0
        self._since = time.perf_counter()
        self._columns: list[str] | None = None
        self._last_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = trainer.global_step
        if trainer.is_global_zero and self.path.exists():
            self._columns = keep_rows_through(self.path, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        for name, value in (outputs or {}).get("terms", {}).items():
            self._pending.setdefault(name, []).append(float(value))
        self._samples += len(batch["frames"]) if "frames" in batch else 0
        if trainer.global_step == self._last_step:  # a micro-batch of a step still accumulating
            return
        self._last_step = trainer.global_step
        if trainer.is_global_zero:
            elapsed = time.perf_counter() - self._since
            row = {"step": trainer.global_step, **{name: float(np.mean(values)) for name, values in self._pending.items()}}
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
            row["samples_per_s"] = self._samples * trainer.world_size / max(elapsed, 1e-9)
            self._write(row)
        self._pending, self._samples, self._since = {}, 0, time.perf_counter()

    def _write(self, row: dict) -> None:
        new_file = not self.path.exists() or self._columns is None
        self._columns = self._columns or list(row)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()


def keep_rows_through(path: Path, step: int) -> list[str] | None:
    """Cut the metrics file `path` after its last whole row of a step <= `step`, in place (one
    truncate); return its columns, or None when not even its header line is whole."""
    lines = path.read_bytes().splitlines(keepends=True)
    if not lines or not lines[0].endswith(b"\n"):
        os.truncate(path, 0)
        return None
    end = len(lines[0])
    for line in lines[1:]:  # rows are in step order; the step is the first column
        head = line.split(b",", 1)[0]
        if not line.endswith(b"\n") or not head.isdigit() or int(head) > step:
            break
        end += len(line)
    os.truncate(path, end)
    return next(csv.reader([lines[0].decode()]))


class RNGState(L.Callback):
    """Python, NumPy and torch RNG states in every checkpoint (as tensors and ints, so the
    checkpoint still loads with `weights_only=True`), restored on resume."""

    def state_dict(self) -> dict:
        version, mt_state, gauss = random.getstate()
        kind, keys, position, has_gauss, cached = np.random.get_state()
        return {
            "python": [version, list(mt_state), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict) -> None:
        version, mt_state, gauss = state["python"]
        random.setstate((version, tuple(mt_state), gauss))
        kind, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class LoaderPosition(L.Callback):
    """Advances the shard loader's resume point by the batches training actually starts on.

    The trainer fetches one batch ahead, so the loader cannot tell by itself which batches were
    trained on when a checkpoint is written. Its batches carry their stream position instead
    (`ClipLoader(record_on_yield=False)`), recorded here. Lightning saves and restores the loader's
    `state_dict` with each checkpoint (the loader is `Stateful`).
    """

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict, batch_index: int) -> None:
        trainer.datamodule.loader.consumed(batch)


class StepCheckpoints(ModelCheckpoint):
    """Periodic checkpoints, plus one at the last step and one when the job is told to stop.

    SLURM sends USR1 some time before a job's limit or a pre-emption (`--signal=USR1@90`). The
    handler only raises a flag; at the end of the current step every rank agrees on it, the
    checkpoint is written (all ranks take part), rank 0 runs `scontrol requeue $SLURM_JOB_ID`, and
    training stops. The requeued job runs the same command and resumes from `last.ckpt`. Outside
    SLURM the signal just checkpoints and stops. (Lightning's own handler writes the checkpoint
    from inside the signal handler, in the middle of a step; this one waits for the step to end.)
    """

    def __init__(self, *args, stop_signal: signal.Signals = signal.SIGUSR1, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_signal = stop_signal
        self._signalled = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        signal.signal(self.stop_signal, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self._signalled = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_index)
        stopping = trainer.strategy.reduce_boolean_decision(self._signalled, all=False)
        finished = trainer.global_step >= trainer.max_steps > 0
        if (stopping or finished) and self._last_global_step_saved < trainer.global_step:
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
        if stopping:
            rank_zero_info(f"stop signal: checkpointed step {trainer.global_step}, stopping")
            if trainer.is_global_zero and os.environ.get("SLURM_JOB_ID"):
                requeue_slurm_job(os.environ["SLURM_JOB_ID"])
            trainer.should_stop = True


def requeue_slurm_job(job_id: str) -> None:
    """Put the running job back in the queue; SLURM restarts it with the same script."""
    result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    if result.returncode:
        rank_zero_warn(f"scontrol requeue {job_id} failed: {result.stderr.strip()}")
    else:
        rank_zero_info(f"requeued SLURM job {job_id}")
