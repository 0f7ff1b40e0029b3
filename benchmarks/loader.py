"""How fast clips reach training: `ClipLoader` over shards, next to decoding the source videos.

On one generated set (cached in benchmarks/.data/), ingested once with `--format mp4` and once
with `--format npy` (same clips), it measures one epoch of:

  (a) `source_decode`: the loader without shards -- a DataLoader whose workers decode the source
      videos with the default backend at the ingest fps and size, cut consecutive clips and turn
      them into float tensors;
  (b) `shards_mp4`, `shards_npy`: `ClipLoader(ClipDataset(shards))`, whole clips, same batch size;

each with 0, 1 and 2 DataLoader workers (workers restart every epoch, as they do in training).
Reported: samples/s, MB/s read (source or shard bytes) and MB/s delivered (float32 frames), best of
`--repeats`. A loader keeps up when samples/s exceeds batch size / training step time.
Everything lands in benchmarks/results/loader.json.

    .venv/bin/python benchmarks/loader.py
    .venv/bin/python benchmarks/loader.py --videos 4 --seconds 8 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from reverie.shards.clip_tensors import as_tensor
from reverie.pipelines.clips import ClipSpec
from reverie.pipelines.decoders import DECODERS, DEFAULT_DECODER
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.ingest import IngestConfig, run_ingest
from reverie.shards.loader import ClipDataset, ClipLoader
from reverie.pipelines.probe import probe
from common import DATA, generated_once, write_json
from reverie.pipelines.synthetic import make_sample_set

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "loader.json"
MB = 1e6


def make_inputs(args: argparse.Namespace) -> Path:
    """Generate the source videos once (`common.generated_once`)."""
    return generated_once(
        DATA / f"loader-inputs-{args.videos}x{args.seconds:g}s",
        lambda partial: make_sample_set(partial, count=args.videos, seconds=args.seconds, size=(480, 270)),
        f"{args.videos} videos of {args.seconds:g} s",
    )


def ingest(folder: Path, spec: ClipSpec, args: argparse.Namespace) -> Path:
    """Ingest the set in `spec.clip_format` (a finished ingest is a no-op: it resumes)."""
    out = DATA / f"loader-{folder.name}-{spec.clip_format}-{spec.size}"
    inputs = [str(path) for path in sorted(folder.iterdir())]
    run_ingest(IngestConfig(inputs=inputs, out=out, spec=spec, workers=args.workers_max, shard_max_count=args.shard_size, progress=False))
    return out / "shards"


class SourceVideoClips(IterableDataset):
    """Consecutive clips decoded straight from the source videos, videos split over workers."""

    def __init__(self, paths: list[str], spec: ClipSpec):
        self.paths, self.spec = paths, spec

    def __iter__(self):
        info = get_worker_info()
        mine = self.paths if info is None else self.paths[info.id :: info.num_workers]
        for path in mine:
            video = probe(path)
            geometry = FrameGeometry.fit(video.width, video.height, self.spec.size)
            pending = []
            for _, frame in DECODERS.get(DEFAULT_DECODER)().frames(video, self.spec.fps, geometry):
                pending.append(frame)
                if len(pending) == self.spec.clip_frames:
                    yield {"frames": as_tensor("frames", np.stack(pending))}
                    pending = []


def time_epoch(loader) -> tuple[float, int, int]:
    """(seconds, samples, float32 frame bytes) of one pass over `loader`."""
    started, samples, delivered = time.perf_counter(), 0, 0
    for batch in loader:
        samples += len(batch["frames"])
        delivered += batch["frames"].numel() * batch["frames"].element_size()
    return time.perf_counter() - started, samples, delivered


def measure(name: str, make_loader, read_bytes_per_sample: float, repeats: int) -> dict:
    runs = [time_epoch(make_loader()) for _ in range(repeats)]
    seconds, samples, delivered = min(runs)
    result = {
        "wall_s": round(seconds, 4),
        "samples": samples,
        "samples_per_s": round(samples / seconds, 1),
        "read_mb_per_s": round(samples * read_bytes_per_sample / seconds / MB, 1),
        "delivered_mb_per_s": round(delivered / seconds / MB, 1),
        "runs_s": [round(run[0], 4) for run in runs],
    }
    print(f"{name:<22}{result['samples_per_s']:>11.1f}{result['read_mb_per_s']:>10.1f}{result['delivered_mb_per_s']:>13.1f}", flush=True)
    return result


def shard_loader(shards: Path, batch_size: int, workers: int) -> ClipLoader:
    return ClipLoader(ClipDataset(shards, seed=0), batch_size, num_workers=workers)


def shard_bytes_per_sample(shards: Path) -> tuple[float, int]:
    dataset = ClipDataset(shards)
    total = sum(path.stat().st_size for path in shards.glob("*.tar"))
    return total / dataset.total_samples, dataset.total_samples


def run_all(folder: Path, shard_dirs: dict[str, Path], spec: ClipSpec, args: argparse.Namespace) -> tuple[dict, dict]:
    paths = [str(path) for path in sorted(folder.iterdir())]
    clips_in_sources = sum(1 for _ in SourceVideoClips(paths, spec))
    source_bytes = sum(Path(path).stat().st_size for path in paths) / clips_in_sources
    inputs = {"videos": len(paths), "source_mb": round(source_bytes * clips_in_sources / MB, 2), "source_clips": clips_in_sources}
    print(f"\n{'contender':<22}{'samples/s':>11}{'read MB/s':>10}{'deliver MB/s':>13}")
    results = {}
    for workers in args.workers:
        loader = partial(DataLoader, SourceVideoClips(paths, spec), args.batch_size, num_workers=workers)
        results[f"source_decode_w{workers}"] = measure(f"source_decode_w{workers}", loader, source_bytes, args.repeats)
    for clip_format, shards in shard_dirs.items():
        per_sample, count = shard_bytes_per_sample(shards)
        inputs[f"shards_{clip_format}"] = {
            "shards": len(list(shards.glob("*.tar"))),
            "clips": count,
            "mb": round(per_sample * count / MB, 2),
        }
        for workers in args.workers:
            name = f"shards_{clip_format}_w{workers}"
            loader = partial(shard_loader, shards, args.batch_size, workers)
            results[name] = measure(name, loader, per_sample, args.repeats)
    return inputs, results




def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12, help="source videos (default 12)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each, seconds (default 20)")
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--clip-frames", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=16, help="clips per shard (default 16)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers to try (default 0 1 2)")
    parser.add_argument("--repeats", type=int, default=3, help="epochs of each; the best counts (default 3)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    args.workers_max = max(1, *args.workers)
    return args


def main() -> None:
    args = parse_args()
    folder = make_inputs(args)
    started = time.perf_counter()
    shard_dirs = {}
    for clip_format in ("mp4", "npy"):
        spec = ClipSpec(clip_frames=args.clip_frames, fps=args.fps, size=args.size, clip_format=clip_format)
        shard_dirs[clip_format] = ingest(folder, spec, args)
    print(f"ingested (or found) both formats in {time.perf_counter() - started:.1f} s; {os.cpu_count()} cores, torch {torch.__version__}")
    inputs, results = run_all(folder, shard_dirs, spec, args)
    write_json(
        args.out,
        {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "torch": torch.__version__,
            },
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "inputs": inputs,
            "results": results,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
