"""The goal-planning loop behind `reverie plan`: episodes with a tiny V-JEPA 2-AC in Reacher beside
the random, zero and oracle baselines, the report and what is printed, the JSON and GIF, the
planner's config from the registry, and the setup errors that name what does not fit."""

from __future__ import annotations

import os


import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from reverie.envs.make import make_env
from reverie.nn.model_folder import save_model_folder
from reverie.planning.control import PlanningSetupError
from reverie.planning.goal_planning import GoalPlanningSettings, plan_toward_goals, planner_config, summary_lines
from reverie.planning.goals import REACHER_SUCCESS_DISTANCE, GoalError, goal_task_for
from reverie.planning.planners import CEMConfig, MPPIConfig
from tiny_planning_model import ENCODER, MODEL_SIZE, PREDICTOR

SMALL = dict(episodes=2, steps=3, horizon=2, samples=8, iterations=2)
LOW, HIGH = np.full(2, -1.0, np.float32), np.full(2, 1.0, np.float32)  # Reacher's torques


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from reverie.posttrain.ac_predictor import VJEPAAC, VJEPAACConfig

    torch.manual_seed(0)
    return save_model_folder(VJEPAAC(VJEPAACConfig(encoder=ENCODER, **PREDICTOR)).eval(), tmp_path_factory.mktemp("planning") / "model")


def test_planning_toward_env_goals_prints_the_summary_and_writes_the_json_and_gif(model_dir, tmp_path, capsys):
    gif, report_path = tmp_path / "out" / "plan.gif", tmp_path / "out" / "plan.json"
    settings = GoalPlanningSettings(model_dir, "Reacher-v5", **SMALL, baseline=["random", "zero", "oracle"], gif_path=gif, json_path=report_path)
    report = plan_toward_goals(settings)
    printed = capsys.readouterr().out.splitlines()
    assert printed == summary_lines(report) + [f"json: {report_path}", f"gif: {gif} (goal | planned | random | zero | oracle)"]
    assert printed[:2] == [
        "Reacher-v5, 2 goals (from the env), 3 steps, 16 px frames",
        "success (Reacher): distance < 0.02, at the end of the episode and at any step of it",
    ]
    assert printed[2].startswith("planned: success at the end") and "reached at some step" in printed[2]
    assert [line.split(":")[0] for line in printed[2:6]] == ["planned", "random", "zero", "oracle"]
    assert all("95% CI" in line and line.endswith(" s per action") for line in printed[2:6])

    assert json.loads(report_path.read_text()) == report
    assert set(report) == {"env", "model", "goal", "task", "steps", "frame_size", "seed", "planner", "policies"}
    assert report["frame_size"] == MODEL_SIZE and report["goal"] == "env" and report["model"] == str(model_dir)
    assert report["task"] == {"name": "Reacher", "success_thresholds": {"distance": REACHER_SUCCESS_DISTANCE}}
    planner_fields = {field.name for field in dataclasses.fields(CEMConfig)}
    assert set(report["planner"]) == {"name", *planner_fields, "context_frames", "action_cost"}
    assert report["planner"]["elites"] == 1 and report["planner"]["init_std"] == pytest.approx(0.5)  # 8 // 8; a quarter of [-1, 1]
    assert list(report["policies"]) == ["planned", "random", "zero", "oracle"]
    for name in report["policies"]:
        summary, episodes = report["policies"][name]["summary"], report["policies"][name]["episodes"]
        assert set(summary) == {
            "episodes", "success_rate", "success_interval", "reach_rate", "reach_interval", "mean_final_distance",
            "mean_closest_distance", "mean_final_feature_distance", "seconds_per_action",
        }  # fmt: skip
        assert [episode["goal_seed"] for episode in episodes] == [0, 1] and all(episode["steps"] == 3 for episode in episodes)
        assert set(episodes[0]) == {
            "goal_seed", "goal_state", "steps", "initial_distance", "final_distance", "errors", "success",
            "closest_distance", "reached_step", "final_feature_distance", "seconds_per_action",
        }  # fmt: skip
        assert 0 <= summary["success_rate"] <= summary["reach_rate"] <= 1 and summary["mean_final_distance"] > 0
        for rate in ("success", "reach"):
            low, high = summary[f"{rate}_interval"]
            assert 0 <= low <= summary[f"{rate}_rate"] <= high <= 1
        assert all(episode["closest_distance"] <= episode["final_distance"] for episode in episodes)
        assert summary["seconds_per_action"] == pytest.approx(np.mean([episode["seconds_per_action"] for episode in episodes]))
    zero = report["policies"]["zero"]["episodes"]
    assert all(episode["final_distance"] > 0 for episode in zero)
    seconds = {name: report["policies"][name]["summary"]["seconds_per_action"] for name in report["policies"]}
    assert seconds["oracle"] > 10 * seconds["random"] > 0  # the oracle searches (2 iterations of 8 rollouts); random draws
    with Image.open(gif) as image:
        assert image.n_frames == 4  # the first frame and one per step
        assert image.size == (4 + 5 * (128 + 4), 4 + 2 * (128 + 4))  # goal | planned | random | zero | oracle, one row per episode, 16 px shown at 128
    assert sorted(os.listdir(gif.parent)) == ["plan.gif", "plan.json"]


def test_the_baselines_run_alone_without_a_model_on_the_same_goals(model_dir, tmp_path, capsys):
    with_model = plan_toward_goals(GoalPlanningSettings(model_dir, "Reacher-v5", **SMALL, baseline=["zero", "oracle"]))
    alone = plan_toward_goals(GoalPlanningSettings(None, "Reacher-v5", **SMALL, baseline=["zero", "oracle"], size=MODEL_SIZE))
    assert list(alone["policies"]) == ["zero", "oracle"] and alone["model"] is None
    for name in ("zero", "oracle"):  # the same goals and the same episodes as beside the model; no model, no feature distance
        episodes = alone["policies"][name]["episodes"]
        assert [episode["goal_seed"] for episode in episodes] == [0, 1]
        assert [episode["final_distance"] for episode in episodes] == [episode["final_distance"] for episode in with_model["policies"][name]["episodes"]]
        assert all(episode["final_feature_distance"] is None for episode in episodes)
        assert alone["policies"][name]["summary"]["mean_final_feature_distance"] is None
    assert "mean final feature distance not measured (no model)" in capsys.readouterr().out
    with pytest.raises(PlanningSetupError, match="baselines alone: pass --size"):
        plan_toward_goals(GoalPlanningSettings(None, "Reacher-v5", **SMALL, baseline=["zero"]))
    with pytest.raises(PlanningSetupError, match="no model folder and no --baseline: nothing to run"):
        plan_toward_goals(GoalPlanningSettings(None, "Reacher-v5", **SMALL, size=MODEL_SIZE))


def test_planning_toward_one_goal_image_reports_the_feature_distance_only(model_dir, tmp_path, capsys):
    goal_image = tmp_path / "goal.png"
    env = make_env("Reacher-v5", size=MODEL_SIZE)
    Image.fromarray(goal_task_for("Reacher-v5").make_goal(env, seed=9, size=MODEL_SIZE).image).save(goal_image)
    env.close()
    del env  # freed before the run makes its own
    report = plan_toward_goals(GoalPlanningSettings(model_dir, "Reacher-v5", goal_image=goal_image, **SMALL, planner="mppi", std=0.3))
    summary = report["policies"]["planned"]["summary"]
    assert capsys.readouterr().out.splitlines() == [
        f"Reacher-v5, 2 goals ({goal_image}), 3 steps, 16 px frames",
        f"planned: success not defined for an image goal; mean final feature distance {summary['mean_final_feature_distance']:.4f} "
        f"(model energy); {summary['seconds_per_action']:.3f} s per action",
    ]
    assert summary["success_rate"] is summary["success_interval"] is None
    assert report["goal"] == str(goal_image) and report["task"]["success_thresholds"] is None
    assert report["planner"]["name"] == "mppi" and report["planner"]["noise_std"] == 0.3
    episodes = report["policies"]["planned"]["episodes"]
    assert all(episode["success"] is None and episode["final_feature_distance"] >= 0 for episode in episodes)


@pytest.mark.parametrize(
    "search, expected",
    [
        (dict(planner="cem"), CEMConfig(seed=0, init_std=0.5, elites=32)),
        (
            dict(planner="cem", seed=3, horizon=4, samples=64, iterations=2, std=0.2),
            CEMConfig(horizon=4, samples=64, iterations=2, seed=3, init_std=0.2, elites=8),
        ),
        (dict(planner="cem", samples=12), CEMConfig(samples=12, seed=0, init_std=0.5, elites=1)),
        (dict(planner="mppi"), MPPIConfig(seed=0, noise_std=0.5)),
        (
            dict(planner="mppi", seed=3, horizon=4, samples=64, iterations=2, std=0.2),
            MPPIConfig(horizon=4, samples=64, iterations=2, seed=3, noise_std=0.2),
        ),
    ],
)
def test_the_planner_config_is_the_one_the_flags_always_gave(search, expected):
    """The configs of the if-chain `reverie plan` had: the std sets CEM's init_std (with an elite
    per 8 samples) or MPPI's noise_std, a quarter of the action range unless given."""
    settings = GoalPlanningSettings("model", "Reacher-v5", **search)
    assert planner_config(settings, LOW, HIGH) == expected


def test_an_unknown_planner_fails_before_the_model_loads_and_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match=r"unknown planner 'nope'; known: cem, mppi"):
        plan_toward_goals(GoalPlanningSettings(tmp_path / "missing", "Reacher-v5", planner="nope"))


@pytest.mark.parametrize(
    "settings, error, message",
    [
        (dict(env_id="Reacher-v5", episodes=0), PlanningSetupError, "--episodes must be at least 1, got 0"),
        (dict(env_id="Reacher-v5", baseline=["random", "nope"]), PlanningSetupError, "baseline 'nope' is not one of random, zero, oracle"),
        (dict(env_id="Reacher-v5", baseline=["zero", "zero"]), PlanningSetupError, "baselines zero, zero: each at most once"),
        (dict(env_id="Reacher-v5", goal_image="goal.png", baseline="oracle"), PlanningSetupError, "baseline 'oracle' plans toward the goal's true state"),
        (dict(env_id="CartPole-v1"), GoalError, "no goal task for CartPole-v1"),
        (dict(env_id="Reacher-v5"), FileNotFoundError, "not a model folder"),
    ],
)
def test_setup_errors_name_what_does_not_fit(tmp_path, settings, error, message):
    with pytest.raises(error, match=message):
        plan_toward_goals(GoalPlanningSettings(tmp_path / "missing", **settings))


def test_one_baseline_name_or_several_are_kept_as_a_tuple():
    assert GoalPlanningSettings("model", "Reacher-v5", baseline="random").baseline == ("random",)
    assert GoalPlanningSettings("model", "Reacher-v5", baseline=["random", "oracle"]).baseline == ("random", "oracle")
    assert GoalPlanningSettings("model", "Reacher-v5").baseline == ()
