"""Ingestion at cluster scale: merge the manifests of a SLURM array's slices back into one.

`reverie ingest --slurm` (`reverie.training.launch.ingest_array`) writes the input list and the
array script. Each array task runs `reverie ingest --input-list DIR/inputs.txt --slice i --num-slices K`, which
writes `shards/s{i:04d}-*.tar` and `manifests/slice-{i:04d}.jsonl`; `reverie ingest --merge DIR`
joins the slice manifests into `manifest.jsonl`, in input order, and says which inputs are missing.
Near-duplicates are removed within a slice, not across slices.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from reverie.shards.manifest import read_manifest, write_manifest


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
