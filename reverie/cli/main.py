"""`reverie COMMAND ...`: the entry point that dispatches to the subcommand modules."""

from __future__ import annotations

import argparse
import sys

from reverie.cli import agent, evaluate, export, export_lerobot, ingest, inspect, listing, plan, play, record, submit, train
from reverie.cli import tokenize

COMMANDS = {
    "ingest": ingest,
    "record": record,
    "export-lerobot": export_lerobot,
    "tokenize": tokenize,
    "train": train,
    "submit": submit,
    "export": export,
    "inspect": inspect,
    "evaluate": evaluate,
    "plan": plan,
    "play": play,
    "agent": agent,
    "list": listing,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reverie", description="World models from raw video to planners.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(commands.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and not any(item.startswith("-") for item in extra):
        args.overrides += extra  # key=value overrides may come before or after the flags
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return COMMANDS[args.command].run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
