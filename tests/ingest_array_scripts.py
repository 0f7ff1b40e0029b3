"""Helpers for the tests of `reverie ingest --slurm` scripts and the runs they describe: a dry run
that writes the script, and readers of its `#SBATCH` lines and array task commands."""

import shlex
import sys
from pathlib import Path

from reverie.cli.main import main as reverie
from reverie.shards.manifest import read_manifest

OUT_NAME = "my clips $HOME"  # a space and a `$`: the script must not split or expand it
PARTITION = "gpu;rm -rf"
ACCOUNT = "lab's account"
CLIP_FLAGS = ["--size", "64", "--fps", "4", "--clip-frames", "8"]
SLURM_FLAGS = ["--partition", PARTITION, "--account", ACCOUNT, "--time", "01:30:00", "--cpus-per-task", "1", "--mem", "4G"]
TASK_ID = "${SLURM_ARRAY_TASK_ID}"


def environment_reverie() -> str:
    """The `reverie` of the environment that renders the script (the one the tasks must run)."""
    return str(Path(sys.executable).parent / "reverie")


def dry_run(out: Path, inputs: list[str], *flags: str) -> int:
    return reverie(["ingest", *inputs, "--out", str(out), *CLIP_FLAGS, "--slurm", "--dry-run", *flags])


def directives(script: str) -> dict[str, str]:
    """`#SBATCH --key=value` lines as sbatch reads them: shell quotes removed."""
    options = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            (option,) = shlex.split(line.removeprefix("#SBATCH "))
            key, _, value = option.partition("=")
            options[key] = value
    return options


def srun_line(script: str) -> str:
    (line,) = [line for line in script.splitlines() if line.startswith("srun ")]
    return line


def task_arguments(script: str, task: int) -> list[str]:
    """The `reverie ...` arguments array task `task` runs (after `srun /path/to/env/bin/reverie`)."""
    words = shlex.split(srun_line(script))
    assert words[:2] == ["srun", environment_reverie()]
    return [str(task) if word == TASK_ID else word for word in words[2:]]


def manifest_paths(path: Path) -> list[str]:
    return [line["path"] for line in read_manifest(path)]


def flat(text: str) -> str:
    """rich wraps console lines at 80 columns; compare text with all whitespace removed."""
    return "".join(text.split())
