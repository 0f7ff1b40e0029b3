"""The SLURM array that ingests an input list in slices: `reverie ingest --slurm`.

`submit_slices` writes DIR/inputs.txt and DIR/ingest-array.sbatch (from `slurm/ingest-array.sbatch`)
and submits it. Array task i runs `ENV/bin/reverie ingest --input-list DIR/inputs.txt --slice i
--num-slices K` (the `reverie` of the environment that submitted it, not the first on a node's PATH)
with the same clip settings, writing `shards/s{i:04d}-*.tar` and `manifests/slice-{i:04d}.jsonl`;
`reverie ingest --merge DIR` (`reverie.pipelines.slices`) joins them once every task is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from rich.console import Console
from rich.markup import escape

from reverie.pipelines.errors import SettingsChangedError
from reverie.pipelines.ingest import IngestConfig, check_run_settings, save_run_config
from reverie.shards.writer import write_text_atomically
from reverie.training.launch.slurm import (
    SbatchScriptError,
    quote_command,
    quote_word,
    render,
    reverie_executable,
    submit,
    write_script,
)

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
        "--timeout-per-second", repr(config.timeout_per_second), "--max-timeout", repr(config.max_timeout),
        "--max-pixels", str(config.max_pixels),
    ]  # fmt: skip
    return flags + (["--keep-aspect"] if spec.keep_aspect else [])


def render_array_script(config: IngestConfig, args: argparse.Namespace) -> str:
    out = config.out.absolute()
    quoted_out = quote_word("--out", str(out))  # first, so that a bad folder is named --out, not --input-list
    command = [str(reverie_executable()), "ingest", "--input-list", str(out / "inputs.txt"), "--out", str(out)]
    command += ["--workers", str(args.cpus_per_task), *ingest_flags(config), "--no-progress"]
    directives = dict(
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
    return render(
        "ingest-array.sbatch",
        directives=directives,
        command=quote_command(command),
        num_slices=config.num_slices,
        out=quoted_out,
    )


def submit_slices(config: IngestConfig, args: argparse.Namespace, console: Console) -> int:
    """Write DIR/inputs.txt and DIR/ingest-array.sbatch, then submit it (or print it with --dry-run).
    A value that cannot go into the script is refused (exit 2) before anything is written."""
    slices = args.slices or max(1, math.ceil(len(config.inputs) / INPUTS_PER_SLICE))
    config = dataclasses.replace(config, num_slices=slices, slice_index=None)
    try:
        script = render_array_script(config, args)
        check_run_settings(config)  # a folder made with other clip settings is refused before inputs.txt changes
    except (SbatchScriptError, SettingsChangedError) as error:
        console.print(f"[red]reverie ingest:[/] {escape(str(error))}")
        return 2
    (config.out / "logs").mkdir(parents=True, exist_ok=True)
    write_text_atomically(config.out / "inputs.txt", "".join(f"{path}\n" for path in config.inputs))
    save_run_config(config)
    script_path = write_script(script, config.out / "ingest-array.sbatch")
    if args.dry_run:
        print(script_path.read_text(), end="")
        console.print(f"wrote {script_path} ({slices} array tasks, {len(config.inputs)} inputs); not submitted (--dry-run)")
        return 0
    job_id = submit(script_path)
    console.print(f"submitted job {job_id}: {slices} array tasks over {len(config.inputs)} inputs")
    console.print(f"when it is done: reverie ingest --merge {config.out}")
    return 0
