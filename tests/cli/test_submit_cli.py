"""`reverie submit CONFIG [key=value ...]`: the defaults and the layout flags in the script,
overrides on both sides of the flags, what is printed with and without --dry-run, and exit 2
naming a missing config or a failed sbatch. The full four-node script is checked line by line in
`tests/training/launch/test_train_job.py`; real SLURM runs in `test_local_cluster.py`."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from reverie.cli.main import main

TINY = Path(__file__).resolve().parents[2] / "configs" / "autoencoder" / "tiny.yaml"
RUN_DIR = "runs/autoencoder-tiny"  # tiny.yaml's run.name, under the working directory


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def directives(script: str) -> dict[str, str]:
    return dict(line.removeprefix("#SBATCH --").split("=", 1) for line in script.splitlines() if line.startswith("#SBATCH --") and "=" in line)


def srun_words(script: str) -> list[str]:
    (line,) = [line for line in script.splitlines() if line.startswith("srun ")]
    return shlex.split(line)


def test_a_dry_run_with_the_defaults(tmp_path, capsys):
    assert main(["submit", str(TINY), "--dry-run"]) == 0
    path = tmp_path / RUN_DIR / "train.sbatch"
    script, printed = path.read_text(), capsys.readouterr().out
    assert printed == script + f"# wrote {path}; not submitted (--dry-run)\n"
    assert directives(script) == {
        "job-name": "reverie-autoencoder-tiny",
        "nodes": "1",
        "ntasks-per-node": "1",
        "gpus-per-node": "1",
        "cpus-per-task": "8",
        "time": "24:00:00",
        "signal": "USR1@90",
        "open-mode": "append",
        "output": f"{tmp_path / RUN_DIR}/logs/slurm-%j.out",
    }
    assert srun_words(script)[-3:] == ["trainer.num_nodes=1", "trainer.devices=1", f"run.dir={tmp_path / RUN_DIR}"]


def test_cpu_jobs_tasks_memory_and_overrides_on_both_sides_of_the_flags(tmp_path):
    arguments = ["submit", str(TINY), "trainer.max_steps=5", "--gpus-per-node", "0", "--tasks-per-node", "3"]
    assert main([*arguments, "--mem", "64G", "--dry-run", "optim.lr=0.1"]) == 0
    script = (tmp_path / RUN_DIR / "train.sbatch").read_text()
    found = directives(script)
    assert "gpus-per-node" not in found and (found["ntasks-per-node"], found["mem"]) == ("3", "64G")
    words = srun_words(script)
    assert words[words.index("train") + 2 :] == [
        "trainer.max_steps=5",
        "optim.lr=0.1",
        "trainer.num_nodes=1",
        "trainer.devices=3",
        f"run.dir={tmp_path / RUN_DIR}",
        "trainer.accelerator=cpu",
    ]


def test_a_missing_config_exits_2_and_writes_nothing(tmp_path, capsys):
    assert main(["submit", str(tmp_path / "nope.yaml"), "--dry-run"]) == 2
    assert capsys.readouterr().err == f"reverie submit: config {tmp_path / 'nope.yaml'} not found\n"
    assert not (tmp_path / "runs").exists()


def fake_sbatch(folder: Path, body: str) -> None:
    folder.mkdir(exist_ok=True)
    sbatch = folder / "sbatch"
    sbatch.write_text(f"#!/bin/sh\n{body}\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IXUSR)


def test_without_dry_run_the_job_is_submitted_and_its_id_printed(tmp_path, monkeypatch, capsys):
    fake_sbatch(tmp_path / "bin", 'echo "4321;cluster"')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["submit", str(TINY)]) == 0
    run_dir = tmp_path / RUN_DIR
    assert capsys.readouterr().out == f"submitted job 4321: {run_dir / 'train.sbatch'}\nwatch: squeue -j 4321; tail -f {run_dir / 'logs'}/slurm-4321.out\n"


def test_no_sbatch_or_a_failing_one_exits_2_saying_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["submit", str(TINY)]) == 2
    assert "reverie submit: sbatch is not on PATH: run on a SLURM login node, or use --dry-run" in capsys.readouterr().err
    fake_sbatch(tmp_path / "bin", 'echo "invalid partition" >&2; exit 1')
    assert main(["submit", str(TINY)]) == 2
    assert capsys.readouterr().err.endswith("failed: invalid partition\n")


WORLD_MODELS = Path(__file__).resolve().parents[2] / "configs" / "world_models"


@pytest.mark.parametrize(
    ("config", "run_name"),
    [("diamond_atari.yaml", "diamond-atari"), ("iris_atari.yaml", "iris-atari"), ("oasis_500m.yaml", "oasis-500m")],
)
def test_the_real_scale_world_models_render_for_four_nodes_of_eight_gpus(tmp_path, config, run_name):
    assert main(["submit", str(WORLD_MODELS / config), "--nodes", "4", "--gpus-per-node", "8", "--dry-run"]) == 0
    run_dir = tmp_path / "runs" / run_name
    script = (run_dir / "train.sbatch").read_text()
    found = directives(script)
    assert (found["job-name"], found["nodes"], found["ntasks-per-node"], found["gpus-per-node"]) == (f"reverie-{run_name}", "4", "8", "8")
    words = srun_words(script)
    assert words[words.index("train") + 1] == str(WORLD_MODELS / config)
    assert words[-3:] == ["trainer.num_nodes=4", "trainer.devices=8", f"run.dir={run_dir}"]
