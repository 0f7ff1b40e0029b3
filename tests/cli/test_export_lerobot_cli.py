"""`reverie export-lerobot SHARDS --out DIR`: flags reach the exporter with their defaults, the
summary line, and exit 1 naming an existing --out, an --out that --overwrite must not replace, or
shards without episodes. Exporting recorded episodes and loading them with LeRobot is in
`tests/pipelines/lerobot/test_lerobot.py`."""

from __future__ import annotations

import pytest

from reverie.cli import export_lerobot
from reverie.cli.main import main


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def exports(monkeypatch) -> list:
    calls = []

    def fake_export(config):
        calls.append(config)
        return {"episodes": 3, "frames": 120, "tasks": 1, "out": str(config.out)}

    monkeypatch.setattr(export_lerobot, "run_lerobot_export", fake_export)
    return calls


def test_defaults_reach_the_exporter_and_the_summary_is_printed(exports, tmp_path, capsys):
    assert main(["export-lerobot", str(tmp_path / "rec"), "--out", str(tmp_path / "lerobot")]) == 0
    (config,) = exports
    assert (config.shards, config.out) == (tmp_path / "rec", tmp_path / "lerobot")
    assert (config.fps, config.repo_id, config.robot_type, config.crf, config.overwrite) == (None, "reverie/export", None, 18, False)
    assert flat(capsys.readouterr().err) == f"3 episodes, 120 frames, 1 tasks -> {tmp_path / 'lerobot'}"


def test_flags_reach_the_exporter(exports, tmp_path):
    flags = ["--fps", "12.5", "--repo-id", "lab/arm", "--robot-type", "so100", "--crf", "23", "--overwrite"]
    assert main(["export-lerobot", str(tmp_path), "--out", str(tmp_path / "lerobot"), *flags]) == 0
    (config,) = exports
    assert (config.fps, config.repo_id, config.robot_type, config.crf, config.overwrite) == (12.5, "lab/arm", "so100", 23, True)


def test_an_existing_out_or_shards_without_episodes_exit_1_naming_them(tmp_path, capsys):
    shards, out = tmp_path / "shards", tmp_path / "lerobot"
    shards.mkdir(), out.mkdir()
    assert main(["export-lerobot", str(shards), "--out", str(out)]) == 1
    assert flat(capsys.readouterr().err) == f"reverie export-lerobot: {out} exists (--overwrite replaces it)"
    assert main(["export-lerobot", str(shards), "--out", str(tmp_path / "new")]) == 1
    assert flat(capsys.readouterr().err).startswith(f"reverie export-lerobot: no episodes in {shards}")
    assert not (tmp_path / "new").exists()


def test_overwrite_of_a_folder_that_is_not_a_lerobot_dataset_exits_1_naming_it(tmp_path, capsys):
    shards, out = tmp_path / "shards", tmp_path / "notes"
    shards.mkdir(), out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    assert main(["export-lerobot", str(shards), "--out", str(out), "--overwrite"]) == 1
    assert flat(capsys.readouterr().err).startswith(f"reverie export-lerobot: {out} is not a LeRobot dataset (no meta/info.json)")
    assert (out / "thesis.txt").read_text() == "years of work"


def test_out_is_required(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["export-lerobot", "shards"])
    assert exit.value.code == 2 and "--out" in capsys.readouterr().err
