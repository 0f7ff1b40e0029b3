"""List every registered component: decoders, models, agents, tokenizers."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

import reverie.nn.model_folder  # noqa: F401  (the model registry; models import when used)
import reverie.pipelines.decoders  # noqa: F401  (registers the decoders)
import reverie.posttrain.planners  # noqa: F401  (registers the planners)
import reverie.training.registry  # noqa: F401  (tasks and data modules)
from reverie.registry import all_registries


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", help="only this registry (e.g. decoder)")


def run(args: argparse.Namespace) -> int:
    table = Table("kind", "name")
    for kind, registry in sorted(all_registries().items()):
        if args.kind in (None, kind):
            for name in registry:
                table.add_row(kind, name)
    Console().print(table)
    return 0
