"""`reverie COMMAND ...`: the entry point that dispatches to the subcommand modules."""

from __future__ import annotations

import argparse
import sys

from reverie.cli import ingest, inspect, listing, record

COMMANDS = {"ingest": ingest, "record": record, "inspect": inspect, "list": listing}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reverie", description="World models from raw video to planners.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(commands.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
