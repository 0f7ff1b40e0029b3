"""The quickstart chain end to end at its tiny scale: record, unlabeled video, V-JEPA pretraining,
V-JEPA 2-AC post-training, planning beside the random, zero and oracle baselines, the report; then
a rerun that skips every finished stage. At the check scale (slow), planning must beat random
actions at the end of the episode."""

import dataclasses
import json
import time

import pytest

from reverie.planning.control import wilson_interval
from reverie.recipes.quickstart import SCALES, baseline_command, plan_commands, run, stages, summary_line
from reverie.recipes.quickstart_report import PlanMergeError, merge_plan_parts, rate_cell


def test_tiny_quickstart_runs_end_to_end_and_resumes(tmp_path):
    summary = run(tmp_path, "tiny")

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert list(saved["policies"]) == ["planned", "random", "zero", "oracle"]
    for prefix, name in (("plan", "planned"), ("random", "random")):  # the headline: at the end within 0.05 m
        policy = saved["policies"][name]
        assert saved[f"{prefix}_success_rate"] == policy["success_rate"] and saved[f"{prefix}_reach_rate"] == policy["reach_rate"]
        assert saved[f"{prefix}_success_interval"] == list(wilson_interval(round(2 * policy["success_rate"]), 2))
    for policy in saved["policies"].values():
        for strict in ("", "_strict"):  # held at the end never more often than reached at some step, nor within 0.02 more than 0.05
            assert 0.0 <= policy[f"success_rate{strict}"] <= policy[f"reach_rate{strict}"] <= 1.0
            assert policy[f"success_interval{strict}"][0] <= policy[f"success_rate{strict}"] <= policy[f"success_interval{strict}"][1]
        assert policy["success_rate_strict"] <= policy["success_rate"] and policy["seconds_per_action"] > 0
        assert policy["success_rate"] == sum(final < 0.05 for final in policy["final_distances"]) / 2
    assert saved["policies"]["oracle"]["seconds_per_action"] > saved["policies"]["zero"]["seconds_per_action"]
    assert saved["success_distance"] == SCALES["tiny"].success_distance and saved["strict_success_distance"] == 0.02
    assert saved["episodes"] == {
        "recorded_with_actions": 6,
        "recorded_random": 3,
        "recorded_scripted": 3,
        "unlabeled_videos": 3,
        "planning_goals": 2,
    }
    assert set(saved["wall_s"]) >= {"record", "video", "baselines", "pretrain", "posttrain", "plan", "total"}
    in_turn = ("record", "video", "pretrain", "posttrain", "plan")  # the baselines ran beside pretraining and post-training
    assert saved["wall_s"]["total"] == pytest.approx(sum(saved["wall_s"][name] for name in in_turn))
    for policy in saved["policies"].values():
        assert len(policy["final_distances"]) == 2 and all(closest <= final for closest, final in zip(policy["closest_distances"], policy["final_distances"]))
    assert saved["planner"]["horizon"] == SCALES["tiny"].horizon
    first = SCALES["tiny"].goal_seed  # two plan processes, one goal each, and the baselines' on both, merged in goal order
    assert saved["goal_seeds"] == [first, first + 1]
    assert sorted(p.name for p in (tmp_path / "plan").iterdir()) == ["baselines.gif", "part-0.json", "part-1.json", "part-baselines.json", "plan.json", "planning.gif"]
    merged = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert all([line["goal_seed"] for line in policy["episodes"]] == [first, first + 1] for policy in merged["policies"].values())
    assert "true simulator state" in saved["success_criterion"] and "after the last action" in saved["success_criterion"]
    assert summary_line(saved).startswith("success at the end") and "oracle" in summary_line(saved)

    report = (tmp_path / "report.md").read_text()
    assert "Success criterion" in report and "plan/planning.gif" in report and "**At the end of the episode, within 0.05 m" in report
    for row in ("| planned (CEM on the model) |", "| random actions |", "| zero action (holds the pose) |", "| oracle (the same CEM through the simulator) |"):
        assert row in report
    for picture in ("vjepa_loss.png", "vjepa_ac_loss.png"):
        assert (tmp_path / picture).read_bytes().startswith(b"\x89PNG")
        assert picture in report
    for gif in ("planning.gif", "baselines.gif"):
        assert (tmp_path / "plan" / gif).read_bytes().startswith(b"GIF8") and f"plan/{gif}" in report

    video_manifest = [json.loads(line) for line in (tmp_path / "video" / "manifest.jsonl").read_text().splitlines()]
    assert all(line["status"] == "ok" for line in video_manifest)

    assert all(stage.done() for stage in stages(tmp_path, SCALES["tiny"]))
    started = time.perf_counter()
    rerun = run(tmp_path, "tiny")
    assert time.perf_counter() - started < 10  # every stage skipped; only the report is written again
    assert {name: rerun["wall_s"][name] for name in ("record", "pretrain", "plan")} == {name: saved["wall_s"][name] for name in ("record", "pretrain", "plan")}


def test_plan_goals_are_split_into_consecutive_blocks_one_per_worker(tmp_path):
    scale = dataclasses.replace(SCALES["full"], plan_episodes=5, plan_workers=2)
    commands = plan_commands(tmp_path / "model", tmp_path / "plan", scale)
    blocks = [(int(command[command.index("--seed") + 1]), int(command[command.index("--episodes") + 1])) for command in commands]
    assert blocks == [(scale.goal_seed, 3), (scale.goal_seed + 3, 2)]
    assert ["--gif" in command for command in commands] == [True, False] and not any("--baseline" in command for command in commands)
    baselines = baseline_command(tmp_path / "plan", scale)  # without a model, on all the goals, with the oracle on the same budget
    assert "--env" in baselines and str(tmp_path / "model") not in baselines
    assert baselines[baselines.index("--baseline") + 1 :][:4] == ["random", "zero", "oracle", "--size"]
    assert (int(baselines[baselines.index("--seed") + 1]), int(baselines[baselines.index("--episodes") + 1])) == (scale.goal_seed, 5)
    for flag in ("--horizon", "--samples", "--iterations", "--success-distance"):
        assert all(command[command.index(flag) + 1] == baselines[baselines.index(flag) + 1] for command in commands)
    with pytest.raises(ValueError, match="plan_workers=6"):
        plan_commands(tmp_path / "model", tmp_path / "plan", dataclasses.replace(scale, plan_workers=6))


def plan_part(path, seed, policies, horizon=4):
    """A `reverie plan --json` report with one episode per goal seed for each policy."""
    lines = {name: [{"goal_seed": goal, "final_distance": 0.1} for goal in goals] for name, goals in policies.items()}
    path.write_text(json.dumps({"env": "e", "seed": seed, "steps": 5, "planner": {"name": "cem", "horizon": horizon, "seed": seed},
                                "policies": {name: {"summary": {}, "episodes": episodes} for name, episodes in lines.items()}}))
    return path


def test_the_planned_parts_and_the_baselines_merge_in_goal_order_and_must_agree(tmp_path):
    parts = [plan_part(tmp_path / "0.json", 10, {"planned": [10, 11]}), plan_part(tmp_path / "1.json", 12, {"planned": [12]}),
             plan_part(tmp_path / "b.json", 10, {"random": [10, 11, 12], "oracle": [10, 11, 12]})]
    merged = json.loads(merge_plan_parts(parts, tmp_path / "plan.json").read_text())
    assert {name: [line["goal_seed"] for line in policy["episodes"]] for name, policy in merged["policies"].items()} == {
        "planned": [10, 11, 12], "random": [10, 11, 12], "oracle": [10, 11, 12]}
    assert merged["seed"] == [10, 12, 10]
    with pytest.raises(PlanMergeError, match="policy random has goals"):
        merge_plan_parts(parts[:1] + parts[2:], tmp_path / "plan.json")
    other_budget = plan_part(tmp_path / "c.json", 10, {"random": [10, 11, 12]}, horizon=8)
    with pytest.raises(PlanMergeError, match="c.json: its search settings differ"):
        merge_plan_parts(parts[:2] + [other_budget], tmp_path / "plan.json")


def test_a_rate_is_shown_with_its_count_and_wilson_interval():
    assert rate_cell(7 / 40, list(wilson_interval(7, 40)), 40) == "7/40 18% (9-32%)"
    assert rate_cell(0.0, list(wilson_interval(0, 20)), 20) == "0/20 0% (0-16%)"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_at_the_check_scale_planning_beats_random_actions_at_the_end(tmp_path):
    """The chain at `SCALES["check"]`, the full recording and training with 20 held-out goals (about
    13 minutes on 2 cores; 946 s with other work beside it). Planned must end within 0.05 m of more
    goals than random actions do, and the oracle (the same CEM through the simulator) of at least as
    many as planned. With 20 goals the 95% Wilson intervals are wide: 0/20 is 0-16%, 1/20 is 1-24%,
    6/20 is 15-52%, 20/20 is 84-100%; the check is one-sided (more goals than random), not that the
    intervals part. Last run: planned 6/20, random 0/20, holding still 1/20, oracle 20/20. Shorter
    training fails it: 120 episodes and 800 + 600 steps planned 0/20 and reached no goal at any step."""
    summary = run(tmp_path, "check")
    rates = {name: policy["success_rate"] for name, policy in summary["policies"].items()}
    assert summary["plan_episodes"] == SCALES["check"].plan_episodes
    assert rates["planned"] > rates["random"], summary_line(summary)
    assert rates["oracle"] >= rates["planned"], summary_line(summary)
