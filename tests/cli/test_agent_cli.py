"""`reverie agent`: trains through the CLI, writes metrics.csv and a checkpoint, resumes exactly."""

from __future__ import annotations

import csv

import numpy as np

from reverie.agents.registry import load_agent
from reverie.cli.main import main

DYNA_MAZE = ["--env", "reverie/DynaMaze-v0"]


def metrics(folder) -> list[dict]:
    return list(csv.DictReader((folder / "metrics.csv").open()))


def test_agent_command_writes_metrics_and_checkpoint(tmp_path):
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=5", "--out", str(tmp_path)]) == 0
    rows = metrics(tmp_path)
    assert [int(row["episode"]) for row in rows] == [1, 2, 3, 4, 5]
    assert all(float(row["return"]) == 1.0 for row in rows)
    agent = load_agent(tmp_path / "checkpoint.safetensors")
    assert agent.episodes == 5 and agent.total_steps == sum(int(row["steps"]) for row in rows)
    assert not list(tmp_path.glob("*.tmp"))


def test_rerun_resumes_as_if_never_stopped(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["agent", "prioritized_sweeping", *DYNA_MAZE, "planning_steps=10", "--seed", "4"]
    assert main([*common, "episodes=6", "--out", str(straight)]) == 0
    assert main([*common, "episodes=3", "--out", str(resumed)]) == 0
    with (resumed / "metrics.csv").open("a") as file:
        file.write("4,1.0,99,999,9999\n")  # a row written after the last checkpoint, then a crash
    assert main([*common, "episodes=6", "--out", str(resumed)]) == 0
    assert metrics(resumed) == metrics(straight)
    np.testing.assert_array_equal(load_agent(resumed / "checkpoint.safetensors").q, load_agent(straight / "checkpoint.safetensors").q)


def test_a_resumed_run_keeps_the_changing_maze_on_its_own_step_count(tmp_path):
    probe, straight, resumed = tmp_path / "probe", tmp_path / "straight", tmp_path / "resumed"
    common = ["agent", "dyna_q", "--env", "reverie/BlockingMaze-v0", "planning_steps=5", "--seed", "1"]
    assert main([*common, "episodes=3", "--out", str(probe)]) == 0
    switch = [f"env.switch_step={load_agent(probe / 'checkpoint.safetensors').total_steps + 20}"]  # the wall moves during episode 4
    assert main([*common, *switch, "episodes=8", "--out", str(straight)]) == 0
    assert main([*common, *switch, "episodes=3", "--out", str(resumed)]) == 0
    assert main([*common, *switch, "episodes=8", "--out", str(resumed)]) == 0
    assert metrics(resumed) == metrics(straight)


def test_agent_command_takes_env_arguments_and_steps(tmp_path):
    assert main(["agent", "dyna_q_plus", "--env", "reverie/DynaMaze-v0", "env.scale=2", "steps=300", "kappa=0.01", "--out", str(tmp_path)]) == 0
    agent = load_agent(tmp_path / "checkpoint.safetensors")
    assert agent.total_steps == 300 and agent.num_states == 12 * 18 and agent.config.kappa == 0.01


def test_agent_command_rejects_unknown_keys_and_a_changed_run(tmp_path, capsys):
    assert main(["agent", "dyna_q", *DYNA_MAZE, "planning_step=5", "--out", str(tmp_path / "a")]) == 2
    assert "planning_step" in capsys.readouterr().err
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=1", "--out", str(tmp_path / "b")]) == 0
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=2", "alpha=0.5", "--out", str(tmp_path / "b")]) == 2
    assert "config.alpha: 0.1 -> 0.5" in capsys.readouterr().err
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=2", "alpha=0.5", "--fresh", "--out", str(tmp_path / "b")]) == 0


def test_an_unknown_agent_or_env_exits_2_naming_it_before_making_the_folder(tmp_path, capsys):
    assert main(["agent", "dyna_z", *DYNA_MAZE, "--out", str(tmp_path / "a")]) == 2
    assert "unknown agent 'dyna_z'; known: diamond, dyna_q, dyna_q_plus" in capsys.readouterr().err
    assert main(["agent", "dyna_q", "--env", "reverie/NoMaze-v0", "--out", str(tmp_path / "b")]) == 2
    assert "NoMaze" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_run_folder_defaults_to_runs_agents_name_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=1"]) == 0
    assert (tmp_path / "runs" / "agents" / "dyna_q-reverie_DynaMaze-v0" / "checkpoint.safetensors").is_file()


def test_a_second_writer_of_the_folder_exits_2_naming_the_holder_and_changes_nothing(tmp_path, capsys, hold_lock):
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=2", "--out", str(tmp_path)]) == 0
    holder = hold_lock(tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=4", "--out", str(tmp_path)]) == 2
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    holder.kill()
    holder.wait()
    assert capsys.readouterr().err == f"reverie agent: {tmp_path} is being written by process {holder.pid} (lock {tmp_path / '.lock'}); wait for it to finish, or stop it\n"
    assert main(["agent", "dyna_q", *DYNA_MAZE, "episodes=4", "--out", str(tmp_path)]) == 0  # the holder gone, the run goes on
    assert len(metrics(tmp_path)) == 4
