"""The quickstart chain end to end at its tiny scale: record, unlabeled video, V-JEPA pretraining,
V-JEPA 2-AC post-training, planning against the random baseline, the report; then a rerun that
skips every finished stage."""

import dataclasses
import json
import time

import pytest

from reverie.recipes.quickstart import plan_commands, run, stages, SCALES


def test_tiny_quickstart_runs_end_to_end_and_resumes(tmp_path):
    summary = run(tmp_path, "tiny")

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    for policy in ("plan", "random"):
        for strict in ("", "_strict"):  # reached at some step, and held at the end (never more often)
            assert 0.0 <= saved[f"{policy}_success_rate_at_end{strict}"] <= saved[f"{policy}_success_rate{strict}"] <= 1.0
    assert saved["success_distance"] == SCALES["tiny"].success_distance and saved["strict_success_distance"] == 0.02
    assert saved["episodes"] == {
        "recorded_with_actions": 6,
        "recorded_random": 3,
        "recorded_scripted": 3,
        "unlabeled_videos": 3,
        "planning_goals": 2,
    }
    assert set(saved["wall_s"]) >= {"record", "video", "pretrain", "posttrain", "plan", "total"}
    assert len(saved["final_distances"]["planned"]) == len(saved["final_distances"]["random"]) == 2
    assert all(closest <= final for name in ("planned", "random") for closest, final in zip(saved["closest_distances"][name], saved["final_distances"][name]))
    assert saved["planner"]["horizon"] == SCALES["tiny"].horizon
    first = SCALES["tiny"].goal_seed  # two plan processes, one goal each, merged in goal order
    assert saved["goal_seeds"] == [first, first + 1] and sorted(p.name for p in (tmp_path / "plan").iterdir()) == ["part-0.json", "part-1.json", "plan.json", "planning.gif"]
    assert "true simulator state" in saved["success_criterion"]

    report = (tmp_path / "report.md").read_text()
    assert "Success criterion" in report and "plan/planning.gif" in report
    for picture in ("vjepa_loss.png", "vjepa_ac_loss.png"):
        assert (tmp_path / picture).read_bytes().startswith(b"\x89PNG")
        assert picture in report
    assert (tmp_path / "plan" / "planning.gif").read_bytes().startswith(b"GIF8")

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
    assert ["--gif" in command for command in commands] == [True, False]
    with pytest.raises(ValueError, match="plan_workers=6"):
        plan_commands(tmp_path / "model", tmp_path / "plan", dataclasses.replace(scale, plan_workers=6))
