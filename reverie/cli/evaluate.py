"""Measure a trained model on held-out data: `reverie evaluate KIND ...`, the report as JSON.

`reverie evaluate tokenizer MODEL_DIR SHARDS... --json FILE`: a video tokenizer's PSNR, SSIM,
latent values and bits per pixel, codebook usage and speed on the first `--clip-frames` frames of
the shards' clips (`reverie.tokenizers.evaluate`).

`reverie evaluate rollout MODEL_DIR EPISODE_SHARDS... --context K --steps N --json FILE`: a
generative world model started from K real frames of each recorded episode window and fed its
recorded actions open-loop for N steps: per-step PSNR, SSIM and drift against the real frames,
teacher-forced next-frame PSNR, reward and termination accuracy where it has heads, and sampling
frames per second (`reverie.pretrain.rollout_evaluation`).

`reverie evaluate genie MODEL_DIR EPISODE_SHARDS... --json FILE [--gif FILE]`: a Genie dynamics
model (trained on its latent action model's labels) on recorded episodes: Genie's Delta_t PSNR at
t = `--horizon` with a 95% interval, the NMI of latent and recorded actions beside a shuffled
baseline, a linear probe's accuracy beside the majority class, the latent actions' codebook use and
generated frames per second (`reverie.pretrain.genie_evaluation`); `--gif` adds a grid of the
first window's start frame with each latent action held for `--gif-steps` steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reverie.shards.writer import write_text_atomically


def add_parser(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    tokenizer = kinds.add_parser("tokenizer", help="a video tokenizer's reconstruction, compression and speed", description=__doc__)
    tokenizer.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a tokenizer's model folder (config.json + model.safetensors)")
    tokenizer.add_argument("shards", nargs="+", metavar="SHARDS", help="held-out shard files, folders of them, or globs")
    tokenizer.add_argument("--json", type=Path, required=True, metavar="FILE", help="where the report goes (written whole)")
    clip_frames = 17  # DEFAULT_CLIP_FRAMES of reverie.tokenizers.evaluate, which imports torch
    tokenizer.add_argument("--clip-frames", type=int, default=clip_frames, metavar="N", help=f"frames per clip, from its start (default {clip_frames})")
    tokenizer.add_argument("--max-clips", type=int, metavar="N", help="clips at most (default: every clip of the shards)")
    tokenizer.add_argument("--batch-size", type=int, default=4, metavar="B", help="clips per batch (default 4)")
    tokenizer.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when there is one)")
    tokenizer.set_defaults(evaluate=evaluate_tokenizer, counted="clips")
    add_rollout_parser(kinds)
    add_genie_parser(kinds)


def add_rollout_parser(kinds) -> None:
    rollout = kinds.add_parser("rollout", help="a world model's open-loop rollouts against recorded episodes", description=__doc__)
    rollout.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a world model's model folder (config.json + model.safetensors)")
    rollout.add_argument("shards", nargs="+", metavar="EPISODE_SHARDS", help="recorded episode shard files, folders of them, or globs")
    rollout.add_argument("--json", type=Path, required=True, metavar="FILE", help="where the report goes (written whole)")
    rollout.add_argument("--context", type=int, required=True, metavar="K", help="real frames each rollout starts from")
    rollout.add_argument("--steps", type=int, required=True, metavar="N", help="recorded actions fed open-loop after them")
    rollout.add_argument("--max-episodes", type=int, metavar="N", help="episode windows at most (default: one per sample of the shards)")
    rollout.add_argument("--batch-size", type=int, default=8, metavar="B", help="windows rolled out together (default 8)")
    rollout.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (default 0)")
    rollout.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when there is one)")
    rollout.set_defaults(evaluate=evaluate_rollout, counted="windows")


def add_genie_parser(kinds) -> None:
    genie = kinds.add_parser("genie", help="a Genie model's controllability and its latent actions against the recorded ones", description=__doc__)
    genie.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a maskgit_dynamics model folder trained with a latent action model")
    genie.add_argument("shards", nargs="+", metavar="EPISODE_SHARDS", help="recorded episode shard files (with actions), folders of them, or globs")
    genie.add_argument("--json", type=Path, required=True, metavar="FILE", help="where the report goes (written whole)")
    genie.add_argument("--horizon", type=int, default=4, metavar="T", help="generated frames per window, Delta_t PSNR at the last (default 4, Genie's)")
    genie.add_argument("--max-windows", type=int, metavar="N", help="windows of 1 + T frames at most (default: every one of the shards)")
    genie.add_argument("--batch-size", type=int, default=16, metavar="B", help="windows generated together (default 16)")
    genie.add_argument("--seed", type=int, default=0, help="seed of the sampling and the random latent actions (default 0)")
    genie.add_argument("--gif", type=Path, metavar="FILE", help="also write the latent-action grid of the first window's start frame")
    genie.add_argument("--gif-steps", type=int, default=8, metavar="N", help="steps each latent action is held in the grid (default 8)")
    genie.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when there is one)")
    genie.set_defaults(evaluate=evaluate_genie, counted="windows")


def evaluate_tokenizer(args: argparse.Namespace) -> dict:
    from reverie.tokenizers.evaluate import evaluate_tokenizer  # torch loads only for this command

    return evaluate_tokenizer(args.model_dir, args.shards, args.clip_frames, args.max_clips, args.batch_size, args.device)


def evaluate_rollout(args: argparse.Namespace) -> dict:
    from reverie.pretrain.rollout_evaluation import evaluate_rollout  # torch loads only for this command

    return evaluate_rollout(
        args.model_dir, args.shards, args.context, args.steps, args.max_episodes, args.seed, args.device, batch_size=args.batch_size
    )


def evaluate_genie(args: argparse.Namespace) -> dict:
    from reverie.planning.control import write_gif  # torch loads only for this command
    from reverie.pretrain.genie_evaluation import evaluate_genie, genie_model, latent_action_panels

    model = genie_model(args.model_dir)
    report = evaluate_genie(model, args.shards, args.horizon, args.max_windows, args.seed, args.device, args.batch_size) | {"model_dir": str(args.model_dir)}
    if args.gif:
        panels = latent_action_panels(model, report["shards"], args.gif_steps, args.seed)
        write_gif(args.gif, [panels[row : row + 4] for row in range(0, len(panels), 4)], fps=4)
        report["gif"] = str(args.gif)
    return report


def run(args: argparse.Namespace) -> int:
    try:
        report = args.evaluate(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"reverie evaluate {args.kind}: {error}", file=sys.stderr)
        return 1
    write_text_atomically(args.json, json.dumps(report, indent=2) + "\n")
    print(f"{args.json}: {args.kind} report, {report.get(args.counted)} {args.counted}")
    return 0
