"""Play a generative world model in a window: `reverie play MODEL_DIR (--prompt IMAGE | --start EPISODE_SHARDS...)`.

The keys held choose the action of each step (Genie's latent actions, and models without --env:
digit keys, 1 is action 0; with `--env ENV_ID`: the env's own keys, e.g. ALE's w a s d + space),
the idle action with none held; Escape ends. `--headless --actions 0,1,1,3` plays that sequence
without a window. `--record out.mp4` and `--json FILE` keep the frames and a report either way.
The session is `reverie.play.run_play`; this module parses the flags and calls it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a world model's folder (config.json + model.safetensors)")
    parser.add_argument("--prompt", type=Path, metavar="IMAGE", help="start from this image (any size; resized to the model's frames)")
    parser.add_argument("--start", nargs="+", metavar="EPISODE_SHARDS", help="start from the first frame of the first episode of these shards")
    parser.add_argument("--env", metavar="ENV_ID", help="the gymnasium id the model was trained on (e.g. ALE/Breakout-v5): its keys, its action count checked")
    parser.add_argument("--idle-action", type=int, metavar="A", help="the action with no key held (default: the env's no-key action, else 0)")
    parser.add_argument("--fps", type=float, help="cap on steps a second (default: as fast as the model goes); also the video's rate (default 15)")
    parser.add_argument("--headless", action="store_true", help="no window: take --actions, one step each")
    parser.add_argument("--actions", metavar="SEQ", help="with --headless: comma-separated action indices, e.g. 0,1,1,3")
    parser.add_argument("--record", type=Path, metavar="OUT.mp4", help="write every frame, the start frame first, as an mp4")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the session's report (steps, FPS, start, actions) as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (default 0)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when there is one)")
    parser.add_argument("--scale", type=int, help="window pixels per frame pixel (default: about 512 px on the longer side)")


def run(args: argparse.Namespace) -> int:
    from reverie.nn.world_model import ContextError  # torch loads only for this command
    from reverie.play import PlayConfig, PlayError, run_play

    config = PlayConfig(
        model_dir=args.model_dir,
        prompt=args.prompt,
        start=args.start,
        env=args.env,
        idle_action=args.idle_action,
        fps=args.fps,
        headless=args.headless,
        actions=args.actions,
        record=args.record,
        json=args.json,
        seed=args.seed,
        device=args.device,
        scale=args.scale,
    )
    try:
        run_play(config)
    except (PlayError, ContextError) as error:
        print(f"reverie play: {error}", file=sys.stderr)
        return 2
    return 0
