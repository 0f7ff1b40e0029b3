"""Write a training run's model as a model folder: `reverie export RUN_DIR --out MODEL_DIR`.

The folder holds `config.json` and `model.safetensors` (EMA weights unless `--no-ema`), read by
`reverie.nn.model_folder.load_model_folder` or by plain safetensors; nothing in it is pickled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a `reverie train` run folder")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file (default: the run's newest)")
    parser.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw weights, not their EMA")


def run(args: argparse.Namespace) -> int:
    from reverie.training.export import export_run  # Lightning loads only for this command

    try:
        folder = export_run(args.run_dir, args.out, args.checkpoint, args.ema)
    except (FileNotFoundError, ValueError) as error:
        print(f"reverie export: {error}", file=sys.stderr)
        return 1
    print(f"model folder: {folder}")
    return 0
