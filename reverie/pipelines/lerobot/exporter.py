"""Episode shards out as a LeRobot v3.0 dataset folder: `reverie export-lerobot SHARDS --out DIR`.

Clips are put back together into whole episodes (`shard_episodes.py`). Each camera becomes a
`video` feature (`observation.images.NAME`, or the key recorded at import; `observation.image`
for a recording with one unnamed camera), encoded H.264 yuv420p with a keyframe every `gop`
frames (LeRobot's `g=2`: cheap random access), several episodes back to back per mp4. Actions go
to `action` (with reverie's action space beside the feature), states to `observation.state`,
rewards to `next.reward`, episode ends to `next.done`, and cut-off ends also to `next.truncated`,
so a cut-off episode stays distinguishable from a finished one.

The folder is written as `.DIR.partial` beside DIR and renamed into place when complete; nothing
else is written, whatever the shards say: a camera key names a folder (`videos/KEY/`), so one that
is not a plain name (`format.is_path_part`) stops the export, naming the episode and its clip.

`overwrite` replaces only a LeRobot dataset (a folder with meta/info.json) that does not hold the
shards being read, and never leaves DIR without a complete copy: the old DIR is moved aside to
`.DIR.replaced`, the new one renamed in, and only then the old one deleted. A run killed in between
leaves `.DIR.replaced`, which the next run renames back to DIR if DIR is missing (else deletes).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reverie.shards.episodes import Episode
from reverie.pipelines.lerobot.format import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    EPISODES_PATH,
    INDEX_FEATURES,
    VIDEO_PATH,
    aggregate_stats,
    camera_stats,
    feature_stats,
    is_path_part,
    stats_to_json,
)
from reverie.shards.episode_reader import shard_episodes, shard_folder, where_of


@dataclass(frozen=True)
class LeRobotExportConfig:
    shards: Path  # a folder of shards, or a folder with `shards/` in it
    out: Path
    fps: float | None = None  # the rate written to info.json (frames are not resampled); default: the clips' fps
    repo_id: str = "reverie/export"
    robot_type: str | None = None  # default: the clips' robot_type or env_id
    vcodec: str = "libx264"
    crf: int = 18
    gop: int = 2
    video_file_mb: int = 200  # start new data and video files past this size
    overwrite: bool = False


def check_camera_keys(episode: Episode) -> None:
    """Refuse a camera key that would not stay one folder under videos/ (`../..`, `/x`, `a/b`)."""
    for name, key in episode.meta["cameras"].items():
        if not is_path_part(key):
            clip = (episode.meta.get("clips") or ["?"])[0]
            raise ValueError(
                f"{where_of(episode.meta)}, clip {clip}: camera {name!r} has the key {key!r}, which would name a "
                "folder of the export; a key is letters, digits, '_', '.' and '-', and not '.' or '..'"
            )


def episode_features(episode: Episode, cameras: dict[str, np.ndarray], fps: float, codec: str) -> dict:
    """The LeRobot `features` of info.json that this episode fills."""
    check_camera_keys(episode)
    features = {}
    for name, key in episode.meta["cameras"].items():
        height, width = cameras[name].shape[1:3]
        video = {"video.height": height, "video.width": width, "video.codec": codec, "video.pix_fmt": "yuv420p"}
        video |= {"video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}
        names = ["height", "width", "channels"]
        features[key] = {"dtype": "video", "shape": [height, width, 3], "names": names, "info": video}
    if episode.states is not None:
        features["observation.state"] = {"dtype": "float32", "shape": [episode.states.shape[1]], "names": None}
    if episode.actions is not None:
        shape = list(episode.actions.shape[1:]) or [1]
        action = {"dtype": str(episode.actions.dtype), "shape": shape, "names": None}
        features["action"] = action | {"action_space": episode.meta["action_space"]}
    features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    features["next.truncated"] = {"dtype": "bool", "shape": [1], "names": None}
    return features | INDEX_FEATURES


def _arrow_column(values: np.ndarray) -> pa.Array:
    """(N,) -> a scalar column; (N, D) -> fixed-size lists of D, as LeRobot writes them."""
    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _huggingface_metadata(table: pa.Table) -> bytes:
    """The `datasets` feature description that `datasets.load_dataset` reads from the schema."""

    def describe(data_type: pa.DataType) -> dict:
        if pa.types.is_fixed_size_list(data_type):
            return {"feature": describe(data_type.value_type), "length": data_type.list_size, "_type": "List"}
        name = {"bool": "bool", "float": "float32", "double": "float64"}.get(str(data_type), str(data_type))
        return {"dtype": name, "_type": "Value"}

    return json.dumps({"info": {"features": {field.name: describe(field.type) for field in table.schema}}}).encode()


def write_parquet(path: Path, columns: dict[str, np.ndarray]) -> None:
    table = pa.table({name: _arrow_column(values) for name, values in columns.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({"huggingface": _huggingface_metadata(table)}), path)


def write_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as pandas writes LeRobot's DataFrame: task_index, indexed by the task string."""
    index = "__index_level_0__"
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), index: pa.array(tasks, pa.string())})
    columns = [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
        {"name": None, "field_name": index, "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
    ]
    pandas = {"index_columns": [index], "column_indexes": [], "columns": columns, "creator": {"library": "pyarrow"}}
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas)}), path)


class VideoFile:
    """One camera's mp4 that episodes are appended to; returns each episode's time span."""

    def __init__(self, path: Path, fps: float, height: int, width: int, config: LeRobotExportConfig):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream(config.vcodec, rate=rate)
        self.stream.height, self.stream.width, self.stream.pix_fmt = height, width, "yuv420p"
        self.stream.options = {"crf": str(config.crf), "g": str(config.gop), "preset": "veryfast"}
        self.fps, self.time_base, self.frames, self.bytes = fps, 1 / rate, 0, 0

    def append(self, frames: np.ndarray) -> tuple[float, float]:
        start = self.frames
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = self.frames, self.time_base
            self._mux(self.stream.encode(video_frame))
            self.frames += 1
        return start / self.fps, self.frames / self.fps

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()

    def _mux(self, packets) -> None:
        for packet in packets:
            self.bytes += packet.size
            self.container.mux(packet)


class LeRobotWriter:
    """Appends episodes to a LeRobot v3.0 folder; `close()` writes the metadata."""

    def __init__(self, root: Path, fps: float, config: LeRobotExportConfig):
        self.root, self.config = root, config
        self.fps = int(fps) if float(fps).is_integer() else float(fps)  # info.json states whole rates as ints
        self.codec = av.codec.Codec(config.vcodec, "w").canonical_name
        self.features: dict | None = None
        self.file_index, self.videos, self.rows = 0, {}, []
        self.episodes, self.episode_stats, self.tasks = [], [], {}
        self.total_frames = 0

    def add(self, episode: Episode, cameras: dict[str, np.ndarray]) -> None:
        features = episode_features(episode, cameras, self.fps, self.codec)
        if self.features is None:
            self.features = features
        elif features != self.features:
            differ = sorted(k for k in features.keys() | self.features.keys() if features.get(k) != self.features.get(k))
            raise ValueError(f"{where_of(episode.meta)}: features {differ} differ from the first episode's")
        index, length = len(self.episodes), len(episode)
        task = episode.meta.get("task") or episode.meta.get("env_id") or ""
        columns = self._frame_columns(episode, index, self.tasks.setdefault(task, len(self.tasks)))
        self.rows.append(columns)
        row = {"episode_index": index, "tasks": [task], "length": length}
        row |= {"data/chunk_index": self._chunk, "data/file_index": self._file}
        row |= {"dataset_from_index": self.total_frames, "dataset_to_index": self.total_frames + length}
        stats = {name: feature_stats(values) for name, values in columns.items()}
        for name, key in episode.meta["cameras"].items():
            start, end = self._video(key, cameras[name]).append(cameras[name])
            row |= {f"videos/{key}/chunk_index": self._chunk, f"videos/{key}/file_index": self._file}
            row |= {f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": end}
            stats[key] = camera_stats(cameras[name])
        row |= {f"stats/{feature}/{name}": value.tolist() for feature, values in stats.items() for name, value in values.items()}
        self.episodes.append(row | {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        self.episode_stats.append(stats)
        self.total_frames += length
        if max(video.bytes for video in self.videos.values()) >= self.config.video_file_mb * (1 << 20):
            self._close_files()
            self.file_index += 1

    def close(self, robot_type: str | None) -> None:
        self._close_files()
        meta = self.root / "meta"
        episodes = pa.Table.from_pylist(self.episodes)
        pq.write_table(episodes, _make_parent(self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)))
        write_tasks(meta / "tasks.parquet", list(self.tasks))
        keys = self.episode_stats[0].keys()
        stats = {key: aggregate_stats([episode[key] for episode in self.episode_stats]) for key in keys}
        (meta / "stats.json").write_text(json.dumps(stats_to_json(stats), indent=4))
        (meta / "info.json").write_text(json.dumps(self._info(robot_type), indent=4))
        card = DATASET_CARD.format(repo_id=self.config.repo_id, episodes=len(self.episodes), frames=self.total_frames)
        (self.root / "README.md").write_text(card)

    @property
    def _chunk(self) -> int:
        return self.file_index // CHUNKS_SIZE

    @property
    def _file(self) -> int:
        return self.file_index % CHUNKS_SIZE

    def _frame_columns(self, episode: Episode, index: int, task_index: int) -> dict[str, np.ndarray]:
        length = len(episode)
        frame_index = np.arange(length, dtype=np.int64)
        columns = {}
        if episode.states is not None:
            columns["observation.state"] = episode.states.astype(np.float32)
        if episode.actions is not None:
            columns["action"] = episode.actions
        columns["next.reward"] = episode.rewards.astype(np.float32)
        columns["next.done"] = episode.terminated | episode.truncated
        columns["next.truncated"] = episode.truncated.astype(bool)
        columns["timestamp"] = (frame_index / self.fps).astype(np.float32)
        columns |= {"frame_index": frame_index, "episode_index": np.full(length, index, np.int64)}
        columns |= {"index": self.total_frames + frame_index, "task_index": np.full(length, task_index, np.int64)}
        return columns

    def _video(self, key: str, frames: np.ndarray) -> VideoFile:
        if key not in self.videos:
            path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=self._chunk, file_index=self._file)
            self.videos[key] = VideoFile(path, self.fps, *frames.shape[1:3], self.config)
        return self.videos[key]

    def _close_files(self) -> None:
        for video in self.videos.values():
            video.close()
        self.videos = {}
        if self.rows:
            columns = {name: np.concatenate([rows[name] for rows in self.rows]) for name in self.rows[0]}
            write_parquet(self.root / DATA_PATH.format(chunk_index=self._chunk, file_index=self._file), columns)
            self.rows = []

    def _info(self, robot_type: str | None) -> dict:
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": self.config.video_file_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": self.features,
        }


def _make_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


DATASET_CARD = """---
license: apache-2.0
task_categories:
- robotics
tags:
- LeRobot
configs:
- config_name: default
  data_files: data/*/*.parquet
---

# {repo_id}

{episodes} episodes, {frames} frames, exported by `reverie export-lerobot` (LeRobot dataset v3.0).
"""


def _aside(out: Path, role: str) -> Path:
    """The sibling of `out` that holds its `partial` export or the `replaced` old copy."""
    return out.with_name(f".{out.name}.{role}")


def _remove(path: Path) -> None:
    """Delete a folder of ours; a symlink (a `--out` that was one) loses the link, not its target."""
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _put_back_replaced(out: Path) -> None:
    """Finish what a killed overwrite left: put the old copy back if `out` is missing, else drop it."""
    replaced = _aside(out, "replaced")
    if os.path.lexists(replaced) and not os.path.lexists(out):
        os.replace(replaced, out)
    else:
        _remove(replaced)


def check_replaceable(out: Path, shards: Path) -> None:
    """`FileExistsError` unless `out` is a LeRobot dataset that `--overwrite` may delete."""
    if not (out / "meta" / "info.json").is_file():
        raise FileExistsError(f"{out} is not a LeRobot dataset (no meta/info.json): --overwrite replaces only one")
    if shard_folder(shards).resolve().is_relative_to(out.resolve()):
        raise FileExistsError(f"{out} holds the shards being exported ({shard_folder(shards)}): --overwrite would delete them")


def _swap_in(partial: Path, out: Path) -> None:
    """Rename the finished export to `out`; an old `out` is moved aside first and deleted last."""
    replaced = _aside(out, "replaced")
    if os.path.lexists(out):
        os.replace(out, replaced)
    os.replace(partial, out)
    _remove(replaced)


def write_export(config: LeRobotExportConfig, root: Path) -> dict:
    """Write every episode of `config.shards` into the new folder `root`; return a summary."""
    writer, robot_type = None, config.robot_type
    for episode, cameras in shard_episodes(config.shards):
        fps = config.fps or episode.meta["fps"]
        if writer is None:
            writer = LeRobotWriter(root, fps, config)
            robot_type = robot_type or episode.meta.get("robot_type") or episode.meta.get("env_id")
        elif fps != writer.fps:
            raise ValueError(f"{where_of(episode.meta)}: {fps} fps, the first episode has {writer.fps} (--fps sets one rate)")
        writer.add(episode, cameras)
    if writer is None:
        raise ValueError(f"no episodes in {shard_folder(config.shards)}: no clip has `episode` metadata")
    writer.close(robot_type)
    return {"out": str(config.out), "episodes": len(writer.episodes), "frames": writer.total_frames, "tasks": len(writer.tasks)}


def run_lerobot_export(config: LeRobotExportConfig) -> dict:
    """Write every episode of `config.shards` into the LeRobot folder `config.out`; return a summary."""
    _put_back_replaced(config.out)
    if config.out.exists() and not config.overwrite:
        raise FileExistsError(f"{config.out} exists (--overwrite replaces it)")
    if config.out.exists():
        check_replaceable(config.out, config.shards)
    partial = _aside(config.out, "partial")
    shutil.rmtree(partial, ignore_errors=True)  # a killed run's
    try:
        summary = write_export(config, partial)
        _swap_in(partial, config.out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary
