"""Encode clip shards into latent shards with a video tokenizer: `reverie tokenize MODEL_DIR SHARDS... --out DIR`.

MODEL_DIR is a video tokenizer's model folder (causal_video_autoencoder, st_vivit_tokenizer);
SHARDS are frame shards: tar files, folders (their *.tar, or shards/*.tar as `reverie ingest` and
`reverie record` write them) or globs. Each clip becomes KEY.latents.npy (continuous, float16) or
KEY.tokens.npy (discrete) with its actions, rewards, states and JSON beside it, in DIR/shards/*.tar;
each input shard gets one line in DIR/manifest.jsonl. Run the same command again to resume.

A run holds DIR's lock while it writes, so a second copy exits 2 before it changes a file. A model
folder that is not a video tokenizer, an input that is a latent shard, a DIR that holds another
model's latents, or a bad setting exits 2 too, before any clip is read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from reverie.training.launch.sizes import parse_bytes

MAX_SHOWN = 10  # dropped clips named in the summary; the manifest names the first of each shard


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_folder", type=Path, metavar="MODEL_DIR", help="a video tokenizer's model folder")
    parser.add_argument("shards", nargs="+", metavar="SHARDS", help="frame shards: tar files, folders or globs")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes that decode frames (0: none)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips through the model at once (default 8)")
    parser.add_argument("--device", help="torch device for the model (default cuda when there is one, else cpu)")
    parser.add_argument("--shard-size", type=int, default=1000, help="clips per output shard (default 1000)")
    parser.add_argument("--shard-bytes", type=parse_bytes, default="1GB", help="bytes per output shard (default 1GB)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no live progress bar")


def run(args: argparse.Namespace) -> int:
    import torch  # the model's stack loads for this command only

    from reverie.nn.model_folder import ModelFolderError
    from reverie.pipelines.errors import SettingsError
    from reverie.shards.folder_lock import FolderLockedError
    from reverie.tokenizers.latent_shards import LatentFolderError, TokenizeConfig, TokenizeInputError, run_tokenize
    from reverie.tokenizers.latents import NotAVideoTokenizerError

    console = Console(stderr=True)
    refused = (SettingsError, FileNotFoundError, ModelFolderError, NotAVideoTokenizerError, TokenizeInputError, LatentFolderError, FolderLockedError)
    try:
        config = TokenizeConfig(
            model_folder=args.model_folder,
            inputs=args.shards,
            out=args.out,
            workers=args.workers,
            batch_size=args.batch_size,
            device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
            shard_max_count=args.shard_size,
            shard_max_bytes=args.shard_bytes,
            progress=args.progress and sys.stderr.isatty(),
        )
        lines = run_tokenize(config)
    except refused as error:
        console.print(f"[red]reverie tokenize:[/] {escape(str(error))}")
        return 2
    return _report(lines, config.out, console)


def _report(lines: list[dict], out: Path, console: Console) -> int:
    failed = [line for line in lines if line["status"] == "failed"]
    dropped = sum(sum(line["dropped"].values()) for line in lines)
    clips = sum(line["clips"] for line in lines)
    console.print(f"{len(lines)} shards: {len(lines) - len(failed)} ok, {len(failed)} failed; {clips} clips, {dropped} dropped, in {out / 'shards'}")
    for line in failed:
        console.print(f"  [yellow]failed[/] {escape(line['path'])}: {escape(line['reason'])}")
    named = [(line["path"], error) for line in lines for error in line["errors"]]
    for path, error in named[:MAX_SHOWN]:
        console.print(f"  [yellow]dropped[/] {escape(path)}: {escape(error)}")
    if len(named) > MAX_SHOWN:
        console.print(f"  ... and more: see the errors of {out / 'manifest.jsonl'}")
    return 0
