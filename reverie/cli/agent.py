"""Train an agent on a gymnasium environment: `reverie agent NAME --env ENV [key=value ...] --out DIR`.

NAME is a registered agent (`reverie list agent`); the `key=value` items and the run folder are
described in `reverie.agents.run_folder`. Run the same command again to resume from the
checkpoint, with a larger budget to train on; `--fresh` starts over. A second process on the same
folder exits 2 at once, naming the one that writes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="a registered agent, e.g. dyna_q, dyna_q_plus, prioritized_sweeping")
    parser.add_argument("--env", required=True, help="a gymnasium id, e.g. reverie/DynaMaze-v0")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/agents/NAME-ENV)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out and start over")


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym  # loads only for this command
    from omegaconf.errors import OmegaConfBaseException

    from reverie.agents.run_folder import open_agent_run, train_agent_run
    from reverie.shards.folder_lock import FolderLockedError

    try:  # a bad request (RunFolderError is a ValueError), or the folder another process writes
        agent_run = open_agent_run(args.name, args.env, args.overrides, args.out, args.seed, args.fresh)
    except (KeyError, OmegaConfBaseException, gym.error.Error, TypeError, ValueError, FolderLockedError) as error:
        print(f"reverie agent: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 2
    with agent_run:  # holds the folder's lock
        print(train_agent_run(agent_run))
    return 0
