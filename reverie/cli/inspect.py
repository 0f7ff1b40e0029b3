"""Summarise an ingested folder: clips, hours, resolutions, frame rates, failures; a contact sheet."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reverie.shards.inspect import contact_sheet, print_summary, summarize


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="a `reverie ingest --out` folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--sheet", type=Path, help="contact sheet PNG (default DIR/contact_sheet.png)")
    parser.add_argument("--sheet-clips", type=int, default=8, help="clips (rows) on the contact sheet")


def run(args: argparse.Namespace) -> int:
    try:
        summary = summarize(args.folder)
    except FileNotFoundError as error:
        print(f"reverie inspect: {error}", file=sys.stderr)
        return 2
    sheet = contact_sheet(args.folder, args.sheet or args.folder / "contact_sheet.png", clips=args.sheet_clips)
    summary["contact_sheet"] = str(sheet) if sheet else None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0
