"""`reverie ingest --slurm` renders a SLURM array script (`reverie.training.launch.ingest_array`):
its `#SBATCH` lines, its quoting, and the array task commands it gives."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from reverie.cli.main import build_parser
from reverie.cli.main import main as reverie
from ingest_array_scripts import (
    ACCOUNT, OUT_NAME, PARTITION, SLURM_FLAGS, TASK_ID, directives, dry_run, environment_reverie, flat, srun_line, task_arguments,
)  # fmt: skip


@pytest.fixture(scope="module")
def inputs(sample_videos, damaged_files) -> list[str]:
    return [str(path) for path in [*sample_videos, damaged_files["empty"], damaged_files["text"]]]


def test_dry_run_prints_the_script_it_writes_and_submits_nothing(tmp_path, inputs, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    out = tmp_path / OUT_NAME
    assert dry_run(out, inputs, "--slices", "2", *SLURM_FLAGS) == 0
    printed = capsys.readouterr()
    script = out / "ingest-array.sbatch"
    assert printed.out == script.read_text()
    assert printed.out.startswith("#!/bin/bash\n")
    assert os.access(script, os.X_OK)
    assert "not submitted (--dry-run)" in " ".join(printed.err.split())


def test_sbatch_directives_carry_every_option_quoted(tmp_path, inputs, capsys):
    out = tmp_path / OUT_NAME
    dry_run(out, inputs, "--slices", "3", *SLURM_FLAGS)
    script = capsys.readouterr().out
    assert directives(script) == {
        "--job-name": "reverie-ingest",
        "--array": "0-2",
        "--partition": PARTITION,
        "--account": ACCOUNT,
        "--time": "01:30:00",
        "--nodes": "1",
        "--ntasks": "1",
        "--cpus-per-task": "1",
        "--mem": "4G",
        "--output": f"{out}/logs/ingest-%A_%a.out",
    }
    assert "#SBATCH --partition='gpu;rm -rf'" in script.splitlines()
    assert (out / "logs").is_dir(), "sbatch does not create the folder of --output"


def test_sbatch_directives_come_before_the_first_command(tmp_path, inputs, capsys):
    dry_run(tmp_path / OUT_NAME, inputs, "--slices", "2", *SLURM_FLAGS)
    lines = capsys.readouterr().out.splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert len([line for line in lines if line.startswith("#SBATCH")]) == 10


@pytest.mark.parametrize("count, array", [(1, "0-0"), (100, "0-0"), (101, "0-1"), (250, "0-2")])
def test_default_is_one_slice_per_100_inputs_and_no_account(tmp_path, capsys, count, array):
    missing_videos = [str(tmp_path / f"video_{i:03d}.mp4") for i in range(count)]
    dry_run(tmp_path / "out", missing_videos)
    script = capsys.readouterr().out
    assert directives(script)["--array"] == array
    assert "--account" not in directives(script)
    assert srun_line(script).endswith(f'--slice "{TASK_ID}" --num-slices {int(array[2:]) + 1}')


def test_srun_line_shell_quotes_user_strings(tmp_path, inputs, capsys):
    out = tmp_path / OUT_NAME
    dry_run(out, inputs, "--slices", "2", *SLURM_FLAGS)
    script = capsys.readouterr().out
    words = shlex.split(srun_line(script))
    assert words[:3] == ["srun", environment_reverie(), "ingest"]
    assert words[words.index("--input-list") + 1] == str(out / "inputs.txt")
    assert words[words.index("--out") + 1] == str(out)
    assert words[words.index("--workers") + 1] == "1"
    assert words[-4:] == ["--slice", TASK_ID, "--num-slices", "2"]
    assert srun_line(script).endswith(f'--slice "{TASK_ID}" --num-slices 2')
    syntax = subprocess.run(["bash", "-n", str(out / "ingest-array.sbatch")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_bash_runs_each_task_with_the_paths_unexpanded_and_the_reverie_of_this_environment(tmp_path, inputs, capsys, monkeypatch):
    environment = tmp_path / "env" / "bin"  # where the script finds `reverie`: beside this Python
    on_path = tmp_path / "bin"  # what a node's PATH may hold: another `reverie`, which must not run
    for folder in (environment, on_path):
        folder.mkdir(parents=True)
    (on_path / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (on_path / "reverie").write_text("#!/bin/sh\necho the reverie on PATH >&2\nexit 3\n")
    (environment / "reverie").write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    for tool in (on_path / "srun", on_path / "reverie", environment / "reverie"):
        tool.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(environment / "python"))
    out = tmp_path / OUT_NAME
    dry_run(out, inputs, "--slices", "2", *SLURM_FLAGS)
    script = capsys.readouterr().out
    variables = {**os.environ, "PATH": f"{on_path}:{os.environ['PATH']}", "HOME": "/home/elsewhere", "SLURM_ARRAY_TASK_ID": "1"}
    task = subprocess.run(["bash", str(out / "ingest-array.sbatch")], env=variables, capture_output=True, text=True)
    assert task.returncode == 0, task.stderr
    arguments = json.loads(task.stdout)
    assert arguments == task_arguments(script, 1)
    assert arguments[arguments.index("--out") + 1] == str(out)
    assert arguments[-4:] == ["--slice", "1", "--num-slices", "2"]


def test_inputs_txt_and_ingest_json_hold_the_whole_input_list(tmp_path, inputs, capsys):
    out = tmp_path / OUT_NAME
    dry_run(out, inputs, "--slices", "2", *SLURM_FLAGS)
    assert (out / "inputs.txt").read_text().splitlines() == inputs
    run = json.loads((out / "ingest.json").read_text())
    assert run["inputs"] == inputs
    assert run["settings"]["num_slices"] == 2
    assert run["settings"]["slice_index"] is None
    assert (run["settings"]["spec"]["size"], run["settings"]["spec"]["fps"], run["settings"]["spec"]["clip_frames"]) == (64, 4.0, 8)


ARG_OF_SETTING = {
    "clip_frames": "clip_frames", "fps": "fps", "size": "size", "keep_aspect": "keep_aspect", "scene_cuts": "scene_cuts",
    "cut_threshold": "cut_threshold", "min_duration": "min_duration", "min_motion": "min_motion",
    "clip_format": "clip_format", "decoder": "decoder",
    "shard_max_count": "shard_size", "shard_max_bytes": "shard_bytes", "dedup": "dedup", "dedup_distance": "dedup_distance",
    "probe_timeout": "probe_timeout", "decode_timeout": "timeout", "timeout_per_second": "timeout_per_second",
    "max_timeout": "max_timeout", "max_pixels": "max_pixels",
}  # fmt: skip


def array_task_settings(out: Path, script: str) -> tuple[dict, dict]:
    """(what ingest.json recorded, what the array task's command line parses to), setting by setting."""
    run = json.loads((out / "ingest.json").read_text())["settings"]
    recorded = run["spec"] | {key: value for key, value in run.items() if key != "spec"}
    task = vars(build_parser().parse_args(task_arguments(script, 0)))
    return {key: recorded[key] for key in ARG_OF_SETTING}, {key: task[arg] for key, arg in ARG_OF_SETTING.items()}


def test_array_task_command_reproduces_every_clip_setting(tmp_path, inputs, capsys):
    out = tmp_path / OUT_NAME
    flags = ["--keep-aspect", "--no-scene-cuts", "--no-dedup", "--format", "npy", "--shard-size", "7", "--shard-bytes", "5MiB"]
    flags += ["--min-motion", "0.01", "--min-duration", "0.5", "--dedup-distance", "3", "--cut-threshold", "31.5"]
    flags += ["--probe-timeout", "5", "--timeout", "9", "--timeout-per-second", "2.5", "--max-timeout", "90", "--max-pixels", "1000000"]
    dry_run(out, inputs, "--slices", "2", *flags)
    recorded, task = array_task_settings(out, capsys.readouterr().out)
    assert task == recorded
    assert (task["keep_aspect"], task["scene_cuts"], task["dedup"], task["shard_max_bytes"]) == (True, False, False, 5 * 2**20)
    assert (task["max_timeout"], task["max_pixels"]) == (90.0, 1_000_000)  # not the defaults


def test_array_task_keeps_a_precise_frame_rate(tmp_path, inputs, capsys):
    out = tmp_path / OUT_NAME
    dry_run(out, inputs, "--slices", "2", "--fps", "7.123456789", "--min-motion", "0.00123456789")
    recorded, task = array_task_settings(out, capsys.readouterr().out)
    assert task == recorded


def test_submit_hands_the_script_to_sbatch(tmp_path, inputs, capsys, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "sbatch-calls.txt"
    (fake_bin / "sbatch").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{calls}"\necho "4242;cluster"\n')
    (fake_bin / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    out = tmp_path / OUT_NAME
    assert reverie(["ingest", *inputs, "--out", str(out), "--slurm", "--slices", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "submitted job 4242: 2 array tasks over 6 inputs" in " ".join(printed.err.split())
    assert calls.read_text().splitlines() == ["--parsable", str(out / "ingest-array.sbatch")]


def test_submit_without_sbatch_says_to_use_a_login_node_or_dry_run(tmp_path, inputs, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"sbatch is not on PATH.*--dry-run"):
        reverie(["ingest", *inputs, "--out", str(tmp_path / "out"), "--slurm"])


@pytest.mark.parametrize(
    "flags, option, value",
    [
        (["--partition", "gpu\ntouch /tmp/p #"], "--partition", "gpu\ntouch /tmp/p #"),
        (["--account", "lab\r"], "--account", "lab\r"),
        (["--mem", "4G\x00"], "--mem", "4G\x00"),
        (["--time", "1:00:00\u2028srun true"], "--time", "1:00:00\u2028srun true"),
    ],
    ids=["partition-newline", "account-carriage-return", "mem-nul", "time-line-separator"],
)
def test_a_slurm_option_that_would_break_a_script_line_is_refused_before_anything_is_written(
    tmp_path, inputs, capsys, flags, option, value
):
    out = tmp_path / OUT_NAME
    assert dry_run(out, inputs, "--slices", "2", *flags) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert flat(f"{option}: {value!r}") in flat(printed.err)
    assert not out.exists()


def test_an_output_folder_that_would_break_a_script_line_is_refused_before_anything_is_written(tmp_path, inputs, capsys):
    out = tmp_path / "clips\ntouch p"
    assert dry_run(out, inputs) == 2
    assert flat(f"--out: {str(out)!r}") in flat(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_inputs_txt_is_replaced_whole(tmp_path, inputs, capsys, monkeypatch):
    out = tmp_path / OUT_NAME
    out.mkdir()
    (out / "inputs.txt").write_text("/an/older/list.mp4\n")
    replaced = {}
    real_replace = os.replace

    def replace(source, target):
        if os.path.basename(target) == "inputs.txt":
            replaced["inputs.txt"] = (os.path.dirname(source), Path(source).read_text(), Path(target).read_text())
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    assert dry_run(out, inputs, "--slices", "2") == 0
    new_list = "".join(f"{path}\n" for path in inputs)
    assert replaced["inputs.txt"] == (str(out), new_list, "/an/older/list.mp4\n"), "a reader sees the old list or the new one"
    assert (out / "inputs.txt").read_text() == new_list
    assert not [path for path in out.iterdir() if path.name.endswith(".tmp")]


def test_a_folder_made_with_other_clip_settings_is_refused_before_its_input_list_changes(tmp_path, inputs, capsys):
    out = tmp_path / OUT_NAME
    assert reverie(["ingest", *inputs[:1], "--out", str(out), "--size", "64", "--fps", "4", "--clip-frames", "8"]) == 0
    before = (out / "ingest.json").read_bytes()
    assert dry_run(out, inputs, "--size", "32") == 2
    assert "--size32(was64)" in flat(capsys.readouterr().err)
    assert (out / "ingest.json").read_bytes() == before and not (out / "inputs.txt").exists()
