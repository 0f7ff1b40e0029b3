"""Record episodes of a gymnasium environment as shards: `reverie record ENV --episodes N --out DIR`.

Each clip carries its frames with aligned actions, rewards, terminated and truncated flags (and the
low-dimensional state when the env has one). Run the same command again to resume; a second copy
run while the first still writes DIR exits 2, naming the first one's pid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
from rich.console import Console

from reverie.shards.folder_lock import FolderLockedError
from reverie.shards.payloads import CLIP_FORMATS
from reverie.pipelines.record import RecordConfig, run_record


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env_id", metavar="ENV", help="a gymnasium id, e.g. CartPole-v1, Reacher-v5, ALE/Pong-v5, gym_pusht/PushT-v0")
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--policy", default="random", help="random, scripted, or a model folder")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    parser.add_argument("--size", type=int, default=96, help="short side of stored frames")
    parser.add_argument("--square", action="store_true", help="stretch frames to SIZE x SIZE (e.g. Atari at 64 x 64) instead of keeping the aspect")
    parser.add_argument("--clip-frames", type=int, default=16)
    parser.add_argument("--stride", type=int, help="frames between clip starts (default: --clip-frames)")
    parser.add_argument("--format", dest="clip_format", default="mp4", choices=CLIP_FORMATS)
    parser.add_argument("--max-steps", type=int, help="cut episodes off after this many steps")
    parser.add_argument("--shard-size", type=int, default=1000, help="clips per shard")


def run(args: argparse.Namespace) -> int:
    config = RecordConfig(
        env_id=args.env_id,
        episodes=args.episodes,
        out=args.out,
        policy=args.policy,
        seed=args.seed,
        size=args.size,
        square=args.square,
        clip_frames=args.clip_frames,
        stride=args.stride,
        clip_format=args.clip_format,
        max_steps=args.max_steps,
        shard_max_count=args.shard_size,
        progress=sys.stderr.isatty(),
    )
    try:
        lines = run_record(config)
    except (KeyError, ValueError, FileNotFoundError, FolderLockedError, gym.error.Error) as error:
        print(f"reverie record: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 2
    clips = sum(line["clips"] for line in lines)
    mean_return = sum(line["return"] for line in lines) / max(len(lines), 1)
    Console(stderr=True).print(f"{len(lines)} episodes of {args.env_id}, {clips} clips, mean return {mean_return:.2f} -> {args.out / 'shards'}")
    return 0
