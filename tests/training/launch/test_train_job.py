"""The sbatch script `reverie submit --dry-run` writes, checked line by line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reverie.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "configs" / "autoencoder" / "base.yaml"


def test_a_four_node_eight_gpu_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    arguments = ["submit", str(BASE), "--nodes", "4", "--gpus-per-node", "8", "--partition", "gpu", "--account", "lab one"]
    arguments += ["--time", "2-00:00:00", "data.shards=/data/my clips/shards", "run.name=ae;rm -rf ~", "--dry-run"]
    assert main(arguments) == 0
    run_dir = tmp_path / "runs" / "ae;rm -rf ~"
    script = (run_dir / "train.sbatch").read_text()
    assert capsys.readouterr().out.startswith(script)
    reverie = Path(sys.executable).parent / "reverie"
    expected_lines = [
        "#!/bin/bash",
        "#SBATCH --job-name='reverie-ae;rm -rf ~'",
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --partition=gpu",
        "#SBATCH --account='lab one'",
        "#SBATCH --time=2-00:00:00",
        "#SBATCH --signal=USR1@90",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output='{run_dir}/logs/slurm-%j.out'",
        "",
        "set -euo pipefail",
        f"cd {tmp_path}",
        'echo "job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST}: ${SLURM_NTASKS} tasks"',
        f"srun --kill-on-bad-exit=1 {reverie} train {BASE} 'data.shards=/data/my clips/shards' 'run.name=ae;rm -rf ~' "
        f"trainer.num_nodes=4 trainer.devices=8 'run.dir={run_dir}'",
    ]
    lines = [line for line in script.splitlines() if not line.startswith("# ")]
    assert lines == expected_lines
    assert (run_dir / "logs").is_dir()


def test_a_bad_override_fails_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["submit", str(BASE), "trainer.max_step=5", "--dry-run"]) == 2
    assert "trainer.max_step" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "arguments, option, value",
    [
        (["--partition", "gpu\ntouch /tmp/p #"], "--partition", "gpu\ntouch /tmp/p #"),
        (["--account", "lab\r"], "--account", "lab\r"),
        (["--mem", "64G\x00"], "--mem", "64G\x00"),
        (["--time", "1:00:00\u2028srun true"], "--time", "1:00:00\u2028srun true"),
        (["run.name=ae\ntouch /tmp/p"], "run.name", "run.name=ae\ntouch /tmp/p"),
        (["run.dir=elsewhere/a\tb"], "run.dir", "run.dir=elsewhere/a\tb"),
    ],
    ids=["partition-newline", "account-carriage-return", "mem-nul", "time-line-separator", "run.name-newline", "run.dir-tab"],
)
def test_a_value_that_would_break_a_script_line_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys, arguments, option, value
):
    monkeypatch.chdir(tmp_path)
    assert main(["submit", str(BASE), *arguments, "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert f"{option}: {value!r}" in error
    assert list(tmp_path.iterdir()) == []


def test_a_run_name_that_would_break_the_job_name_line_is_refused(tmp_path, monkeypatch, capsys):
    config = tmp_path / "named.yaml"
    config.write_text(BASE.read_text().replace("name: autoencoder-base", 'name: "ae\\ntouch /tmp/p #"\n  dir: runs/ae'))
    monkeypatch.chdir(tmp_path)
    assert main(["submit", str(config), "--dry-run"]) == 2
    assert "--job-name: 'reverie-ae\\ntouch /tmp/p #'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_working_directory_that_would_break_the_cd_line_is_refused(tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "home\ntouch p"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    assert main(["submit", str(BASE), "run.dir=/nonexistent/run", "--dry-run"]) == 2
    assert f"working directory: {str(workdir)!r}" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []
