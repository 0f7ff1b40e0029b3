"""`reverie submit`: render `slurm/train.sbatch` for a run and hand it to sbatch.

The script goes to `RUN_DIR/train.sbatch` and its logs to `RUN_DIR/logs/`. It runs `reverie train`
with the config and overrides given, plus the layout SLURM decides: `trainer.num_nodes`,
`trainer.devices` (tasks per node) and `run.dir`, so that a requeued job finds its checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reverie.training.launch.slurm import quote_command, quote_word, render, reverie_executable, submit, write_script
from reverie.training.config import load_config

REQUEUE_SIGNAL_SECONDS = 90  # USR1 this long before the end: time for one step and a checkpoint


@dataclass
class TrainJob:
    config: Path
    overrides: list[str] = field(default_factory=list)
    nodes: int = 1
    gpus_per_node: int = 1
    tasks_per_node: int | None = None  # default: one per GPU, or 1 without GPUs
    cpus_per_task: int = 8
    partition: str | None = None
    account: str | None = None
    time: str = "24:00:00"
    mem: str | None = None

    @property
    def tasks(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_node)


def job_overrides(job: TrainJob, run_dir: Path) -> list[str]:
    """The user's overrides, then the ones the job layout fixes (later ones win)."""
    layout = [f"trainer.num_nodes={job.nodes}", f"trainer.devices={job.tasks}", f"run.dir={run_dir}"]
    if job.gpus_per_node == 0:
        layout.append("trainer.accelerator=cpu")
    return [*job.overrides, *layout]


def render_train_script(job: TrainJob) -> tuple[str, Path]:
    """The sbatch script and the run folder it trains into."""
    config = load_config(job.config, job.overrides)  # fails here, not on the cluster, on a bad config
    run_dir = Path(config.run.dir).absolute()
    command = [str(reverie_executable()), "train", str(job.config.absolute()), *job_overrides(job, run_dir)]
    directives = dict(
        job_name=f"reverie-{config.run.name}",
        nodes=job.nodes,
        ntasks_per_node=job.tasks,
        gpus_per_node=job.gpus_per_node or None,
        cpus_per_task=job.cpus_per_task,
        mem=job.mem,
        partition=job.partition,
        account=job.account,
        time=job.time,
        signal=f"USR1@{REQUEUE_SIGNAL_SECONDS}",
        requeue=True,
        open_mode="append",
        output=str(run_dir / "logs" / "slurm-%j.out"),
    )
    workdir = quote_word("working directory", str(Path.cwd()))
    script = render("train.sbatch", directives=directives, workdir=workdir, command=quote_command(command))
    return script, run_dir


def submit_train_job(job: TrainJob, dry_run: bool = False) -> tuple[Path, str | None]:
    """Write RUN_DIR/train.sbatch; submit it unless `dry_run`. Returns (script path, job id)."""
    script, run_dir = render_train_script(job)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    path = write_script(script, run_dir / "train.sbatch")
    return path, None if dry_run else submit(path)
