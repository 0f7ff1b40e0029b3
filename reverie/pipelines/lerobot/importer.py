"""A LeRobot dataset folder (v3.0, or v2.1) in: its episodes as episode shards, one manifest line each.

Each camera's video is decoded over the episode's stretch of its mp4 (v3.0 keeps several episodes
back to back in one file: frame t plays at `from_timestamp + timestamp[t]`), resized like ingested
video (`FrameGeometry`), and frame t is the decoded frame nearest that instant. An episode whose
frames cannot all be matched within half a frame, or whose video is missing or broken, gets a
`failed` line naming the file and the episode; the run goes on.

The first camera in `meta/info.json` is the clip (`KEY.mp4`); each other camera rides beside it as
`KEY.<camera>.mp4` (or `.npy`), and the clip metadata maps member names to LeRobot feature keys:
`"cameras": {"front": "observation.images.front", "wrist": "observation.images.wrist"}`.
`action` becomes the actions, `observation.state` the states, `next.reward` the rewards and
`next.done` the episode ends. Frames are not resampled: clips keep the dataset's fps.

Isolation, as in ingestion (`reverie.pipelines.isolation`: a pebble pool): each episode is decoded in a
worker process, within `decode_timeout` plus `timeout_per_second` for each second of its video (all
cameras), at most `max_timeout`; reading a dataset's meta/ runs there too, within `meta_timeout`.
A decoder that raises, crashes or hangs costs its episode only (a `failed` line with the reason);
a dataset whose meta/ cannot be read, or points outside its folder (`layout.py`), costs itself.
The main process writes the clips in episode order, `workers` episodes decoding ahead.

Manifest lines are `DATASET#episode=N`. A killed run resumes like ingestion: episodes in the
manifest are skipped, and clips already in finished shards are not written twice.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pebble import ProcessPool
from rich.progress import Progress

from reverie.pipelines.clips import input_key
from reverie.pipelines.decoders.base import crop
from reverie.shards.payloads import encode_clip
from reverie.shards.episodes import Episode, episode_samples
from reverie.pipelines.errors import VideoDecodeError
from reverie.pipelines.isolation import in_worker, outcome  # one isolation for videos and episodes
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.lerobot.format import camera_name, is_lerobot_dataset, video_keys
from reverie.pipelines.lerobot.layout import EpisodeEntry, dataset_entries
from reverie.shards.manifest import read_manifest
from reverie.shards.sink import ShardSink

FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "action", "observation.state")
FRAME_COLUMNS += ("next.reward", "next.done", "next.truncated")


@dataclass(frozen=True)
class LeRobotImportConfig:
    datasets: list[Path]
    out: Path
    size: int | None = 256  # short side of the stored frames; None keeps the recorded size
    keep_aspect: bool = False
    clip_frames: int = 16
    stride: int | None = None  # frames between clip starts; default: consecutive clips
    clip_format: str = "mp4"
    shard_prefix: str = ""  # e.g. "lerobot-" when video ingestion writes to the same shards
    shard_max_count: int = 1000
    shard_max_bytes: int = 1 << 30
    progress: bool = True
    workers: int = 1  # episodes decoding at once, each in a worker process of its own
    meta_timeout: float = 60.0  # seconds to read a dataset's meta/ (as ingestion's probe_timeout)
    decode_timeout: float = 120.0  # seconds an episode may take, plus timeout_per_second for each
    timeout_per_second: float = 10.0  # second of video it holds (all cameras) ...
    max_timeout: float = 600.0  # ... and never more than this, whatever length the metadata says

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"LeRobotImportConfig: workers {self.workers} must be at least 1")


def split_lerobot_inputs(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """(LeRobot dataset folders, the other `reverie ingest` inputs)."""
    datasets = [Path(argument) for argument in arguments if is_lerobot_dataset(argument)]
    return datasets, [argument for argument in arguments if not is_lerobot_dataset(argument)]


@functools.lru_cache(maxsize=1)  # a worker gets episodes in file order: it reads each data file once
def _frame_table(data_file: Path) -> pa.Table:
    columns = [name for name in pq.read_schema(data_file).names if name in FRAME_COLUMNS]
    return pq.read_table(data_file, columns=columns)


def column_values(table: pa.Table, name: str) -> np.ndarray:
    """A parquet column as (L,) for scalars, (L, D) for fixed-length lists."""
    column = table[name].combine_chunks()
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_large_list(kind):
        return np.asarray(column.flatten().to_numpy(zero_copy_only=False)).reshape(len(column), -1)
    return column.to_numpy(zero_copy_only=False)


def frame_rows(root: Path, entry: EpisodeEntry) -> pa.Table:
    where = _relative(entry.data_file, root)
    if not entry.data_file.is_file():
        raise VideoDecodeError(entry.data_file, f"episode {entry.index}: missing data file {where}")
    table = _frame_table(entry.data_file)
    rows = table.filter(pc.equal(table["episode_index"], entry.index)).sort_by("frame_index")
    if len(rows) != entry.length:
        reason = f"episode {entry.index}: {where} has {len(rows)} frames, meta says {entry.length}"
        raise VideoDecodeError(entry.data_file, reason)
    return rows


def _rgb(frame: av.VideoFrame, geometry: FrameGeometry | None) -> np.ndarray:
    if geometry is None:
        return frame.to_ndarray(format="rgb24")
    resized = frame.reformat(geometry.scaled_width, geometry.scaled_height, "rgb24", interpolation="AREA")
    return np.ascontiguousarray(crop(resized.to_ndarray(), geometry))


def decode_span(path: Path, start: float, end: float, size: int | None, keep_aspect: bool) -> tuple[np.ndarray, np.ndarray]:
    """The frames of `path` presented within [start, end] seconds, resized; and their times."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise VideoDecodeError(path, f"cannot open ({error.strerror or error})") from None
    frames, times = [], []
    with container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        context = stream.codec_context
        geometry = None if size is None else FrameGeometry.fit(context.width, context.height, size, keep_aspect)
        try:
            if start > 0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time < start:
                    continue
                if frame.time > end:
                    break
                frames.append(_rgb(frame, geometry))
                times.append(frame.time)
        except av.FFmpegError as error:
            raise VideoDecodeError(path, f"decode error ({error.strerror or error})") from None
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8), np.asarray(times, np.float64)


def nearest_frames(times: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target instant, the index of the nearest decoded frame and how far it is."""
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    right = np.clip(np.searchsorted(sorted_times, targets), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    pick = np.where(np.abs(sorted_times[right] - targets) < np.abs(sorted_times[left] - targets), right, left)
    return order[pick], np.abs(sorted_times[pick] - targets)


def camera_frames(
    root: Path, entry: EpisodeEntry, key: str, timestamps: np.ndarray, fps: float, config: LeRobotImportConfig
) -> np.ndarray:
    """(L, H, W, 3) uint8: the frame of camera `key` shown at each of the episode's timestamps."""
    path, from_timestamp, to_timestamp = entry.videos[key]
    where, video = f"episode {entry.index}, {key}", _relative(path, root)
    if not path.is_file():
        raise VideoDecodeError(path, f"{where}: missing video {video}")
    half_frame = 0.5 / fps
    targets = from_timestamp + timestamps
    try:
        frames, times = decode_span(path, targets[0] - half_frame, targets[-1] + half_frame, config.size, config.keep_aspect)
    except VideoDecodeError as error:
        raise VideoDecodeError(path, f"{where}: {video}: {error.reason}") from None
    if not len(frames):
        raise VideoDecodeError(path, f"{where}: no frames in {video} between {targets[0]:.3f} s and {targets[-1]:.3f} s")
    picks, gaps = nearest_frames(times, targets)
    worst = int(np.argmax(gaps))
    if gaps[worst] > half_frame + 1e-4:  # timestamps are float32: allow their rounding
        raise VideoDecodeError(
            path,
            f"{where}: frame {worst} (t={timestamps[worst]:.3f} s, video time {targets[worst]:.3f} s) is "
            f"{gaps[worst] * 1000:.0f} ms from the nearest frame of {video}, more than half a frame",
        )
    # Timestamps off by more than half a frame pick a neighbour's frame; at the episode's ends
    # that frame lies outside its stretch of the video.
    outside = (times[picks] < from_timestamp - half_frame) | (times[picks] >= to_timestamp - half_frame)
    if outside.any():
        first = int(np.argmax(outside))
        raise VideoDecodeError(
            path,
            f"{where}: frame {first} (t={timestamps[first]:.3f} s) matches the frame at {times[picks[first]]:.3f} s of "
            f"{video}, outside the episode's stretch [{from_timestamp:.3f} s, {to_timestamp:.3f} s)",
        )
    return frames[picks]


def _action_space(feature: dict, actions: np.ndarray) -> dict:
    if "action_space" in feature:  # written by `reverie export-lerobot`
        return feature["action_space"]
    if actions.dtype.kind == "f":
        return {"type": "box", "shape": list(actions.shape[1:]), "low": None, "high": None}
    if actions.ndim == 1:
        return {"type": "discrete", "n": None, "start": 0}
    return {"type": "multi_discrete", "nvec": None}


def episode_arrays(rows: pa.Table, info: dict) -> dict[str, np.ndarray | None]:
    """Actions, states, rewards and episode ends of an episode's frame rows (see the module docstring)."""
    length, has = len(rows), set(rows.column_names)

    def column(name: str) -> np.ndarray:
        return column_values(rows, name).reshape(length, -1)

    actions, states = None, None
    if "action" in has:
        actions = column("action")
        if actions.dtype.kind == "f":
            actions = actions.astype(np.float32)
        else:  # integer actions: one wide is a discrete action, stored (L,)
            is_discrete = list(info["features"]["action"]["shape"]) == [1]
            actions = actions.astype(np.int64).reshape(length) if is_discrete else actions.astype(np.int64)
    if "observation.state" in has:
        states = column("observation.state").astype(np.float32)
    rewards = column("next.reward").reshape(length).astype(np.float32) if "next.reward" in has else np.zeros(length, np.float32)
    truncated = column("next.truncated").reshape(length).astype(bool) if "next.truncated" in has else np.zeros(length, bool)
    if "next.done" in has:
        terminated = column("next.done").reshape(length).astype(bool) & ~truncated
    else:
        terminated = np.zeros(length, bool)
        if "next.truncated" not in has:  # the recording stopped; whether the task ended is not known
            truncated[-1] = True
    return {"actions": actions, "states": states, "rewards": rewards, "terminated": terminated, "truncated": truncated}


def read_episode(
    root: Path, info: dict, entry: EpisodeEntry, config: LeRobotImportConfig
) -> tuple[Episode, dict[str, np.ndarray]]:
    """The episode (the first camera as its frames) and every camera's frames by member name."""
    rows = frame_rows(root, entry)
    timestamps = column_values(rows, "timestamp").astype(np.float64)
    keys = video_keys(info)
    cameras = {camera_name(key): camera_frames(root, entry, key, timestamps, info["fps"], config) for key in keys}
    arrays = episode_arrays(rows, info)
    action_feature = info["features"].get("action", {})
    meta = {
        "source": str(root),
        "episode": entry.index,
        "fps": info["fps"],
        "env_id": None,
        "action_space": None if arrays["actions"] is None else _action_space(action_feature, arrays["actions"]),
        "cameras": {camera_name(key): key for key in keys},
        "task": entry.tasks[0] if entry.tasks else "",
        "robot_type": info.get("robot_type"),
    }
    return Episode(frames=cameras[camera_name(keys[0])], meta=meta, **arrays), cameras


def camera_samples(episode: Episode, cameras: dict[str, np.ndarray], key_prefix: str, config: LeRobotImportConfig):
    """`episode_samples` with the other cameras' clips beside the first one's, and the cameras,
    task and robot type in the metadata."""
    fps, clip_format = episode.meta["fps"], config.clip_format
    extra_meta = {name: episode.meta[name] for name in ("cameras", "task", "robot_type")}
    for sample in episode_samples(episode, key_prefix, config.clip_frames, config.stride, fps, clip_format):
        window = slice(sample["json"]["step"], sample["json"]["step"] + config.clip_frames)
        for name in list(cameras)[1:]:
            sample[f"{name}.{clip_format}"] = encode_clip(cameras[name][window], fps, clip_format)
        sample["json"] |= extra_meta
        yield sample


def dataset_slug(root: Path) -> str:
    """A webdataset-safe key for a dataset folder: its name and a hash of its absolute path."""
    return f"{re.sub(r'[^A-Za-z0-9-]+', '-', root.name)}-{input_key(root)[:8]}"


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _line(path: str, status: str, reason: str, shards: list[str], **extra) -> dict:
    return {"path": path, "status": status, "reason": reason, "clips": len(shards), "shards": sorted(set(shards)), **extra}


def episode_path(root: Path, entry: EpisodeEntry) -> str:
    """How the manifest names an episode: `DATASET#episode=N`."""
    return f"{root}#episode={entry.index}"


def episode_key(root: Path, entry: EpisodeEntry) -> str:
    """The prefix of the episode's clip keys."""
    return f"{dataset_slug(root)}_e{entry.index:06d}"


def episode_clips(root: Path, info: dict, entry: EpisodeEntry, config: LeRobotImportConfig) -> tuple[int, list[dict]]:
    """(the episode's length, its clip samples): all the decoding of one episode, in a worker."""
    try:
        episode, cameras = read_episode(root, info, entry, config)
    except VideoDecodeError:
        raise
    except Exception as error:  # pickled back as the reason, with the episode named
        raise VideoDecodeError(root, f"episode {entry.index}: {type(error).__name__}: {error}") from None
    return len(episode), list(camera_samples(episode, cameras, episode_key(root, entry), config))


def episode_timeout(info: dict, entry: EpisodeEntry, config: LeRobotImportConfig) -> float:
    """Seconds one episode may take: `decode_timeout` plus `timeout_per_second` for each second of
    video it holds (all cameras), at most `max_timeout` (the length is what the metadata says)."""
    seconds = entry.length / info["fps"] * len(entry.videos)
    return min(config.max_timeout, config.decode_timeout + config.timeout_per_second * seconds)


def commit_episode(root: Path, entry: EpisodeEntry, future, timeout: float, config: LeRobotImportConfig, sink: ShardSink) -> None:
    """Write the episode's clips once its worker is done, then its manifest line; a failed episode
    (an error, a timeout, a crash) gets a `failed` line and no clips."""
    path, key_prefix = episode_path(root, entry), episode_key(root, entry)
    result, reason = outcome(future, "decode", f"{timeout:.0f} s", context=f"episode {entry.index}: ")
    if reason:
        sink.add_line(_line(path, "failed", reason, [], episode=entry.index, key=key_prefix), [])
        return
    length, samples = result
    shards = [sink.write(sample) for sample in samples]
    status = "ok" if shards else "skipped"
    reason = "" if shards else f"episode of {length} frames is shorter than a clip ({config.clip_frames})"
    sink.add_line(_line(path, status, reason, shards, episode=entry.index, length=length, key=key_prefix), shards)


def _scheduled(pool: ProcessPool, root: Path, info: dict, entries: list[EpisodeEntry], config: LeRobotImportConfig):
    """(entry, future, timeout) in episode order, with up to 2 x workers episodes decoding ahead."""
    window, pending = 2 * config.workers, deque()
    for entry in entries:
        timeout = episode_timeout(info, entry, config)
        pending.append((entry, pool.schedule(in_worker, (episode_clips, root, info, entry, config), timeout=timeout), timeout))
        if len(pending) >= window:
            yield pending.popleft()
    yield from pending


def import_dataset(
    root: Path, config: LeRobotImportConfig, sink: ShardSink, done: set[str], pool: ProcessPool, progress: Progress
) -> None:
    """Every episode of one dataset folder not in `done`, in episode order, each decoded in `pool`."""
    future = pool.schedule(in_worker, (dataset_entries, root), timeout=config.meta_timeout)
    result, reason = outcome(future, "reading meta/", f"{config.meta_timeout:.0f} s")
    if reason:  # an unreadable dataset is one failed line
        if str(root) not in done:
            sink.add_line(_line(str(root), "failed", f"not a readable LeRobot dataset: {reason}", []), [])
        return
    info, entries = result
    todo = [entry for entry in entries if episode_path(root, entry) not in done]
    task = progress.add_task(f"import {root.name}", total=len(entries), completed=len(entries) - len(todo))
    for entry, future, timeout in _scheduled(pool, root, info, todo, config):
        commit_episode(root, entry, future, timeout, config, sink)
        progress.advance(task)


def run_lerobot_import(config: LeRobotImportConfig) -> list[dict]:
    """Import the episodes of `config.datasets` not yet in `out/manifest.jsonl`; return all lines."""
    manifest_path = config.out / "manifest.jsonl"
    done = {line["path"] for line in read_manifest(manifest_path)}
    sink = ShardSink(
        config.out / "shards", manifest_path, config.shard_prefix, config.shard_max_count, config.shard_max_bytes
    )
    pool = ProcessPool(max_workers=config.workers)
    try:
        with Progress(disable=not config.progress) as progress:
            for root in config.datasets:
                import_dataset(Path(root).absolute(), config, sink, done, pool, progress)
    except BaseException:
        pool.stop()  # not `close`: that would wait for the episodes still decoding
        pool.join()
        sink.abort()
        raise
    pool.close()
    pool.join()
    sink.close()
    return read_manifest(manifest_path)
