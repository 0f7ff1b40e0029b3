"""Ingest raw video into webdataset shards: `reverie ingest INPUT... --out DIR`.

INPUT may be files, folders (searched recursively) and glob patterns. Each input gets one line in
DIR/manifest.jsonl; clips land in DIR/shards/*.tar. Run the same command again to resume.

A folder with meta/info.json at its root is a LeRobot dataset (v3.0 or v2.1): each episode becomes
episode clips with its cameras, actions and states (`lerobot_import`), one manifest line per episode,
in DIR/shards/lerobot-*.tar. Clips keep the dataset's fps; --size, --keep-aspect, --format,
--clip-frames, --shard-size, --shard-bytes and --strict apply, the filters, --fps and --decoder do not.
LeRobot datasets and videos go in separate calls (they may share DIR).

A run holds DIR's lock while it writes (an array task, its slice's), so a second copy of the command
exits 2 before it changes a file. A bad setting, or a resume with other clip settings than DIR's
ingest.json, exits 2 too, before any input is read. --retry-failed decodes the failed inputs again.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from reverie.training.launch.sizes import parse_bytes
from reverie.pipelines.clips import ClipSpec
from reverie.pipelines.decoders import DECODERS, DEFAULT_DECODER
from reverie.pipelines.errors import SettingsChangedError, SettingsError
from reverie.shards.folder_lock import FolderLock, FolderLockedError
from reverie.shards.payloads import CLIP_FORMATS
from reverie.pipelines.ingest import MAX_PIXELS_8K, IngestConfig, run_ingest
from reverie.pipelines.inputs import expand_inputs, read_input_list
from reverie.pipelines.lerobot.importer import LeRobotImportConfig, run_lerobot_import, split_lerobot_inputs
from reverie.pipelines.slices import merge_slices
from reverie.training.launch.ingest_array import submit_slices


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="video files, folders or glob patterns")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--input-list", type=Path, help="a file with one input path per line")
    clips = parser.add_argument_group("clips")
    clips.add_argument("--decoder", default=DEFAULT_DECODER, choices=DECODERS.names())
    clips.add_argument("--clip-frames", type=int, default=16, help="frames per clip (default 16)")
    clips.add_argument("--fps", type=float, default=8.0, help="frame rate clips are resampled to (default 8)")
    clips.add_argument("--size", type=int, default=256, help="short side in pixels, then centre crop (default 256)")
    clips.add_argument("--keep-aspect", action="store_true", help="keep the aspect ratio: no crop")
    clips.add_argument("--format", dest="clip_format", default="mp4", choices=CLIP_FORMATS, help="clip payload")
    filters = parser.add_argument_group("filters (each can be turned off)")
    filters.add_argument("--scene-cuts", action=argparse.BooleanOptionalAction, default=True, help="no clip spans a shot change")
    filters.add_argument("--cut-threshold", type=float, default=27.0, help="HSV change that makes a cut (0..255)")
    filters.add_argument("--min-duration", type=float, default=1.0, help="skip inputs shorter than this, seconds (0: off)")
    filters.add_argument("--min-motion", type=float, default=0.002, help="drop clips with a lower motion score (0: off)")
    filters.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=True, help="drop near-duplicate clips")
    filters.add_argument("--dedup-distance", type=int, default=8, help="Hamming distance of near-duplicates (of 256 bits)")
    output = parser.add_argument_group("output and scale")
    output.add_argument("--shard-size", type=int, default=1000, help="clips per shard (default 1000)")
    output.add_argument("--shard-bytes", type=parse_bytes, default="1GB", help="bytes per shard (default 1GB)")
    output.add_argument("--workers", type=int, default=os.cpu_count(), help="local worker processes")
    output.add_argument("--probe-timeout", type=float, default=60.0, help="seconds before a probe counts as hung")
    output.add_argument("--timeout", type=float, default=120.0, help="decode timeout: this many seconds ...")
    output.add_argument("--timeout-per-second", type=float, default=10.0, help="... plus this many per second of video")
    output.add_argument("--max-timeout", type=float, default=600.0, help="... but never more than this, whatever a file declares")
    output.add_argument("--max-pixels", type=int, default=MAX_PIXELS_8K, help="fail a file whose frames are larger (default 8K)")
    output.add_argument("--retry-failed", action="store_true", help="decode the inputs that failed in an earlier run again")
    output.add_argument("--strict", action="store_true", help="exit non-zero when any input failed")
    output.add_argument("--no-progress", dest="progress", action="store_false", help="no live progress bar")
    slurm = parser.add_argument_group("SLURM array jobs")
    slurm.add_argument("--slurm", action="store_true", help="render and submit an sbatch array script")
    slurm.add_argument("--dry-run", action="store_true", help="with --slurm: write and print the script only")
    slurm.add_argument("--slices", type=int, default=None, help="array tasks (default: one per 100 inputs)")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--time", default="04:00:00")
    slurm.add_argument("--cpus-per-task", type=int, default=8)
    slurm.add_argument("--mem", default="32G")
    slurm.add_argument("--slice", dest="slice_index", type=int, help="ingest only slice i of --num-slices")
    slurm.add_argument("--num-slices", type=int, default=1)
    slurm.add_argument("--merge", type=Path, metavar="DIR", help="join the slices' manifests of DIR")


def _config(args: argparse.Namespace, inputs: list[str]) -> IngestConfig:
    spec = ClipSpec(
        clip_frames=args.clip_frames,
        fps=args.fps,
        size=args.size,
        keep_aspect=args.keep_aspect,
        scene_cuts=args.scene_cuts,
        cut_threshold=args.cut_threshold,
        min_duration=args.min_duration,
        min_motion=args.min_motion,
        clip_format=args.clip_format,
        decoder=args.decoder,
    )
    return IngestConfig(
        inputs=inputs,
        out=args.out,
        spec=spec,
        workers=args.workers,
        shard_max_count=args.shard_size,
        shard_max_bytes=args.shard_bytes,
        dedup=args.dedup,
        dedup_distance=args.dedup_distance,
        probe_timeout=args.probe_timeout,
        decode_timeout=args.timeout,
        timeout_per_second=args.timeout_per_second,
        max_timeout=args.max_timeout,
        max_pixels=args.max_pixels,
        slice_index=args.slice_index,
        num_slices=args.num_slices,
        progress=args.progress and sys.stderr.isatty(),
        retry_failed=args.retry_failed,
    )


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.merge:
        return merge_slices(args.merge, console)
    if args.out is None:
        console.print("[red]reverie ingest: --out DIR is required")
        return 2
    arguments = args.inputs + (read_input_list(args.input_list) if args.input_list else [])
    datasets, videos = split_lerobot_inputs(arguments)
    if datasets:
        return _run_lerobot(args, datasets, videos, console)
    inputs = expand_inputs(videos)
    if not inputs:
        console.print("[red]reverie ingest: no inputs (give files, folders, globs or --input-list)")
        return 2
    try:
        config = _config(args, inputs)
        if args.slurm:
            return submit_slices(config, args, console)  # refuses other clip settings than DIR's (save_run_config)
        lines = run_ingest(config)
    except (SettingsError, SettingsChangedError, FolderLockedError) as error:
        console.print(f"[red]reverie ingest:[/] {escape(str(error))}")
        return 2
    return _report(lines, config.out, console, strict=args.strict)


def _run_lerobot(args: argparse.Namespace, datasets: list[Path], videos: list[str], console: Console) -> int:
    if videos:
        console.print(
            f"[red]reverie ingest: {datasets[0]} is a LeRobot dataset (meta/info.json) but {videos[0]} is not; "
            "ingest LeRobot datasets and videos in separate calls (they may share --out)"
        )
        return 2
    if args.slurm or args.slice_index is not None:
        console.print("[red]reverie ingest: --slurm and --slice are for videos, not LeRobot datasets")
        return 2
    config = LeRobotImportConfig(
        datasets=datasets,
        out=args.out,
        size=args.size,
        keep_aspect=args.keep_aspect,
        clip_frames=args.clip_frames,
        clip_format=args.clip_format,
        shard_prefix="lerobot-",  # apart from video shards, whose resume reads their filter scores
        shard_max_count=args.shard_size,
        shard_max_bytes=args.shard_bytes,
        progress=args.progress and sys.stderr.isatty(),
        workers=max(1, args.workers or 1),
        meta_timeout=args.probe_timeout,
        decode_timeout=args.timeout,
        timeout_per_second=args.timeout_per_second,
        max_timeout=args.max_timeout,
    )
    try:
        with FolderLock(config.out):  # the lock of DIR/manifest.jsonl, which video ingestion writes too
            lines = run_lerobot_import(config)
    except FolderLockedError as error:
        console.print(f"[red]reverie ingest:[/] {escape(str(error))}")
        return 2
    return _report(lines, config.out, console, strict=args.strict, unit="episodes")


def _report(lines: list[dict], out: Path, console: Console, strict: bool, unit: str = "inputs") -> int:
    by_status = {status: sum(line["status"] == status for line in lines) for status in ("ok", "skipped", "failed")}
    clips = sum(line["clips"] for line in lines)
    console.print(
        f"{len(lines)} {unit}: {by_status['ok']} ok, {by_status['skipped']} skipped, {by_status['failed']} failed; "
        f"{clips} clips in {out / 'shards'}"
    )
    for line in lines:
        if line["status"] == "failed":
            console.print(f"  [yellow]failed[/] {line['path']}: {line['reason']}")
    return 1 if strict and by_status["failed"] else 0
