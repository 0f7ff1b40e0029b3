"""Write episode shards as a LeRobot v3.0 dataset: `reverie export-lerobot SHARDS --out DIR`.

SHARDS is a `reverie record` or `reverie ingest` output folder (or its `shards/`). Clips are put
back together into whole episodes; each camera becomes an H.264 video feature, actions `action`,
states `observation.state`, rewards `next.reward`, episode ends `next.done`. `LeRobotDataset(repo_id,
root=DIR)` loads the result. Nothing is written outside DIR (and its `.DIR.partial` sibling while
it is written); --overwrite replaces only a LeRobot dataset, and only once the new one is complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from reverie.pipelines.lerobot.exporter import LeRobotExportConfig, run_lerobot_export


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", type=Path, metavar="SHARDS_DIR", help="a folder of episode shards, or one with shards/ in it")
    parser.add_argument("--out", type=Path, required=True, help="the LeRobot dataset folder to write")
    parser.add_argument("--fps", type=float, help="frame rate for info.json (default: the clips'; frames are not resampled)")
    parser.add_argument("--repo-id", default="reverie/export", help="dataset name for the card (default reverie/export)")
    parser.add_argument("--robot-type", help="info.json robot_type (default: the clips' robot_type or env id)")
    parser.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out (a LeRobot dataset) once the new export is complete")


def run(args: argparse.Namespace) -> int:
    config = LeRobotExportConfig(
        shards=args.shards,
        out=args.out,
        fps=args.fps,
        repo_id=args.repo_id,
        robot_type=args.robot_type,
        crf=args.crf,
        overwrite=args.overwrite,
    )
    console = Console(stderr=True)
    try:
        summary = run_lerobot_export(config)
    except (FileExistsError, ValueError) as error:
        console.print(f"[red]reverie export-lerobot: {error}")
        return 1
    console.print(f"{summary['episodes']} episodes, {summary['frames']} frames, {summary['tasks']} tasks -> {summary['out']}")
    return 0
