"""Submit a training run to SLURM: `reverie submit CONFIG --nodes N --gpus-per-node G [key=value ...]`.

Renders `slurm/train.sbatch` into the run folder and submits it with sbatch; `--dry-run` writes and
prints it only. The job requeues itself when SLURM signals the end of its time or a pre-emption.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reverie.training.launch.train_job import TrainJob, submit_train_job


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=1, help="0 trains on CPUs")
    parser.add_argument("--tasks-per-node", type=int, help="processes per node (default: one per GPU, 1 without GPUs)")
    parser.add_argument("--cpus-per-task", type=int, default=8)
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--time", default="24:00:00", help="time limit, HH:MM:SS or D-HH:MM:SS")
    parser.add_argument("--mem", help="memory per node, e.g. 64G")
    parser.add_argument("--dry-run", action="store_true", help="write and print the script, do not submit")


def run(args: argparse.Namespace) -> int:
    job = TrainJob(
        config=args.config,
        overrides=args.overrides,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        tasks_per_node=args.tasks_per_node,
        cpus_per_task=args.cpus_per_task,
        partition=args.partition,
        account=args.account,
        time=args.time,
        mem=args.mem,
    )
    try:
        path, job_id = submit_train_job(job, dry_run=args.dry_run)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"reverie submit: {error}", file=sys.stderr)
        return 2
    if job_id is None:
        print(path.read_text(), end="")
        print(f"# wrote {path}; not submitted (--dry-run)")
    else:
        print(f"submitted job {job_id}: {path}\nwatch: squeue -j {job_id}; tail -f {path.parent / 'logs'}/slurm-{job_id}.out")
    return 0
