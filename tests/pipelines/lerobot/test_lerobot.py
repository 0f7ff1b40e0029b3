"""LeRobot datasets in (`lerobot_import`) and out (`lerobot_export`).

The fixture folders are laid out as lerobot 0.4's `LeRobotDataset.create(...)` writes them (v3.0:
episodes back to back in one mp4 per camera) or as v2.1 did (one mp4 per episode), written here
with pyarrow and PyAV. Frame t of episode e shows red 40e + 20, green 10t + 10, and blue 0 on the
front camera, 200 on the wrist one; its action is (e, t) and its state (e, t, 0.5).
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reverie.cli import export_lerobot
from reverie.cli.main import main
from reverie.shards.episodes import Episode, clip_starts, episode_samples
from reverie.pipelines.lerobot.exporter import LeRobotExportConfig, run_lerobot_export
from reverie.pipelines.lerobot.importer import LeRobotImportConfig, run_lerobot_import
from reverie.shards.manifest import read_manifest, write_manifest
from reverie.shards.episode_reader import shard_episodes, shard_folder, shard_samples
from reverie.shards.sink import ShardSink

FPS, HEIGHT, WIDTH = 10, 48, 64
V30_PATHS = (  # info.json's data_path and video_path
    "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
    "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
)
V21_PATHS = (
    "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
    "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
)
INDEX_COLUMNS = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64"}
INDEX_COLUMNS |= {"task_index": "int64"}
LENGTHS = (12, 9, 15)
CAMERAS = {"observation.images.front": 0, "observation.images.wrist": 200}  # video key -> blue level
TASKS = ("pick the cube", "push the cube")


def frame_of(episode: int, t: int, blue: int) -> np.ndarray:
    frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    frame[...] = (40 * episode + 20, 10 * t + 10, blue)
    return frame


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        stream.options = {"crf": "10", "g": "4"}  # keyframes every 4 frames: the importer must seek
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def float_lists(values: np.ndarray) -> pa.Array:
    """(N, D) -> N fixed-size lists of D float32, as LeRobot stores vector features."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def frame_table(episode: int, first_index: int, shift: float = 0.0) -> pa.Table:
    """Episode `episode`'s frame rows; `shift` seconds added to its timestamps."""
    length = LENGTHS[episode]
    t = np.arange(length)
    columns = {
        "observation.state": float_lists(np.stack([np.full(length, episode), t, np.full(length, 0.5)], 1)),
        "action": float_lists(np.stack([np.full(length, episode), t], 1)),
    }
    columns |= {"timestamp": pa.array(t / FPS + shift, pa.float32()), "frame_index": pa.array(t, pa.int64())}
    columns |= {"episode_index": pa.array([episode] * length, pa.int64()), "index": pa.array(first_index + t, pa.int64())}
    return pa.table(columns | {"task_index": pa.array([episode % 2] * length, pa.int64())})


def write_info(root: Path, version: str, paths: tuple[str, str]) -> None:
    video = {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "names": ["height", "width", "channels"]}
    features = {key: video for key in CAMERAS}
    features |= {"observation.state": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]}}
    features |= {"action": {"dtype": "float32", "shape": [2], "names": ["e", "t"]}}
    features |= {name: {"dtype": dtype, "shape": [1], "names": None} for name, dtype in INDEX_COLUMNS.items()}
    info = {"codebase_version": version, "robot_type": "so100", "total_episodes": len(LENGTHS), "total_frames": sum(LENGTHS)}
    info |= {"chunks_size": 1000, "fps": FPS, "data_path": paths[0], "video_path": paths[1], "features": features}
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))


def write_v30(root: Path, video_file: tuple[int, ...] = (0, 0, 0), shift: dict[int, float] | None = None) -> Path:
    """Episode e's frames go to videos/KEY/chunk-000/file-{video_file[e]:03d}.mp4, back to back."""
    write_info(root, "v3.0", V30_PATHS)
    starts = np.cumsum((0,) + LENGTHS)
    tables = [frame_table(e, starts[e], (shift or {}).get(e, 0.0)) for e in range(len(LENGTHS))]
    (root / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.concat_tables(tables), root / "data" / "chunk-000" / "file-000.parquet")
    rows = []
    for episode, length in enumerate(LENGTHS):
        row = {"episode_index": episode, "tasks": [TASKS[episode % 2]], "length": length}
        row |= {"data/chunk_index": 0, "data/file_index": 0}
        row |= {"dataset_from_index": int(starts[episode]), "dataset_to_index": int(starts[episode + 1])}
        from_frame = sum(LENGTHS[e] for e in range(episode) if video_file[e] == video_file[episode])
        for key in CAMERAS:
            row |= {f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": video_file[episode]}
            row |= {f"videos/{key}/from_timestamp": from_frame / FPS}
            row |= {f"videos/{key}/to_timestamp": (from_frame + length) / FPS}
        rows.append(row)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": list(TASKS)}), root / "meta" / "tasks.parquet")
    for key, blue in CAMERAS.items():
        for file_index in sorted(set(video_file)):
            frames = [frame_of(e, t, blue) for e, n in enumerate(LENGTHS) if video_file[e] == file_index for t in range(n)]
            write_mp4(root / "videos" / key / "chunk-000" / f"file-{file_index:03d}.mp4", frames)
    return root


def write_v21(root: Path) -> Path:
    write_info(root, "v2.1", V21_PATHS)
    episodes = [{"episode_index": e, "tasks": [TASKS[e % 2]], "length": n} for e, n in enumerate(LENGTHS)]
    tasks = [{"task_index": index, "task": task} for index, task in enumerate(TASKS)]
    (root / "meta" / "episodes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in episodes))
    (root / "meta" / "tasks.jsonl").write_text("".join(json.dumps(line) + "\n" for line in tasks))
    starts = np.cumsum((0,) + LENGTHS)
    (root / "data" / "chunk-000").mkdir(parents=True)
    for episode, length in enumerate(LENGTHS):
        pq.write_table(frame_table(episode, starts[episode]), root / "data" / "chunk-000" / f"episode_{episode:06d}.parquet")
        for key, blue in CAMERAS.items():
            frames = [frame_of(episode, t, blue) for t in range(length)]
            write_mp4(root / "videos" / "chunk-000" / key / f"episode_{episode:06d}.mp4", frames)
    return root


def imported(dataset: Path, out: Path, **overrides) -> list[dict]:
    settings = {"size": 32, "clip_frames": 4, "clip_format": "npy", "progress": False} | overrides
    return run_lerobot_import(LeRobotImportConfig([dataset], out, **settings))


def read_colours(frames: np.ndarray) -> np.ndarray:
    """(L, 3) mean red, green, blue of each frame."""
    return frames.reshape(len(frames), -1, 3).mean(1)


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
