"""Whole episodes back out of episode shards: the clips of each episode put together again.

`episode_samples` cuts an episode into clips that may overlap (a stride shorter than a clip, and
the last clip always ends on the episode's last frame) and the shards hold one episode's clips one
after another. `shard_episodes` reads them back in order and gives, for each episode, an `Episode`
whose arrays have every frame once, and the frames of every camera (`KEY.mp4` is the first
camera; `KEY.<camera>.mp4` the others, named in the clip metadata's `cameras`). The episode's
metadata is its first clip's, plus `clips`: the keys of its clips, in order.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np

from reverie.shards.payloads import decode_mp4
from reverie.shards.episodes import ARRAY_MEMBERS, Episode

UNNAMED_CAMERA = {"image": "observation.image"}  # a recording's single camera (LeRobot's pusht naming)
EPISODE_META = ("source", "episode", "env_id", "fps", "action_space", "task", "robot_type")


def shard_samples(shard_dir: Path) -> Iterator[dict[str, bytes]]:
    """Each sample of the finished shards in `shard_dir`, in shard order: {member: bytes}."""
    for path in sorted(shard_dir.glob("*.tar")):
        with tarfile.open(path) as tar:
            key, sample = None, {}
            for member in tar:
                member_key, _, extension = member.name.partition(".")
                if member_key != key and sample:
                    yield sample
                    sample = {}
                key = member_key
                sample[extension] = tar.extractfile(member).read()
            if sample:
                yield sample


def _decode_member(name: str, payload: bytes) -> np.ndarray:
    return decode_mp4(payload) if name.endswith("mp4") else np.load(io.BytesIO(payload), allow_pickle=False)


def assemble_episode(clips: list[tuple[dict, dict[str, bytes]]]) -> tuple[Episode, dict[str, np.ndarray]]:
    """Whole-episode arrays from its clips (overlaps taken once); (Episode, frames by camera)."""
    meta = clips[0][0]
    length = meta["episode_length"]
    cameras = meta.get("cameras") or UNNAMED_CAMERA
    names = list(cameras)
    members = {names[0]: meta["format"]} | {name: f"{name}.{meta['format']}" for name in names[1:]}
    members |= {name: f"{name}.npy" for name in ARRAY_MEMBERS}
    arrays: dict[str, np.ndarray] = {}
    covered = np.zeros(length, bool)
    for clip_meta, sample in clips:
        window = slice(clip_meta["step"], clip_meta["step"] + clip_meta["frames"])
        for name, member in members.items():
            if member in sample:
                values = _decode_member(member, sample[member])
                arrays.setdefault(name, np.zeros((length, *values.shape[1:]), values.dtype))[window] = values
        covered[window] = True
    if not covered.all():
        missing = int(np.argmin(covered))
        raise ValueError(f"{where_of(meta)}: frame {missing} is in no clip (clips cut with a stride longer than a clip)")
    episode = Episode(
        frames=arrays[names[0]],
        actions=arrays.get("actions"),
        rewards=arrays["rewards"],
        terminated=arrays["terminated"],
        truncated=arrays["truncated"],
        states=arrays.get("states"),
        meta={name: meta.get(name) for name in EPISODE_META} | {"cameras": cameras, "clips": [clip["key"] for clip, _ in clips]},
    )
    return episode, {name: arrays[name] for name in names}


def where_of(meta: dict) -> str:
    """`SOURCE#episode=N`, as manifest lines name an episode."""
    return f"{meta['source']}#episode={meta['episode']}"


def shard_folder(path: Path) -> Path:
    """`path/shards` for an ingest or record output folder, else `path` itself."""
    return path / "shards" if (path / "shards").is_dir() else path


def shard_episodes(path: Path) -> Iterator[tuple[Episode, dict[str, np.ndarray]]]:
    """The episodes in the shards of `path`, in order; clips without an `episode` (ingested
    video) are passed over."""
    shard_dir = shard_folder(path)
    current, clips, seen = None, [], set()
    for sample in shard_samples(shard_dir):
        meta = json.loads(sample["json"])
        if meta.get("episode") is None:
            continue
        episode_id = (meta["source"], meta["episode"])
        if episode_id != current:
            if clips:
                yield assemble_episode(clips)
            if episode_id in seen:
                raise ValueError(f"{where_of(meta)}: its clips are not consecutive in {shard_dir}")
            seen.add(episode_id)
            current, clips = episode_id, []
        clips.append((meta, sample))
    if clips:
        yield assemble_episode(clips)
