"""LeRobot dataset folders: the layout, `meta/info.json`, camera names, and feature statistics.

v3.0, as `LeRobotDataset.create(...)` of lerobot 0.4 writes it:

    meta/info.json          codebase_version "v3.0", fps, features, chunks_size, data_path and
                            video_path templates (chunk_index, file_index, video_key)
    meta/stats.json         per feature: min, max, mean, std, count, q01 q10 q50 q90 q99
                            (camera stats per channel, shape (3, 1, 1), pixels scaled to [0, 1])
    meta/tasks.parquet      task_index, with the task string as the pandas index
    meta/episodes/chunk-000/file-000.parquet
                            a row per episode: episode_index, tasks, length, data/chunk_index,
                            data/file_index, dataset_from_index, dataset_to_index,
                            videos/KEY/{chunk_index, file_index, from_timestamp, to_timestamp},
                            stats/FEATURE/STAT, meta/episodes/{chunk_index, file_index}
    data/chunk-000/file-000.parquet
                            a row per frame: the non-video features plus timestamp, frame_index,
                            episode_index, index (in the dataset), task_index
    videos/KEY/chunk-000/file-000.mp4
                            several episodes back to back; episode e is the stretch
                            [from_timestamp, to_timestamp) and its frame t plays at
                            from_timestamp + timestamp[t]

v2.1 (read only): meta/episodes.jsonl (episode_index, tasks, length), meta/tasks.jsonl,
data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet and
videos/chunk-{episode_chunk:03d}/KEY/episode_{episode_index:06d}.mp4, one file per episode from t = 0.

A name that goes into a path, read from a dataset or written to one, is one plain file name
(`is_path_part`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from reverie.shards.episodes import ARRAY_MEMBERS

CODEBASE_VERSION = "v3.0"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = f"data/{CHUNK_FILE}.parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = f"meta/episodes/{CHUNK_FILE}.parquet"
CHUNKS_SIZE = 1000  # files per chunk folder
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
PATH_PART = re.compile(r"[A-Za-z0-9_.-]+")

# Every LeRobot frame row has these, whatever the robot.
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def is_lerobot_dataset(path: str | Path) -> bool:
    return (Path(path) / "meta" / "info.json").is_file()


def video_keys(info: dict) -> list[str]:
    """The camera features stored as mp4, in the order info.json lists them (the first is primary)."""
    return [key for key, feature in info["features"].items() if feature["dtype"] == "video"]


def is_path_part(name) -> bool:
    """Whether `name` may be one folder or file name: letters, digits, `_`, `.` and `-`, and not
    `.` or `..` (so it can neither climb out of a folder nor start another one)."""
    return isinstance(name, str) and PATH_PART.fullmatch(name) is not None and name not in (".", "..")


# Member names a camera must not take: the episode arrays, the metadata, latent shards' payloads.
RESERVED_MEMBERS = ARRAY_MEMBERS + ("json", "latents", "tokens")


def camera_name(video_key: str) -> str:
    """The shard member name of a camera: `observation.images.wrist` -> `wrist` (`KEY.wrist.mp4`).

    Webdataset splits a member name at its first dot, so the name has none; a name that would
    collide with another member (`KEY.actions.npy` ...) gets a `-camera` suffix.
    """
    short = video_key.removeprefix("observation.images.").removeprefix("observation.")
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", short).strip("-") or "camera"
    return f"{name}-camera" if name in RESERVED_MEMBERS else name


def feature_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of one episode's values (L, ...) over the frame axis, as LeRobot stores them."""
    values = values.reshape(len(values), -1).astype(np.float64)
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0)}
    stats |= {f"q{round(q * 100):02d}": np.quantile(values, q, axis=0) for q in QUANTILES}
    return stats | {"count": np.array([len(values)])}


def camera_stats(frames: np.ndarray, max_side: int = 64) -> dict[str, np.ndarray]:
    """Per-channel statistics of (L, H, W, 3) uint8 frames, in [0, 1], each of shape (3, 1, 1).

    Pixels are taken on a grid of at most `max_side` per side: the statistics only normalise
    inputs, and a grid keeps this cheap on large frames.
    """
    step = max(1, max(frames.shape[1:3]) // max_side)
    pixels = frames[:, ::step, ::step].reshape(-1, frames.shape[-1]) / 255.0
    stats = {name: value.reshape(-1, 1, 1) for name, value in feature_stats(pixels).items() if name != "count"}
    return stats | {"count": np.array([len(frames)])}


def aggregate_stats(episode_stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset statistics from per-episode ones: exact min, max, mean and std (pooled variance);
    quantiles as the count-weighted mean of the episodes' quantiles, as LeRobot does."""
    counts = np.array([stats["count"][0] for stats in episode_stats], dtype=np.float64)
    weights = counts / counts.sum()

    def weighted(name: str) -> np.ndarray:
        return sum(w * stats[name] for w, stats in zip(weights, episode_stats))

    mean = weighted("mean")
    variance = sum(w * (stats["std"] ** 2 + (stats["mean"] - mean) ** 2) for w, stats in zip(weights, episode_stats))
    total = {
        "min": np.min([stats["min"] for stats in episode_stats], axis=0),
        "max": np.max([stats["max"] for stats in episode_stats], axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([int(counts.sum())]),
    }
    return total | {name: weighted(name) for name in episode_stats[0] if name.startswith("q")}


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {feature: {name: value.tolist() for name, value in values.items()} for feature, values in stats.items()}
