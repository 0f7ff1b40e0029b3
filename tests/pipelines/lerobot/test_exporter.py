"""`run_lerobot_export` against shard metadata that would write outside `--out`, and `--overwrite`
killed or failing at any moment: a complete copy stays at `--out`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lerobot_folders import frame_of
from reverie.pipelines.lerobot import exporter
from reverie.pipelines.lerobot.exporter import LeRobotExportConfig, run_lerobot_export
from reverie.shards.episodes import Episode, episode_samples
from reverie.shards.sink import ShardSink


def recorded_shards(folder: Path, camera_key: str = "observation.image", lengths=(6, 5)) -> Path:
    """Episode shards of a one-camera recording whose clip metadata names the camera `camera_key`."""
    sink = ShardSink(folder / "shards", folder / "manifest.jsonl")
    for index, length in enumerate(lengths):
        t = np.arange(length)
        frames = np.stack([frame_of(index, step, 0)[:16, :16] for step in t])
        meta = {"source": "env:Test-v0", "env_id": "Test-v0", "episode": index, "fps": 10, "action_space": None}
        episode = Episode(frames, None, np.zeros(length, np.float32), t == length - 1, np.zeros(length, bool), None, meta)
        shards = []
        for sample in episode_samples(episode, f"test_e{index:06d}", 3, None, 10, "npy"):
            sample["json"]["cameras"] = {"image": camera_key}
            shards.append(sink.write(sample))
        sink.add_line({"path": f"env:Test-v0#episode={index}", "status": "ok"}, shards)
    sink.close()
    return folder


def folder_files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize("camera_key", ["../../escaped", "/tmp/escaped", "videos/../../escaped", "..", "."])
def test_a_camera_key_that_would_leave_out_is_refused_naming_the_clip(camera_key, tmp_path):
    shards = recorded_shards(tmp_path / "record", camera_key)
    before = folder_files(tmp_path)
    with pytest.raises(ValueError) as refused:
        run_lerobot_export(LeRobotExportConfig(shards, tmp_path / "work" / "lerobot"))
    message = str(refused.value)
    assert "env:Test-v0#episode=0" in message and "clip test_e000000_000000" in message and repr(camera_key) in message
    assert folder_files(tmp_path) - before <= {"work"}  # nothing written, not even the partial export


def exported(shards: Path, out: Path, repo_id: str, **settings) -> dict:
    return run_lerobot_export(LeRobotExportConfig(shards, out, repo_id=repo_id, **settings))


def assert_complete_export(out: Path, repo_ids: set[str]) -> None:
    """`out` is a whole export: its metadata, data and video, and the card of one of `repo_ids`."""
    assert json.loads((out / "meta" / "info.json").read_text())["total_episodes"] == 2
    assert (out / "data" / "chunk-000" / "file-000.parquet").is_file()
    assert (out / "videos" / "observation.image" / "chunk-000" / "file-000.mp4").is_file()
    assert any(f"# {repo_id}\n" in (out / "README.md").read_text() for repo_id in repo_ids)


class Killed(BaseException):
    """What a SIGKILL at a given file system step leaves: the steps before it done, none after."""


@pytest.mark.parametrize("kill_at", range(1, 6))
def test_a_kill_during_overwrite_leaves_a_complete_copy_at_out(kill_at, tmp_path, monkeypatch):
    shards, out = recorded_shards(tmp_path / "record"), tmp_path / "lerobot"
    exported(shards, out, "test/first")
    steps = []

    def step(function):
        def counted(*args, **kwargs):
            steps.append(function.__name__)
            if len(steps) == kill_at:
                raise Killed
            return function(*args, **kwargs)

        return counted

    monkeypatch.setattr(exporter.os, "replace", step(exporter.os.replace))
    monkeypatch.setattr(exporter.shutil, "rmtree", step(exporter.shutil.rmtree))
    try:
        exported(shards, out, "test/second", overwrite=True)
    except Killed:
        pass
    monkeypatch.undo()
    with pytest.raises(FileExistsError):  # the next run finds --out there, put back if it was moved aside
        exported(shards, out, "test/third")
    assert_complete_export(out, {"test/first", "test/second"})
    exported(shards, out, "test/fourth", overwrite=True)
    assert_complete_export(out, {"test/fourth"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lerobot", "record"]  # no partial or old copy left


def test_a_failed_overwrite_keeps_the_old_copy_and_leaves_no_partial(tmp_path):
    out = tmp_path / "lerobot"
    exported(recorded_shards(tmp_path / "record"), out, "test/first")
    with pytest.raises(ValueError, match="escaped"):
        exported(recorded_shards(tmp_path / "bad", "../escaped"), out, "test/second", overwrite=True)
    assert_complete_export(out, {"test/first"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad", "lerobot", "record"]


def test_overwrite_replaces_only_a_lerobot_dataset_and_never_the_shards(tmp_path):
    shards = recorded_shards(tmp_path / "record")
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(FileExistsError, match=f"{precious} is not a LeRobot dataset"):
        exported(shards, precious, "test/x", overwrite=True)
    assert (precious / "thesis.txt").read_text() == "years of work"
    (shards / "meta").mkdir()
    (shards / "meta" / "info.json").write_text("{}")  # looks like a LeRobot dataset, but holds the shards
    with pytest.raises(FileExistsError, match="holds the shards"):
        exported(shards, shards, "test/x", overwrite=True)
    assert len(list((shards / "shards").glob("*.tar"))) == 1


def test_overwrite_through_a_symlink_replaces_the_link_and_keeps_its_target(tmp_path):
    shards, target, out = recorded_shards(tmp_path / "record"), tmp_path / "elsewhere", tmp_path / "lerobot"
    exported(shards, target, "test/first")
    out.symlink_to(target)
    for repo_id in ("test/second", "test/third"):
        exported(shards, out, repo_id, overwrite=True)
        assert_complete_export(out, {repo_id})
    assert not out.is_symlink()
    assert_complete_export(target, {"test/first"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["elsewhere", "lerobot", "record"]
