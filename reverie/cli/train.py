"""Train a model from a config: `reverie train CONFIG [key=value ...]`.

CONFIG is a YAML file under configs/; each `key=value` overrides one field (e.g.
`trainer.max_steps=100 optim.lr=1e-3`). The run folder (`run.dir`) gets the resolved config,
metrics.csv, TensorBoard logs and checkpoints. Run the same command again to resume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reverie.training.config import load_config


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG")
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def run(args: argparse.Namespace) -> int:
    from reverie.training.trainer import fit  # Lightning loads only for this command

    try:
        config = load_config(args.config, args.overrides)
    except (FileNotFoundError, ValueError) as error:
        print(f"reverie train: {error}", file=sys.stderr)
        return 2
    print(f"run folder: {fit(config)}")
    return 0
