"""`reverie COMMAND ...`: the help lists every command, each command has its own help, an unknown
command or flag exits 2, and `key=value` overrides may come before or after the flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reverie.cli import agent
from reverie.cli.main import COMMANDS, main


def flat(text: str) -> str:
    return "".join(text.split())  # argparse rewraps descriptions to the terminal's width, also at hyphens


def test_help_lists_every_command_with_the_first_line_of_its_docstring(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    printed = flat(capsys.readouterr().out)
    for name, module in COMMANDS.items():
        assert f"{name}{flat(module.__doc__.splitlines()[0])}" in printed


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help_that_describes_it(name, capsys):
    with pytest.raises(SystemExit) as exit:
        main([name, "--help"])
    assert exit.value.code == 0
    printed = flat(capsys.readouterr().out)
    assert printed.startswith(f"usage:reverie{name}") and flat(COMMANDS[name].__doc__.splitlines()[0]) in printed


def test_the_installed_command_exits_2_on_an_unknown_command():
    result = subprocess.run([str(Path(sys.executable).parent / "reverie"), "fly"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice: 'fly'" in result.stderr and result.stdout == ""


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit:
        main([])
    assert exit.value.code == 2 and "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_overrides_after_the_flags_join_those_before(monkeypatch):
    seen = {}
    monkeypatch.setattr(agent, "run", lambda args: seen.update(vars(args)))
    assert main(["agent", "dyna_q", "alpha=0.5", "--env", "reverie/DynaMaze-v0", "episodes=3", "--seed", "4", "env.scale=2"]) == 0
    assert seen["overrides"] == ["alpha=0.5", "episodes=3", "env.scale=2"]
    assert (seen["name"], seen["env"], seen["seed"]) == ("dyna_q", "reverie/DynaMaze-v0", 4)


def test_the_commands_exit_status_is_returned(monkeypatch):
    monkeypatch.setattr(agent, "run", lambda args: 3)
    assert main(["agent", "dyna_q", "--env", "reverie/DynaMaze-v0"]) == 3


@pytest.mark.parametrize(
    "arguments, unrecognized",
    [
        (["agent", "dyna_q", "--env", "reverie/DynaMaze-v0", "--fast"], "--fast"),
        (["agent", "dyna_q", "--env", "reverie/DynaMaze-v0", "a=1", "--fast", "b=2"], "a=1 --fast b=2"),
        (["inspect", "folder", "extra"], "extra"),  # a command without overrides takes no stray words
    ],
)
def test_unknown_flags_and_stray_words_exit_2_naming_them(arguments, unrecognized, capsys, monkeypatch):
    monkeypatch.setattr(agent, "run", lambda args: pytest.fail("ran despite a bad argument"))
    with pytest.raises(SystemExit) as exit:
        main(arguments)
    assert exit.value.code == 2 and f"unrecognized arguments: {unrecognized}" in capsys.readouterr().err
