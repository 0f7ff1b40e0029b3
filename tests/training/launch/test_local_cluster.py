"""`reverie submit` against a real one-node SLURM cluster: a 2-task DDP job over gloo on CPU, and a
job that is signalled before its end, checkpoints, requeues itself and finishes from there."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from training_runs import TINY, metric_rows, wait_for_step


def submit(env: dict, run_dir: Path, shards: Path, *arguments: str) -> str:
    command = [sys.executable, "-m", "reverie.cli.main", "submit", str(TINY), "--gpus-per-node", "0", "--cpus-per-task", "1"]
    command += ["--time", "00:10:00", f"data.shards={shards}", f"run.dir={run_dir}", "trainer.log_every_n_steps=1", *arguments]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=run_dir.parent)
    return re.search(r"submitted job (\d+)", result.stdout).group(1)


def job_state(env: dict, job_id: str) -> tuple[str, int]:
    """(JobState, Restarts) from scontrol."""
    shown = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True, check=True).stdout
    return re.search(r"JobState=(\S+)", shown).group(1), int(re.search(r"Restarts=(\d+)", shown).group(1))


def wait_for_end(env: dict, job_id: str, timeout: float = 400) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, restarts = job_state(env, job_id)
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return state, restarts
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not end in {timeout} s (state {job_state(env, job_id)})")


def job_log(run_dir: Path, job_id: str) -> str:
    return (run_dir / "logs" / f"slurm-{job_id}.out").read_text()


def test_a_two_task_job_trains_with_ddp_over_gloo(slurm_cluster, clip_shards, tmp_path):
    run_dir = tmp_path / "ddp"
    job = submit(slurm_cluster, run_dir, clip_shards, "--tasks-per-node", "2", "trainer.strategy=ddp", "trainer.max_steps=6")
    state, _ = wait_for_end(slurm_cluster, job)
    assert state == "COMPLETED", job_log(run_dir, job)
    log = job_log(run_dir, job)
    assert "MEMBER: 1/2" in log and "MEMBER: 2/2" in log and "distributed_backend=gloo" in log
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 6
    (loader,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader["world_size"] == 2
    assert [int(row["step"]) for row in metric_rows(run_dir)] == list(range(1, 7))


def test_a_signalled_job_checkpoints_requeues_and_finishes_where_it_stopped(slurm_cluster, clip_shards, tmp_path):
    run_dir = tmp_path / "requeued"
    job = submit(slurm_cluster, run_dir, clip_shards, "trainer.max_steps=200", "checkpoint.every_n_steps=1000")
    at_signal = wait_for_step(run_dir, 10)
    subprocess.run(["scancel", "--signal=USR1", job], env=slurm_cluster, check=True)
    state, restarts = wait_for_end(slurm_cluster, job)
    log = job_log(run_dir, job)
    assert (state, restarts) == ("COMPLETED", 1), log
    stopped_at = int(re.search(r"stop signal: checkpointed step (\d+)", log).group(1))
    assert at_signal <= stopped_at < 200
    assert f"resuming {run_dir} from {run_dir}/checkpoints/step-{stopped_at:08d}.ckpt" in log
    assert "(restart 1)" in log
    assert [int(row["step"]) for row in metric_rows(run_dir)] == list(range(1, 201))
