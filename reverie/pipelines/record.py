"""`reverie record ENV`: run a gymnasium environment and write its episodes as shards.

Episode i is reset with seed `seed + i` and acted in by a policy seeded the same way, so a run is
reproducible and a killed run resumes: finished episodes (in the manifest) are skipped, and clips
of a partly written episode that already sit in finished shards are not written twice. A run holds
the folder's lock while it writes: a second copy stops (`FolderLockedError`) before it changes a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from reverie.envs.make import frame_rate, make_env, resize_frame
from reverie.shards.episodes import Episode, describe_space, episode_samples
from reverie.shards.folder_lock import FolderLock
from reverie.shards.manifest import read_manifest
from reverie.pipelines.policies import flat_state, make_policy
from reverie.shards.sink import ShardSink


@dataclass(frozen=True)
class RecordConfig:
    env_id: str
    episodes: int
    out: Path
    policy: str = "random"
    seed: int = 0
    size: int = 96  # short side of the stored frames
    square: bool = False  # stretch frames to size x size instead of keeping their aspect
    clip_frames: int = 16
    stride: int | None = None  # frames between clip starts; default: consecutive clips
    clip_format: str = "mp4"
    max_steps: int | None = None  # cut episodes off here (marked truncated)
    shard_max_count: int = 1000
    progress: bool = True


def env_slug(env_id: str) -> str:
    """An env id usable inside a webdataset key (no dots or slashes)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", env_id)


def play_episode(env, policy, seed: int, size: int, max_steps: int | None, square: bool = False) -> dict[str, list]:
    """Reset with `seed` and act until the episode ends; frame t is rendered before action t."""
    observation, _ = env.reset(seed=seed)
    steps: dict[str, list] = {name: [] for name in ("frames", "states", "actions", "rewards", "terminated", "truncated")}
    step = 0
    while True:
        steps["frames"].append(resize_frame(env.render(), size, square))
        steps["states"].append(flat_state(observation))
        action = policy(observation)
        observation, reward, terminated, truncated, _ = env.step(action)
        step += 1
        truncated = truncated or (max_steps is not None and step >= max_steps and not terminated)
        for name, value in (("actions", action), ("rewards", reward), ("terminated", terminated), ("truncated", truncated)):
            steps[name].append(value)
        if terminated or truncated:
            return steps


def record_episode(env, config: RecordConfig, index: int) -> Episode:
    seed = config.seed + index
    steps = play_episode(env, make_policy(config.policy, env, seed), seed, config.size, config.max_steps, config.square)
    space = describe_space(env.action_space)
    dtype = np.float32 if space["type"] == "box" else np.int64
    states = None if steps["states"][0] is None else np.stack(steps["states"])
    meta = {"env_id": config.env_id, "episode": index, "seed": seed, "action_space": space, "source": f"env:{config.env_id}"}
    return Episode(
        frames=np.stack(steps["frames"]),
        actions=np.asarray(steps["actions"], dtype=dtype),
        rewards=np.asarray(steps["rewards"], dtype=np.float32),
        terminated=np.asarray(steps["terminated"], dtype=bool),
        truncated=np.asarray(steps["truncated"], dtype=bool),
        states=states,
        meta=meta,
    )


def run_record(config: RecordConfig) -> list[dict]:
    """Record the episodes not yet in `out/manifest.jsonl`; return all manifest lines."""
    env = make_env(config.env_id, size=config.size)
    try:
        make_policy(config.policy, env, config.seed)  # an unknown or unfit policy fails here, before any file is written
        with FolderLock(config.out):
            return _record_missing(env, config)
    finally:
        env.close()


def _record_missing(env, config: RecordConfig) -> list[dict]:
    manifest_path = config.out / "manifest.jsonl"
    done = {line["episode"] for line in read_manifest(manifest_path)}
    fps = frame_rate(env)
    sink = ShardSink(config.out / "shards", manifest_path, max_count=config.shard_max_count)
    try:
        with Progress(disable=not config.progress) as progress:
            task = progress.add_task(f"record {config.env_id}", total=config.episodes, completed=len(done))
            for index in range(config.episodes):
                if index in done:
                    continue
                episode = record_episode(env, config, index)
                episode.meta["fps"] = fps
                key_prefix = f"{env_slug(config.env_id)}_e{index:06d}"
                samples = episode_samples(episode, key_prefix, config.clip_frames, config.stride, fps, config.clip_format)
                shards = [sink.write(sample) for sample in samples]
                sink.add_line(_manifest_line(config, episode, shards), shards)
                progress.advance(task)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return read_manifest(manifest_path)


def _manifest_line(config: RecordConfig, episode: Episode, shards: list[str]) -> dict:
    too_short = not shards
    return {
        "path": f"{episode.meta['source']}#episode={episode.meta['episode']}",
        "status": "skipped" if too_short else "ok",
        "reason": f"episode of {len(episode)} steps is shorter than a clip ({config.clip_frames})" if too_short else "",
        "clips": len(shards),
        "shards": sorted(set(shards)),
        "episode": episode.meta["episode"],
        "seed": episode.meta["seed"],
        "length": len(episode),
        "return": float(episode.rewards.sum()),
        "terminated": bool(episode.terminated[-1]),
    }
