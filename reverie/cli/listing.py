"""List the registered components of every kind, or of one.

Kinds: decoders, models, agents, planners, goal tasks, scripted recording policies, training tasks,
data modules and quantizers.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rich.console import Console
from rich.table import Table

from reverie.registry import all_registries

# Importing these registers their components. They import torch, so they load only when listing:
# every command's start-up (`reverie ingest` included) would otherwise pay for it.
REGISTERING_MODULES = (
    "reverie.agents.registry",  # the agent registry; agents import when used
    "reverie.nn.model_folder",  # the model registry; models import when used
    "reverie.nn.quantizers",  # the tokenizers' bottlenecks
    "reverie.pipelines.decoders",
    "reverie.pipelines.policies",  # scripted recording policies
    "reverie.planning.goals",
    "reverie.planning.planners",
    "reverie.training.registry",  # tasks and data modules
)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", help="only this registry (e.g. decoder)")


def run(args: argparse.Namespace) -> int:
    for module in REGISTERING_MODULES:
        importlib.import_module(module)
    registries = all_registries()
    if args.kind is not None and args.kind not in registries:
        print(f"reverie list: no registry {args.kind!r}; kinds: {', '.join(sorted(registries))}", file=sys.stderr)
        return 2
    table = Table("kind", "name")
    for kind, registry in sorted(registries.items()):
        if args.kind in (None, kind):
            for name in registry:
                table.add_row(kind, name)
    Console().print(table)
    return 0
