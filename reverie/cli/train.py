"""Train a model from a config: `reverie train CONFIG [key=value ...]`.

CONFIG is a YAML file under configs/; each `key=value` overrides one field (e.g.
`trainer.max_steps=100 optim.lr=1e-3`). The run folder (`run.dir`) gets the resolved config,
metrics.csv, TensorBoard logs and checkpoints. Run the same command again to resume; only its
length, logging and checkpointing, and where the folder and the data are, may change. A bad key, a
missing data path, a changed config, or a folder another process trains in exits 2 before
anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reverie.shards.folder_lock import FolderLockedError
from reverie.training.config import RunInputError, load_config


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG")
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def run(args: argparse.Namespace) -> int:
    from reverie.training.trainer import fit  # Lightning loads only for this command

    try:
        config = load_config(args.config, args.overrides)
    except (FileNotFoundError, ValueError) as error:
        return refuse(error)
    try:
        run_dir = fit(config)
    except (FolderLockedError, RunInputError) as error:  # raised before fit writes anything
        return refuse(error)
    print(f"run folder: {run_dir}")
    return 0


def refuse(error: Exception) -> int:
    print(f"reverie train: {error}", file=sys.stderr)
    return 2
