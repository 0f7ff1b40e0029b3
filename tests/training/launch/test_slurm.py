"""The rendering layer of the sbatch scripts (`reverie.training.launch.slurm`): no value can break a
line of a script, the `#SBATCH` lines all come before the first command, and a script or list is
replaced whole or not at all."""

from __future__ import annotations

import os
import re

import pytest

from reverie.training.launch.slurm import (
    SbatchScriptError,
    check_script,
    quote_command,
    quote_word,
    render,
    sbatch_directives,
    write_script,
)

LINE_BREAKERS = {
    "newline": "gpu\ntouch /tmp/p #",  # the injection: a command line, and every #SBATCH line after it ignored
    "carriage-return": "gpu\r",
    "tab": "gpu\ttab",
    "nul": "gpu\x00",
    "escape": "gpu\x1b[2J",
    "vertical-tab": "gpu\x0bvertical tab",
    "next-line": "gpu\x85next line",
    "line-separator": "gpu\u2028line separator",
}


def refusal(option: str, value: str) -> str:
    return re.escape(f"{option}: {value!r}")


@pytest.mark.parametrize("value", LINE_BREAKERS.values(), ids=LINE_BREAKERS.keys())
def test_a_directive_value_that_is_not_one_printable_line_is_refused(value):
    with pytest.raises(SbatchScriptError, match=refusal("--partition", value)):
        sbatch_directives(job_name="reverie", partition=value, time="1:00:00")


@pytest.mark.parametrize("value", LINE_BREAKERS.values(), ids=LINE_BREAKERS.keys())
def test_a_command_word_that_is_not_one_printable_line_is_refused_naming_its_option(value):
    with pytest.raises(SbatchScriptError, match=refusal("run.dir", f"run.dir=/runs/{value}")):
        quote_command(["reverie", "train", "config.yaml", f"run.dir=/runs/{value}"])
    with pytest.raises(SbatchScriptError, match=refusal("--out", f"/data/{value}")):
        quote_command(["reverie", "ingest", "--out", f"/data/{value}", "--no-progress"])
    with pytest.raises(SbatchScriptError, match=refusal("--out", f"--out=/data/{value}")):
        quote_command(["reverie", "ingest", f"--out=/data/{value}"])
    with pytest.raises(SbatchScriptError, match=refusal("word 2 of the command", f"/configs/{value}.yaml")):
        quote_command(["reverie", "train", f"/configs/{value}.yaml"])
    with pytest.raises(SbatchScriptError, match=refusal("working directory", f"/home/{value}")):
        quote_word("working directory", f"/home/{value}")


def test_printable_values_are_kept_and_quoted():
    directives = sbatch_directives(account="lab's account é", requeue=True, mem=None, nodes=2)
    assert directives.splitlines() == ["#SBATCH --account='lab'\"'\"'s account é'", "#SBATCH --requeue", "#SBATCH --nodes=2"]
    assert quote_command(["reverie", "run.name=ae;rm -rf ~", "$HOME"]) == "reverie 'run.name=ae;rm -rf ~' '$HOME'"


@pytest.mark.parametrize("value", LINE_BREAKERS.values(), ids=LINE_BREAKERS.keys())
def test_render_refuses_a_placeholder_value_that_is_not_one_printable_line(value):
    with pytest.raises(SbatchScriptError, match=refusal("$workdir", f"/home/{value}")):
        render("train.sbatch", directives={"nodes": 1}, workdir=f"/home/{value}", command="reverie train config.yaml")


def test_render_puts_the_directives_before_the_first_command():
    script = render("train.sbatch", directives={"nodes": 2, "partition": "gpu"}, workdir="/home", command="reverie train c.yaml")
    lines = script.splitlines()
    first_command = lines.index("set -euo pipefail")
    assert [line for line in lines[:first_command] if not line.startswith("#")] == [""]
    assert [line for line in lines if line.startswith("#SBATCH")] == ["#SBATCH --nodes=2", "#SBATCH --partition=gpu"]
    assert not any(line.startswith("#SBATCH") for line in lines[first_command:])


def test_check_script_refuses_an_sbatch_line_after_the_first_command():
    check_script("#!/bin/bash\n# a comment\n#SBATCH --nodes=1\n\n  # indented comment\nset -eu\nsrun true\n", "x.sbatch")
    with pytest.raises(SbatchScriptError, match=r"x\.sbatch line 4: '#SBATCH --time=1:00:00' comes after the first command \(line 3"):
        check_script("#!/bin/bash\n#SBATCH --nodes=1\ntouch /tmp/p #'\n#SBATCH --time=1:00:00\n", "x.sbatch")
    with pytest.raises(SbatchScriptError, match=r"x\.sbatch line 2: '#SBATCH --nodes=1\\x00' is not printable"):
        check_script("#!/bin/bash\n#SBATCH --nodes=1\x00\nsrun true\n", "x.sbatch")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ingest-array.sbatch"
    path.write_text("#!/bin/bash\nold\n")

    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_script("#!/bin/bash\nnew\n", path)
    assert path.read_text() == "#!/bin/bash\nold\n"
    assert os.listdir(tmp_path) == ["ingest-array.sbatch"]


def test_write_script_makes_an_executable_script(tmp_path):
    path = write_script("#!/bin/bash\ntrue\n", tmp_path / "logs" / "job.sbatch")
    assert path.read_text() == "#!/bin/bash\ntrue\n"
    assert os.access(path, os.X_OK)
