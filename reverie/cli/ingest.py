"""Ingest raw video into webdataset shards: `reverie ingest INPUT... --out DIR`.

INPUT may be files, folders (searched recursively) and glob patterns. Each input gets one line in
DIR/manifest.jsonl; clips land in DIR/shards/*.tar. Run the same command again to resume.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from reverie.launch.sizes import parse_bytes
from reverie.pipelines.clips import ClipSpec
from reverie.pipelines.decoders import DECODERS, DEFAULT_DECODER
from reverie.pipelines.encode import CLIP_FORMATS
from reverie.pipelines.ingest import IngestConfig, run_ingest, save_run_config
from reverie.pipelines.inputs import expand_inputs, read_input_list
from reverie.pipelines.slices import merge_slices, submit_slices


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
        slice_index=args.slice_index,
        num_slices=args.num_slices,
        progress=args.progress and sys.stderr.isatty(),
    )


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.merge:
        return merge_slices(args.merge, console)
    if args.out is None:
        console.print("[red]reverie ingest: --out DIR is required")
        return 2
    inputs = expand_inputs(args.inputs + (read_input_list(args.input_list) if args.input_list else []))
    if not inputs:
        console.print("[red]reverie ingest: no inputs (give files, folders, globs or --input-list)")
        return 2
    config = _config(args, inputs)
    if args.slurm:
        return submit_slices(config, args, console)
    if config.slice_index is None:
        save_run_config(config)
    lines = run_ingest(config)
    return _report(lines, config, console, strict=args.strict)


def _report(lines: list[dict], config: IngestConfig, console: Console, strict: bool) -> int:
    by_status = {status: sum(line["status"] == status for line in lines) for status in ("ok", "skipped", "failed")}
    clips = sum(line["clips"] for line in lines)
    console.print(
        f"{len(lines)} inputs: {by_status['ok']} ok, {by_status['skipped']} skipped, {by_status['failed']} failed; "
        f"{clips} clips in {config.out / 'shards'}"
    )
    for line in lines:
        if line["status"] == "failed":
            console.print(f"  [yellow]failed[/] {line['path']}: {line['reason']}")
    return 1 if strict and by_status["failed"] else 0
