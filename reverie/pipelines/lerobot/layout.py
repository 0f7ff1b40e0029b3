"""Where a LeRobot dataset folder keeps each episode, from its meta/ (v3.0 or v2.1; see `format.py`):
the parquet file of its frame rows and, per camera, the mp4 and the stretch of it that it plays.

A dataset is data, not a map of the disk. Every file read lies inside the dataset folder once
symlinks are followed (`inside`), info.json's path templates use only their own fields and neither
start at `/` nor climb with `..` (`check_template`), and video feature keys are plain names
(`format.is_path_part`): anything else fails the dataset, naming it and the key.
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from reverie.pipelines.errors import VideoDecodeError
from reverie.pipelines.lerobot.format import camera_name, is_path_part, video_keys

# The fields each info.json path template may use (v3.0 and v2.1 together).
TEMPLATE_FIELDS = {
    "data_path": {"chunk_index", "file_index", "episode_chunk", "episode_index"},
    "video_path": {"chunk_index", "file_index", "episode_chunk", "episode_index", "video_key"},
}


@dataclass(frozen=True)
class EpisodeEntry:
    """Where one episode's frame rows and videos lie in the dataset folder."""

    index: int
    length: int
    tasks: list[str]
    data_file: Path
    videos: dict[str, tuple[Path, float, float]]  # video key -> (mp4, from_timestamp, to_timestamp)


def read_info(root: Path) -> dict:
    return json.loads(inside(root, Path(root) / "meta" / "info.json", "meta/info.json").read_text())


def inside(root: Path, path: Path, what: str) -> Path:
    """`path`, if it lies inside the dataset `root` once symlinks are followed; else
    `VideoDecodeError` naming the dataset, `what` gave the path, and where it leads."""
    resolved = path.resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise VideoDecodeError(root, f"{what} gives {path}, which is {resolved}: outside the dataset")
    return path


def check_template(root: Path, info: dict, name: str) -> str:
    """The info.json path template `name`, if it is relative, never climbs (`..`) and uses only
    its own fields (`TEMPLATE_FIELDS`, no attribute or index access); else `VideoDecodeError`."""
    template = info.get(name)
    if not isinstance(template, str):
        raise VideoDecodeError(root, f"meta/info.json has no {name} template")
    said = f"meta/info.json {name} {template!r}"
    try:
        fields = [(field, spec) for _, field, spec, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:
        raise VideoDecodeError(root, f"{said}: {error}") from None
    for field, spec in fields:
        if field not in TEMPLATE_FIELDS[name]:
            raise VideoDecodeError(root, f"{said}: field {{{field}}} is not one of {sorted(TEMPLATE_FIELDS[name])}")
        if "{" in spec:
            raise VideoDecodeError(root, f"{said}: the format of {{{field}}} holds another field")
    relative = PurePosixPath(template)
    if relative.is_absolute() or ".." in relative.parts:
        raise VideoDecodeError(root, f"{said} points outside the dataset (an absolute path or '..')")
    return template


def check_video_keys(root: Path, keys: list[str]) -> None:
    """Video feature keys name folders (`videos/KEY/...`): each must be one plain name."""
    for key in keys:
        if not is_path_part(key):
            raise VideoDecodeError(
                root, f"meta/info.json video feature {key!r} cannot name a folder: use letters, digits, '_', '.', '-'"
            )


def dataset_entries(root: Path) -> tuple[dict, list[EpisodeEntry]]:
    """(meta/info.json, every episode's entry in episode order); `VideoDecodeError` for a dataset
    that cannot be imported or that points outside its folder."""
    info = read_info(root)
    keys = video_keys(info)
    if not keys:
        raise VideoDecodeError(root, "no video features (cameras stored as images in parquet are not supported)")
    check_video_keys(root, keys)
    if len({camera_name(key) for key in keys}) < len(keys):
        raise VideoDecodeError(root, f"cameras {keys} do not have distinct member names")
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < math.inf:
        raise VideoDecodeError(root, f"meta/info.json fps {fps!r} is not a positive number")
    entries = episode_entries(root, info)
    for entry in entries:
        if isinstance(entry.length, bool) or not isinstance(entry.length, int) or entry.length < 0:
            raise VideoDecodeError(root, f"episode {entry.index}: length {entry.length!r} is not a number of frames")
    return info, entries


def episode_entries(root: Path, info: dict) -> list[EpisodeEntry]:
    if info.get("codebase_version", "").startswith("v2"):
        return _entries_v2(root, info)
    return _entries_v3(root, info)


def _entries_v3(root: Path, info: dict) -> list[EpisodeEntry]:
    data_path, video_path = check_template(root, info, "data_path"), check_template(root, info, "video_path")
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise VideoDecodeError(root, "no meta/episodes/chunk-*/file-*.parquet")
    rows = []
    for path in files:
        inside(root, path, "meta/episodes")
        columns = [name for name in pq.read_schema(path).names if not name.startswith("stats/")]
        rows += pq.read_table(path, columns=columns).to_pylist()
    entries = []
    for row in sorted(rows, key=lambda row: row["episode_index"]):
        data_file = root / data_path.format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        videos = {}
        for key in video_keys(info):
            column = f"videos/{key}/"
            where = {"chunk_index": row[column + "chunk_index"], "file_index": row[column + "file_index"]}
            video_file = inside(root, root / video_path.format(video_key=key, **where), "meta/info.json video_path")
            videos[key] = (video_file, row[column + "from_timestamp"], row[column + "to_timestamp"])
        data_file = inside(root, data_file, "meta/info.json data_path")
        entries.append(EpisodeEntry(row["episode_index"], row["length"], list(row.get("tasks") or []), data_file, videos))
    return entries


def _entries_v2(root: Path, info: dict) -> list[EpisodeEntry]:
    data_path, video_path = check_template(root, info, "data_path"), check_template(root, info, "video_path")
    lines = inside(root, root / "meta" / "episodes.jsonl", "meta/episodes.jsonl").read_text().splitlines()
    entries = []
    for row in sorted((json.loads(line) for line in lines if line.strip()), key=lambda row: row["episode_index"]):
        index, length = row["episode_index"], row["length"]
        where = {"episode_chunk": index // info.get("chunks_size", 1000), "episode_index": index}
        span = (0.0, length / info["fps"])  # one file per episode
        videos = {}
        for key in video_keys(info):
            video_file = inside(root, root / video_path.format(video_key=key, **where), "meta/info.json video_path")
            videos[key] = (video_file, *span)
        data_file = inside(root, root / data_path.format(**where), "meta/info.json data_path")
        entries.append(EpisodeEntry(index, length, list(row.get("tasks") or []), data_file, videos))
    return entries
