"""Ingestion at cluster scale: split the input list into SLURM array slices, and merge them back.

Each array task runs `reverie ingest --input-list DIR/inputs.txt --slice i --num-slices K`, which
writes `shards/s{i:04d}-*.tar` and `manifests/slice-{i:04d}.jsonl`; `reverie ingest --merge DIR`
joins the slice manifests into `manifest.jsonl`, in input order, and says which inputs are missing.
Near-duplicates are removed within a slice, not across slices.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

from rich.console import Console

from reverie.launch.slurm import quote_command, render, sbatch_directives, submit, write_script
from reverie.pipelines.ingest import IngestConfig, save_run_config
from reverie.pipelines.manifest import read_manifest, write_manifest

INPUTS_PER_SLICE = 100


def _switch(name: str, on: bool) -> str:
    return f"--{name}" if on else f"--no-{name}"


def ingest_flags(config: IngestConfig) -> list[str]:
    """The `reverie ingest` flags that reproduce `config`'s clip settings in an array task."""
    spec = config.spec
    flags = [
        "--decoder", spec.decoder, "--clip-frames", str(spec.clip_frames), "--fps", repr(spec.fps),
        "--size", str(spec.size), "--format", spec.clip_format, _switch("scene-cuts", spec.scene_cuts),
        "--cut-threshold", repr(spec.cut_threshold), "--min-duration", repr(spec.min_duration),
        "--min-motion", repr(spec.min_motion), _switch("dedup", config.dedup), "--dedup-distance", str(config.dedup_distance),
        "--shard-size", str(config.shard_max_count), "--shard-bytes", str(config.shard_max_bytes),
        "--probe-timeout", repr(config.probe_timeout), "--timeout", repr(config.decode_timeout),
        "--timeout-per-second", repr(config.timeout_per_second),
    ]  # fmt: skip
    return flags + (["--keep-aspect"] if spec.keep_aspect else [])


def render_array_script(config: IngestConfig, args: argparse.Namespace) -> str:
    out = config.out.absolute()
    directives = sbatch_directives(
        job_name="reverie-ingest",
        array=f"0-{config.num_slices - 1}",
        partition=args.partition,
        account=args.account,
        time=args.time,
        nodes=1,
        ntasks=1,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        output=str(out / "logs" / "ingest-%A_%a.out"),
    )
    command = ["reverie", "ingest", "--input-list", str(out / "inputs.txt"), "--out", str(out)]
    command += ["--workers", str(args.cpus_per_task), *ingest_flags(config), "--no-progress"]
    return render(
        "ingest-array.sbatch",
        directives=directives,
        command=quote_command(command),
        num_slices=config.num_slices,
        out=quote_command([str(out)]),
    )


def submit_slices(config: IngestConfig, args: argparse.Namespace, console: Console) -> int:
    """Write DIR/inputs.txt and DIR/ingest-array.sbatch, then submit it (or print it with --dry-run)."""
    slices = args.slices or max(1, math.ceil(len(config.inputs) / INPUTS_PER_SLICE))
    config = dataclasses.replace(config, num_slices=slices, slice_index=None)
    (config.out / "logs").mkdir(parents=True, exist_ok=True)
    (config.out / "inputs.txt").write_text("".join(f"{path}\n" for path in config.inputs))
    save_run_config(config)
    script_path = write_script(render_array_script(config, args), config.out / "ingest-array.sbatch")
    if args.dry_run:
        print(script_path.read_text(), end="")
        console.print(f"wrote {script_path} ({slices} array tasks, {len(config.inputs)} inputs); not submitted (--dry-run)")
        return 0
    job_id = submit(script_path)
    console.print(f"submitted job {job_id}: {slices} array tasks over {len(config.inputs)} inputs")
    console.print(f"when it is done: reverie ingest --merge {config.out}")
    return 0


def merge_slices(out: Path, console: Console) -> int:
    """Join `manifests/slice-*.jsonl` into `manifest.jsonl`; return 1 if some inputs have no line yet."""
    run_file = out / "ingest.json"
    if not run_file.exists():
        console.print(f"[red]reverie ingest --merge: {run_file} not found (was {out} made by reverie ingest --slurm?)")
        return 2
    inputs = json.loads(run_file.read_text())["inputs"]
    lines = {line["path"]: line for part in sorted((out / "manifests").glob("slice-*.jsonl")) for line in read_manifest(part)}
    merged = [lines[path] for path in inputs if path in lines]
    write_manifest(out / "manifest.jsonl", merged)
    missing = len(inputs) - len(merged)
    console.print(f"merged {len(merged)} manifest lines into {out / 'manifest.jsonl'}")
    if missing:
        absent = [path for path in inputs if path not in lines]
        (out / "missing_inputs.txt").write_text("".join(f"{path}\n" for path in absent))
        console.print(f"[yellow]{missing} of {len(inputs)} inputs have no manifest line yet (listed in {out / 'missing_inputs.txt'}):")
        for path in absent[:10]:
            console.print(f"  {path}")
        console.print(f"resubmit {out / 'ingest-array.sbatch'} to finish them")
    return 1 if missing else 0
