"""Training-core throughput: the frame autoencoder through `reverie train`'s trainer, per setting.

On one GPU it runs the real-scale autoencoder (configs/autoencoder/base.yaml, 256 px frames) for
`--steps` steps in each setting -- fp32, bf16-mixed, bf16-mixed + FSDP, bf16-mixed + torch.compile
-- on synthetic 256 px clip shards, and records the step time, frames per second and MFU (model
FLOPs per step, counted once with `torch.utils.flop_counter`, over the step time and the GPU's
dense bf16 peak) in benchmarks/results/train_gpu.json. Without a GPU it runs the tiny config on the
CPU as a check that the script works (benchmarks/results/train_cpu.json, no MFU).

    .venv/bin/python benchmarks/train.py               # GPU if there is one
    .venv/bin/python benchmarks/train.py --steps 20    # quicker
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from common import ROOT, RESULTS, write_json
from reverie.nn.model_folder import MODELS
from reverie.shards.writer import ShardWriter
from reverie.training.config import load_config
from reverie.training.trainer import fit

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}  # dense, per GPU
GPU_SETTINGS = {
    "fp32": ["trainer.precision=32-true", "trainer.strategy=auto", "trainer.compile=false"],
    "bf16": ["trainer.precision=bf16-mixed", "trainer.strategy=auto", "trainer.compile=false"],
    "bf16_fsdp": ["trainer.precision=bf16-mixed", "trainer.strategy=fsdp", "trainer.compile=false"],
    "bf16_compile": ["trainer.precision=bf16-mixed", "trainer.strategy=auto", "trainer.compile=true"],
}
CPU_SETTINGS = {"fp32": ["trainer.precision=32-true", "trainer.strategy=auto"]}


def synthetic_shards(folder: Path, size: int, frames: int, clips: int) -> Path:
    """Clips of a square moving over a gradient: enough structure for a real loss, no decoding cost."""
    rng = np.random.default_rng(0)
    writer = ShardWriter(folder, max_count=16)  # enough shards for every DataLoader worker
    grid = np.linspace(0, 255, size, dtype=np.float32)
    for index in range(clips):
        clip = np.empty((frames, size, size, 3), np.uint8)
        clip[...] = (grid[None, :, None, None] * rng.uniform(0.3, 1.0, 3)).astype(np.uint8)
        x, y, side = *rng.integers(0, size // 2, 2), size // 4
        for t in range(frames):
            clip[t, y : y + side, x + 4 * t : x + 4 * t + side] = 255
        writer.write({"__key__": f"clip{index:05d}", "npy": clip, "json": {"key": f"clip{index:05d}"}})
    writer.finalize()
    return folder


def flops_per_step(config, device: str) -> float:
    """Forward + backward FLOPs of one training batch, counted by torch's FLOP counter."""
    model_config = dict(config.model)
    model_class = MODELS.get(model_config.pop("name"))
    model = model_class(model_class.config_class(**model_config)).to(device)
    size = 256 if device == "cuda" else 32
    frames = torch.rand(config.data.batch_size, config.data.window, 3, size, size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model.training_losses({"frames": frames})["loss"].backward()
    return float(counter.get_total_flops())


def peak_flops() -> float | None:
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def run_setting(config_path: Path, overrides: list[str], run_dir: Path, steps: int) -> dict:
    config = load_config(config_path, [*overrides, f"run.dir={run_dir}", f"trainer.max_steps={steps}", "ema=null"])
    start = time.perf_counter()
    fit(config)
    wall = time.perf_counter() - start
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    warm = rows[len(rows) // 4 :]  # compile and cache warm-up excluded
    samples_per_s = float(np.median([float(row["samples_per_s"]) for row in warm]))
    step_s = config.data.batch_size / samples_per_s
    return {
        "step_s": round(step_s, 5),
        "samples_per_s": round(samples_per_s, 2),
        "frames_per_s": round(samples_per_s * config.data.window, 1),
        "final_loss": float(rows[-1]["loss"]),
        "wall_s": round(wall, 1),
        "config": config_path.name,
        "batch_size": config.data.batch_size,
        "window": config.data.window,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--settings", nargs="*", help="a subset of the settings to run")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available()
    config_path = ROOT / "configs" / "autoencoder" / ("base.yaml" if on_gpu else "tiny.yaml")
    settings = GPU_SETTINGS if on_gpu else CPU_SETTINGS
    size = 256 if on_gpu else 32
    work = Path(tempfile.mkdtemp(prefix="reverie-train-bench-"))
    try:
        window = load_config(config_path).data.window
        shards = synthetic_shards(work / "shards", size, window, clips=512 if on_gpu else 64)
        common = [f"data.shards={shards}", "data.num_workers=" + str(min(8, os.cpu_count() or 1)), "trainer.log_every_n_steps=1"]
        common += ["trainer.devices=1", "checkpoint.every_n_steps=100000"]
        flops = flops_per_step(load_config(config_path), "cuda" if on_gpu else "cpu")
        peak = peak_flops() if on_gpu else None
        results = {}
        for name, overrides in settings.items():
            if args.settings and name not in args.settings:
                continue
            print(f"--- {name}", flush=True)
            result = run_setting(config_path, [*common, *overrides], work / name, args.steps)
            result["tflops_per_s"] = round(flops / result["step_s"] / 1e12, 2)
            if peak:
                result["mfu"] = round(flops / result["step_s"] / peak, 4)
            results[name] = result
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    device = torch.cuda.get_device_name() if on_gpu else platform.processor() or "cpu"
    payload = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": device,
        "torch": torch.__version__,
        "model_flops_per_step": flops,
        "peak_bf16_flops": peak,
        "steps": args.steps,
        "results": results,
    }
    out = RESULTS / ("train_gpu.json" if on_gpu else "train_cpu.json")
    write_json(out, payload)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
