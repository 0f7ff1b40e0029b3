"""LeRobot datasets in (`lerobot_import`) and out (`lerobot_export`), on the folders of
`lerobot_folders.py`. Hostile datasets and crashing decoders are in `test_importer.py`; unsafe
shard metadata and `--overwrite` in `test_exporter.py`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_folders import CAMERAS, FPS, HEIGHT, LENGTHS, TASKS, WIDTH, frame_of, imported, read_colours, write_mp4, write_v21, write_v30
from reverie.cli import export_lerobot
from reverie.cli.main import main
from reverie.shards.episodes import Episode, clip_starts, episode_samples
from reverie.pipelines.lerobot.exporter import LeRobotExportConfig, run_lerobot_export
from reverie.shards.manifest import read_manifest, write_manifest
from reverie.shards.episode_reader import shard_episodes, shard_folder, shard_samples
from reverie.shards.sink import ShardSink


@pytest.mark.parametrize("write", [write_v30, write_v21], ids=["v3.0", "v2.1"])
def test_import_aligns_every_frame_with_its_action_and_state(write, tmp_path):
    dataset = write(tmp_path / "dataset")
    lines = imported(dataset, tmp_path / "out")
    assert [line["path"] for line in lines] == [f"{dataset}#episode={e}" for e in range(3)]
    assert [line["status"] for line in lines] == ["ok"] * 3
    assert [line["clips"] for line in lines] == [len(clip_starts(n, 4)) for n in LENGTHS]
    episodes = list(shard_episodes(tmp_path / "out"))
    assert [episode.meta["episode"] for episode, _ in episodes] == [0, 1, 2]
    for episode, cameras in episodes:
        e = episode.meta["episode"]
        assert episode.frames.shape == (LENGTHS[e], 32, 32, 3) and list(cameras) == ["front", "wrist"]
        np.testing.assert_array_equal(episode.actions, np.stack([np.full(LENGTHS[e], e), np.arange(LENGTHS[e])], 1))
        np.testing.assert_array_equal(episode.states[:, :2], episode.actions)
        for name, blue in zip(cameras, CAMERAS.values()):
            colours = read_colours(cameras[name])
            np.testing.assert_allclose(colours[:, 0], 40 * e + 20, atol=4)
            np.testing.assert_allclose(colours[:, 1], 10 * episode.actions[:, 1] + 10, atol=4)
            np.testing.assert_allclose(colours[:, 2], blue, atol=4)
        assert episode.meta["cameras"] == {"front": "observation.images.front", "wrist": "observation.images.wrist"}
        assert episode.meta["task"] == TASKS[e % 2] and episode.meta["robot_type"] == "so100"
        assert episode.truncated[-1] and not episode.truncated[:-1].any() and not episode.terminated.any()


def test_a_missing_video_fails_only_its_episode(tmp_path):
    dataset = write_v30(tmp_path / "dataset", video_file=(0, 0, 1))
    (dataset / "videos" / "observation.images.wrist" / "chunk-000" / "file-001.mp4").unlink()
    lines = imported(dataset, tmp_path / "out")
    assert [line["status"] for line in lines] == ["ok", "ok", "failed"]
    assert [line["clips"] for line in lines] == [len(clip_starts(LENGTHS[0], 4)), len(clip_starts(LENGTHS[1], 4)), 0]
    missing = "videos/observation.images.wrist/chunk-000/file-001.mp4"
    assert lines[2]["reason"] == f"episode 2, observation.images.wrist: missing video {missing}"
    assert [episode.meta["episode"] for episode, _ in shard_episodes(tmp_path / "out")] == [0, 1]


def test_timestamps_off_by_more_than_half_a_frame_fail_their_episode(tmp_path):
    """Episode 0 would take episode 1's first frame; episode 1, last in its file, runs past the end."""
    dataset = write_v30(tmp_path / "dataset", video_file=(0, 0, 1), shift={0: 0.6 / FPS, 1: 0.6 / FPS})
    lines = imported(dataset, tmp_path / "out")
    assert [line["status"] for line in lines] == ["failed", "failed", "ok"]
    first, second = lines[0]["reason"], lines[1]["reason"]
    assert first.startswith("episode 0, observation.images.front: frame 11") and "outside the episode's" in first
    assert second.startswith("episode 1, observation.images.front: frame 8") and "more than half a frame" in second
    video = "videos/observation.images.front/chunk-000/file-000.mp4"
    assert video in first and video in second


def clip_keys(out: Path) -> list[str]:
    return [json.loads(sample["json"])["key"] for sample in shard_samples(shard_folder(out))]


def test_a_resumed_import_writes_each_clip_once(tmp_path):
    dataset = write_v30(tmp_path / "dataset")
    full = imported(dataset, tmp_path / "full", shard_max_count=2)
    out = tmp_path / "resumed"
    imported(dataset, out, shard_max_count=2)
    # As a kill during episode 2 leaves it: episodes 1 and 2 not in the manifest, the open shard a .tmp.
    write_manifest(out / "manifest.jsonl", read_manifest(out / "manifest.jsonl")[:1])
    last = max((out / "shards").glob("*.tar"))
    last.rename(last.with_name(last.name + ".tmp"))
    resumed = imported(dataset, out, shard_max_count=2)
    assert [line["path"] for line in resumed] == [line["path"] for line in full]
    assert clip_keys(out) == clip_keys(tmp_path / "full")


def test_export_then_import_gives_back_the_episodes(tmp_path):
    imported(write_v30(tmp_path / "dataset"), tmp_path / "first")
    summary = run_lerobot_export(LeRobotExportConfig(tmp_path / "first", tmp_path / "lerobot", repo_id="test/export"))
    assert summary == {"out": str(tmp_path / "lerobot"), "episodes": 3, "frames": sum(LENGTHS), "tasks": 2}
    root = tmp_path / "lerobot"
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and info["total_frames"] == sum(LENGTHS)
    assert info["features"]["observation.images.wrist"]["info"]["video.codec"] == "h264"
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    ends = np.cumsum(LENGTHS) / FPS
    assert [row["videos/observation.images.front/to_timestamp"] for row in episodes] == pytest.approx(ends)
    assert [row["tasks"] for row in episodes] == [[TASKS[0]], [TASKS[1]], [TASKS[0]]]
    tasks = pq.read_table(root / "meta" / "tasks.parquet")
    assert tasks["__index_level_0__"].to_pylist() == list(TASKS) and tasks["task_index"].to_pylist() == [0, 1]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]  # pandas reads it as the index
    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert {"action", "observation.state", "observation.images.front"} <= set(stats)

    imported(root, tmp_path / "second")
    pairs = list(zip(shard_episodes(tmp_path / "first"), shard_episodes(tmp_path / "second"), strict=True))
    assert len(pairs) == 3
    for (before, before_cameras), (after, after_cameras) in pairs:
        for name in before_cameras:
            assert np.abs(before_cameras[name].astype(int) - after_cameras[name]).mean() < 2  # one H.264 round trip
        for field in ("actions", "states", "rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(before, field), getattr(after, field))
        for field in ("cameras", "task", "action_space", "robot_type"):
            assert before.meta[field] == after.meta[field]


def test_recorded_episodes_export_with_discrete_actions_and_overlapping_clips(tmp_path):
    """Clips cut with a stride shorter than a clip overlap; the export takes each frame once."""
    sink = ShardSink(tmp_path / "record" / "shards", tmp_path / "record" / "manifest.jsonl")
    recorded = []
    for index, length in enumerate((11, 7)):
        t = np.arange(length)
        frames = np.stack([frame_of(index, step, 0)[:32, :32] for step in t])
        ended = t == length - 1
        space = {"type": "discrete", "n": 3, "start": 0}
        meta = {"source": "env:Test-v0", "env_id": "Test-v0", "episode": index, "fps": 15, "action_space": space}
        episode = Episode(frames, t % 3, t.astype(np.float32) / 10, ended & (index == 0), ended & (index == 1), None, meta)
        recorded.append(episode)
        shards = [sink.write(sample) for sample in episode_samples(episode, f"test_e{index:06d}", 4, 3, 15, "npy")]
        sink.add_line({"path": f"env:Test-v0#episode={index}", "status": "ok"}, shards)
    sink.close()
    parser = argparse.ArgumentParser()
    export_lerobot.add_parser(parser)
    assert export_lerobot.run(parser.parse_args([str(tmp_path / "record"), "--out", str(tmp_path / "lerobot")])) == 0
    info = json.loads((tmp_path / "lerobot" / "meta" / "info.json").read_text())
    assert "observation.image" in info["features"] and info["features"]["action"]["dtype"] == "int64"
    assert info["robot_type"] == "Test-v0" and info["fps"] == 15

    imported(tmp_path / "lerobot", tmp_path / "back", size=32)
    pairs = list(zip(recorded, shard_episodes(tmp_path / "back"), strict=True))
    assert [after.meta["episode"] for _, (after, _) in pairs] == [0, 1]
    for before, (after, _) in pairs:
        assert after.actions.dtype == np.int64 and after.meta["action_space"] == before.meta["action_space"]
        np.testing.assert_array_equal(after.actions, before.actions)
        np.testing.assert_array_equal(after.terminated, before.terminated)
        np.testing.assert_array_equal(after.truncated, before.truncated)
        np.testing.assert_allclose(after.rewards, before.rewards)
        np.testing.assert_allclose(read_colours(after.frames), read_colours(before.frames), atol=4)


def test_export_refuses_to_overwrite_and_reports_no_episodes(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        run_lerobot_export(LeRobotExportConfig(tmp_path, tmp_path / "out"))
    with pytest.raises(ValueError, match="no episodes"):
        run_lerobot_export(LeRobotExportConfig(tmp_path, tmp_path / "lerobot"))


def test_cli_ingests_a_lerobot_folder_and_exports_it_back(tmp_path):
    dataset = write_v30(tmp_path / "dataset")
    out = tmp_path / "out"
    flags = ["--size", "32", "--clip-frames", "4", "--format", "npy", "--no-progress", "--strict"]
    assert main(["ingest", str(dataset), "--out", str(out), *flags]) == 0
    lines = read_manifest(out / "manifest.jsonl")
    assert [(line["path"], line["status"]) for line in lines] == [(f"{dataset}#episode={e}", "ok") for e in range(3)]
    assert all(shard.startswith("lerobot-") for line in lines for shard in line["shards"])
    episodes = list(shard_episodes(out))
    for episode, _ in episodes:
        e = episode.meta["episode"]
        assert episode.frames.shape == (LENGTHS[e], 32, 32, 3)
        np.testing.assert_array_equal(episode.actions, np.stack([np.full(LENGTHS[e], e), np.arange(LENGTHS[e])], 1))

    assert main(["export-lerobot", str(out), "--out", str(tmp_path / "lerobot"), "--repo-id", "test/cli"]) == 0
    assert main(["ingest", str(tmp_path / "lerobot"), "--out", str(tmp_path / "back"), *flags]) == 0
    back = [episode for episode, _ in shard_episodes(tmp_path / "back")]
    assert [episode.meta["episode"] for episode in back] == [0, 1, 2]
    for (before, _), after in zip(episodes, back, strict=True):
        np.testing.assert_array_equal(before.actions, after.actions)
        np.testing.assert_array_equal(before.states, after.states)


def test_cli_refuses_a_lerobot_folder_mixed_with_videos(tmp_path, capsys):
    dataset = write_v30(tmp_path / "dataset")
    video = tmp_path / "clip.mp4"
    write_mp4(video, [frame_of(0, t, 0) for t in range(8)])
    assert main(["ingest", str(dataset), str(video), "--out", str(tmp_path / "out")]) == 2
    assert "separate calls" in " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert not (tmp_path / "out").exists()


def test_import_reads_a_dataset_that_lerobot_wrote(tmp_path):
    """Only where lerobot is installed (it pins torch < 2.11, so it is not a test dependency)."""
    lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    video = {"dtype": "video", "shape": (HEIGHT, WIDTH, 3), "names": ["height", "width", "channels"]}
    features = {key: video for key in CAMERAS} | {
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["e", "t"]},
    }
    dataset = lerobot_dataset.LeRobotDataset.create("test/written", fps=FPS, features=features, root=tmp_path / "dataset")
    for episode, length in enumerate(LENGTHS):
        for t in range(length):
            frame = {key: frame_of(episode, t, blue) for key, blue in CAMERAS.items()}
            frame |= {"observation.state": np.array([episode, t, 0.5], np.float32), "action": np.array([episode, t], np.float32)}
            dataset.add_frame(frame | {"task": TASKS[episode % 2]})
        dataset.save_episode()
    dataset.finalize()
    assert [line["status"] for line in imported(tmp_path / "dataset", tmp_path / "out")] == ["ok"] * 3
    for episode, cameras in shard_episodes(tmp_path / "out"):
        e = episode.meta["episode"]
        np.testing.assert_array_equal(episode.actions[:, 1], np.arange(LENGTHS[e]))
        for name, blue in zip(cameras, CAMERAS.values()):
            expected = [(40 * e + 20, 10 * t + 10, blue) for t in range(LENGTHS[e])]
            np.testing.assert_allclose(read_colours(cameras[name]), expected, atol=6)


def test_lerobot_loads_the_export(tmp_path):
    """Only where lerobot is installed: its own loader reads what `export-lerobot` wrote."""
    lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    imported(write_v30(tmp_path / "dataset"), tmp_path / "shards")
    run_lerobot_export(LeRobotExportConfig(tmp_path / "shards", tmp_path / "lerobot"))
    dataset = lerobot_dataset.LeRobotDataset("test/export", root=tmp_path / "lerobot")
    assert (dataset.num_episodes, dataset.num_frames, dataset.meta.video_keys) == (3, sum(LENGTHS), list(CAMERAS))
    for index in range(len(dataset)):
        item = dataset[index]
        e, t = item["action"].tolist()
        assert (item["episode_index"], item["frame_index"], item["task"]) == (e, t, TASKS[int(e) % 2])
        for key, blue in CAMERAS.items():  # (3, H, W) in [0, 1]
            np.testing.assert_allclose(item[key].mean((1, 2)).numpy() * 255, (40 * e + 20, 10 * t + 10, blue), atol=6)
