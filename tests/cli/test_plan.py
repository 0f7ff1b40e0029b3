"""`reverie plan`: the flags become `GoalPlanningSettings`, the CLI calls the planning loop once,
and the known setup errors exit 1 with their message; with `--frame` (no env) the flags become one
`plan_from_files` call, and the flags of the other mode exit 2. The loop is tested in
tests/planning/test_goal_planning.py, planning from images in tests/planning/test_offline.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reverie.cli.main import build_parser, main
from reverie.cli.plan import settings_from_args
from reverie.planning import goal_planning, offline
from reverie.planning.control import PlanningSetupError
from reverie.planning.goal_planning import GoalPlanningSettings, planner_config
from reverie.planning.goals import GoalError
from reverie.planning.offline import OfflinePlanSettings
from reverie.planning.planners import CEMConfig, MPPIConfig

LOW, HIGH = np.full(2, -1.0, np.float32), np.full(2, 1.0, np.float32)  # Reacher's torques


def settings(*flags: str) -> GoalPlanningSettings:
    return settings_from_args(build_parser().parse_args(["plan", "model", "--env", "Reacher-v5", *flags]))


def test_the_flags_become_the_settings():
    flags = [
        "--goal", "goal.png", "--episodes", "3", "--seed", "7", "--planner", "mppi", "--horizon", "4", "--samples", "64",
        "--iterations", "2", "--std", "0.2", "--context-frames", "2", "--action-cost", "0.1", "--steps", "20",
        "--success-distance", "0.05", "--size", "32", "--device", "cuda", "--baseline", "random", "--gif", "out/plan.gif",
        "--gif-episodes", "2", "--json", "out/plan.json",
    ]  # fmt: skip
    assert settings(*flags) == GoalPlanningSettings(
        model_dir=Path("model"), env_id="Reacher-v5", goal_image=Path("goal.png"), episodes=3, seed=7, planner="mppi", horizon=4,
        samples=64, iterations=2, std=0.2, context_frames=2, action_cost=0.1, steps=20, success_distance=0.05, size=32,
        device="cuda", baseline="random", gif_path=Path("out/plan.gif"), gif_episodes=2, json_path=Path("out/plan.json"),
    )  # fmt: skip
    assert settings("--goal-from-env") == GoalPlanningSettings(Path("model"), "Reacher-v5")  # unset flags: the settings' defaults


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], CEMConfig(seed=0, init_std=0.5, elites=32)),
        (["--planner", "cem", "--samples", "64", "--std", "0.2", "--seed", "3"], CEMConfig(samples=64, seed=3, init_std=0.2, elites=8)),
        (["--horizon", "2", "--samples", "8", "--iterations", "2"], CEMConfig(horizon=2, samples=8, iterations=2, seed=0, init_std=0.5, elites=1)),
        (["--planner", "mppi"], MPPIConfig(seed=0, noise_std=0.5)),
        (["--planner", "mppi", "--horizon", "4", "--samples", "64", "--std", "0.2", "--seed", "3"], MPPIConfig(horizon=4, samples=64, seed=3, noise_std=0.2)),
    ],
)
def test_planner_flags_build_the_configs_the_old_if_chain_built(flags, expected):
    assert planner_config(settings("--goal-from-env", *flags), LOW, HIGH) == expected


def test_the_command_calls_the_planning_loop_once_with_the_settings(monkeypatch):
    calls = []
    monkeypatch.setattr(goal_planning, "plan_toward_goals", calls.append)
    assert main(["plan", "model", "--env", "Reacher-v5", "--goal-from-env", "--episodes", "2"]) == 0
    assert calls == [GoalPlanningSettings(Path("model"), "Reacher-v5", episodes=2)]


@pytest.mark.parametrize(
    "error, printed",
    [
        (FileNotFoundError("model: not a model folder"), "reverie plan: model: not a model folder"),
        (KeyError("unknown planner 'nope'; known: cem, mppi"), "reverie plan: unknown planner 'nope'; known: cem, mppi"),  # not quoted
        (GoalError("no goal task for CartPole-v1"), "reverie plan: no goal task for CartPole-v1"),
        (PlanningSetupError("--episodes must be at least 1, got 0"), "reverie plan: --episodes must be at least 1, got 0"),
    ],
)
def test_each_setup_error_exits_1_with_its_message(monkeypatch, capsys, error, printed):
    def fail(settings):
        raise error

    monkeypatch.setattr(goal_planning, "plan_toward_goals", fail)
    assert main(["plan", "model", "--env", "Reacher-v5", "--goal-from-env"]) == 1
    assert capsys.readouterr().out == printed + "\n"


def test_other_errors_are_not_swallowed(monkeypatch):
    def fail(settings):
        raise ValueError("CEM elites=300 not in [1, 255]")

    monkeypatch.setattr(goal_planning, "plan_toward_goals", fail)
    with pytest.raises(ValueError, match="CEM elites"):
        main(["plan", "model", "--env", "Reacher-v5", "--goal-from-env"])


@pytest.mark.parametrize(
    "flags, printed",
    [
        (["--env", "CartPole-v1", "--goal-from-env"], "no goal task for CartPole-v1"),
        (["--env", "Reacher-v5", "--goal-from-env"], "not a model folder"),
        (["--env", "Reacher-v5", "--goal-from-env", "--planner", "nope"], "unknown planner 'nope'; known: cem, mppi"),
    ],
)
def test_reverie_plan_names_what_does_not_fit(tmp_path, capsys, flags, printed):
    assert main(["plan", str(tmp_path / "missing"), *flags]) == 1
    assert printed in capsys.readouterr().out


def test_a_model_folder_from_another_version_exits_1_naming_the_field(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model": "vjepa_ac", "config": {"no_such_field": 1}}')
    (folder / "model.safetensors").write_bytes(b"")
    assert main(["plan", str(folder), "--env", "Reacher-v5", "--goal-from-env", "--episodes", "1"]) == 1
    assert "no_such_field" in capsys.readouterr().out


def offline_call(monkeypatch, *flags: str) -> tuple:
    calls = []
    monkeypatch.setattr(offline, "plan_from_files", lambda *args: calls.append(args))
    assert main(["plan", "model", "--frame", "now.png", "--goal", "goal.png", *flags]) == 0
    return calls[0]


def test_frame_flags_become_one_plan_from_files_call(monkeypatch):
    flags = [
        "--frames", "a.png", "b.png", "--actions", "0.5", "-0.5", "0", "1", "--state", "0.1", "-0.3", "0.2", "0.4", "0", "0",
        "--low", "-1", "0", "--high", "1", "0.5", "--planner", "mppi", "--horizon", "4", "--samples", "64", "--iterations", "2",
        "--std", "0.2", "--seed", "7", "--action-cost", "0.1", "--size", "32", "--device", "cuda", "--json", "out/plan.json",
    ]  # fmt: skip
    settings = OfflinePlanSettings(
        low=[-1.0, 0.0], high=[1.0, 0.5], planner="mppi", horizon=4, samples=64, iterations=2, std=0.2, seed=7, action_cost=0.1,
        size=32, device="cuda",
    )  # fmt: skip
    frames, state, actions = [Path("a.png"), Path("b.png"), Path("now.png")], [0.1, -0.3, 0.2, 0.4, 0.0, 0.0], [0.5, -0.5, 0.0, 1.0]
    assert offline_call(monkeypatch, *flags) == (Path("model"), frames, Path("goal.png"), settings, state, actions, Path("out/plan.json"))
    unset = (Path("model"), [Path("now.png")], Path("goal.png"), OfflinePlanSettings(action_bound=0.5), None, None, None)
    assert offline_call(monkeypatch, "--action-bound", "0.5") == unset  # unset flags: the settings' defaults


@pytest.mark.parametrize(
    "flags, printed",
    [
        ([], "the following arguments are required: --env (or --frame"),
        (["--env", "Reacher-v5"], "one of the arguments --goal --goal-from-env is required"),
        (["--env", "Reacher-v5", "--goal-from-env", "--state", "0.1"], "--state goes with --frame"),
        (["--env", "Reacher-v5", "--goal", "goal.png", "--action-bound", "1"], "--action-bound goes with --frame"),
        (["--frame", "now.png"], "--frame needs --goal IMAGE"),
        (["--frame", "now.png", "--goal-from-env"], "--frame needs --goal IMAGE"),
        (["--frame", "now.png", "--goal", "goal.png", "--env", "Reacher-v5"], "--env goes with --env (episodes in an env), not --frame"),
        (["--frame", "now.png", "--goal", "goal.png", "--episodes", "3"], "--episodes goes with --env"),
        (["--frame", "now.png", "--goal", "goal.png", "--baseline", "random"], "--baseline goes with --env"),
    ],
)
def test_flags_of_the_other_mode_exit_2_naming_the_flag(monkeypatch, capsys, flags, printed):
    monkeypatch.setattr(goal_planning, "plan_toward_goals", pytest.fail)
    monkeypatch.setattr(offline, "plan_from_files", pytest.fail)
    assert main(["plan", "model", *flags]) == 2
    assert capsys.readouterr().err.startswith(f"reverie plan: error: {printed}")


def test_planning_from_frames_names_what_does_not_fit(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "missing"), "--frame", "now.png", "--goal", "goal.png", "--action-bound", "1"]) == 1
    assert "not a model folder" in capsys.readouterr().out
    assert main(["plan", str(tmp_path / "missing"), "--frame", "now.png", "--goal", "goal.png", "--planner", "nope"]) == 1
    assert "unknown planner 'nope'; known: cem, mppi" in capsys.readouterr().out
