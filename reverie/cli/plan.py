"""Plan toward goal images with a world model, in an env (`--env ENV --goal-from-env`) or from a robot's camera images (`--frame NOW.png --goal GOAL.png`).

Each episode starts from a seeded state (episode i: seed + i) and replans every step: encode the
frame, search action sequences with CEM or MPPI for the lowest model energy to the goal image,
execute the first action. With `--goal-from-env` the env's goal task makes a held-out goal per
episode (`reverie.planning.goals`) and success is measured in the simulator's true state; with
`--goal IMAGE` there is no true goal state, so only the model's feature distance is reported.
`--baseline random zero oracle` runs, on the same goals, uniform random actions, the zero action
(holding still) and the oracle (the same planner through the true simulator's state); without
MODEL_DIR only they run (at `--size`), e.g. while the model is still training. The loop is
`reverie.planning.goal_planning.plan_toward_goals`; this module parses the flags and calls it.

With `--frame NOW.png` there is no env: a robot's current camera image (after `--frames`, the
earlier ones, oldest first, with `--actions`, the actions taken between them, row after row),
`--state`, the robot's state where the model reads states, and `--goal GOAL.png` are planned from
once (`reverie.planning.offline.plan_from_files`); the first action and the energy are printed,
the whole plan goes to `--json`. The action box is `--low/--high` or `--action-bound` (a model
folder holds none). The flags of episodes in an env (`--episodes`, `--baseline`, ...) are errors there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# flags that only one mode reads: argparse dest -> flag
ENV_ONLY = {"env_id": "--env", "goal_from_env": "--goal-from-env", "episodes": "--episodes", "context_frames": "--context-frames"}
ENV_ONLY |= {"steps": "--steps", "success_distance": "--success-distance", "baseline": "--baseline", "gif": "--gif", "gif_episodes": "--gif-episodes"}
OFFLINE_ONLY = {"frames": "--frames", "actions": "--actions", "state": "--state", "low": "--low", "high": "--high", "action_bound": "--action-bound"}


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", type=Path, nargs="?", metavar="MODEL_DIR",
        help="a model folder (config.json + model.safetensors), e.g. vjepa_ac; left out with --env: only the --baseline policies run (give --size)",
    )
    parser.add_argument("--env", dest="env_id", help="a gymnasium id with a goal task: Reacher-v5, gym_pusht/PushT-v0")
    goal = parser.add_mutually_exclusive_group()  # one of them with --env; --goal with --frame
    goal.add_argument("--goal", type=Path, metavar="IMAGE", help="one goal image (PNG) for every episode (with --frame: the goal); no true-state success")
    goal.add_argument("--goal-from-env", action="store_true", help="a held-out goal per episode from the env's goal task")
    parser.add_argument("--episodes", type=int, help="goals, one episode each (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="episode i starts from seed + i; seeds the planner too")
    parser.add_argument("--planner", default="cem", help="a registered planner: cem or mppi")
    parser.add_argument("--horizon", type=int, help="H, steps per planned sequence (planner default 8)")
    parser.add_argument("--samples", type=int, help="N, sequences per search iteration (planner default 256)")
    parser.add_argument("--iterations", type=int, help="search iterations per step (planner default 6)")
    parser.add_argument("--std", type=float, help="sampling std in action units (CEM init_std, MPPI noise_std); default: a quarter of the action range")
    parser.add_argument("--context-frames", type=int, help="plan from the last K frames and the actions between them (default 1: the current frame)")
    parser.add_argument("--action-cost", type=float, default=0.0, help="lambda: add lambda * mean |action| to the energy (default 0: the energy alone)")
    parser.add_argument("--steps", type=int, help="steps per episode (default: the goal task's)")
    parser.add_argument(
        "--success-distance", type=float, help="success when the true-state distance ends under this (default: the goal task's, e.g. Reacher 0.02 m)"
    )
    parser.add_argument("--size", type=int, help="frame side in px (default: the model's training frames)")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, ...")
    parser.add_argument("--baseline", nargs="+", choices=["random", "zero", "oracle"], metavar="NAME", help="also run these policies on the same goals: random, zero (hold still), oracle (the same search through the true simulator)")
    parser.add_argument("--gif", type=Path, metavar="PATH", help="write the first episodes (goal | planned | baseline) as a GIF")
    parser.add_argument("--gif-episodes", type=int, help="episodes in the GIF (default 4)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the per-episode results and the summary as JSON (with --frame: the plan)")
    offline = parser.add_argument_group("planning from a robot's images, without an env")
    offline.add_argument("--frame", type=Path, metavar="IMAGE", help="the current camera image: plan once from it toward --goal")
    offline.add_argument("--frames", type=Path, nargs="+", metavar="IMAGE", help="the camera images before --frame, oldest first")
    offline.add_argument("--actions", type=float, nargs="+", metavar="A", help="the actions taken between the frames (--frames, then --frame), row after row")
    offline.add_argument("--state", type=float, nargs="+", metavar="S", help="the robot's state at --frame (with --frames: at every frame, oldest first)")
    offline.add_argument("--low", type=float, nargs="+", metavar="A", help="the action box's lower bound, one value per dimension (or one for all)")
    offline.add_argument("--high", type=float, nargs="+", metavar="A", help="its upper bound")
    offline.add_argument("--action-bound", type=float, metavar="B", help="or the symmetric box [-B, B]")


def settings_from_args(args: argparse.Namespace):
    """The run's `GoalPlanningSettings` from the parsed flags; unset ones keep the settings' defaults."""
    from reverie.planning.goal_planning import GoalPlanningSettings

    fields = dict(
        env_id=args.env_id,
        goal_image=None if args.goal_from_env else args.goal,
        episodes=args.episodes,
        seed=args.seed,
        planner=args.planner,
        horizon=args.horizon,
        samples=args.samples,
        iterations=args.iterations,
        std=args.std,
        context_frames=args.context_frames,
        action_cost=args.action_cost,
        steps=args.steps,
        success_distance=args.success_distance,
        size=args.size,
        device=args.device,
        baseline=args.baseline,
        gif_path=args.gif,
        gif_episodes=args.gif_episodes,
        json_path=args.json,
    )
    return GoalPlanningSettings(args.model_dir, **{name: value for name, value in fields.items() if value is not None})


def offline_settings_from_args(args: argparse.Namespace):
    """The planner's `OfflinePlanSettings` from the parsed flags (`--frame` mode)."""
    from reverie.planning.offline import OfflinePlanSettings

    names = ("low", "high", "action_bound", "planner", "horizon", "samples", "iterations", "std", "seed", "action_cost", "size", "device")
    return OfflinePlanSettings(**{name: getattr(args, name) for name in names})


def usage_error(args: argparse.Namespace) -> str | None:
    """What argparse cannot check: the flags one mode needs or refuses; None when they fit."""
    offline = args.frame is not None
    if offline and args.model_dir is None:
        return "--frame needs MODEL_DIR, the model folder to plan with"
    if offline and args.goal is None:
        return "--frame needs --goal IMAGE, the goal image"
    if not offline and args.env_id is None:
        return "the following arguments are required: --env (or --frame, to plan from a robot's images)"
    if not offline and not (args.goal or args.goal_from_env):
        return "one of the arguments --goal --goal-from-env is required"
    refused = ENV_ONLY if offline else OFFLINE_ONLY
    given = [flag for name, flag in refused.items() if getattr(args, name) not in (None, False)]
    if given:
        return f"{given[0]} goes with --env (episodes in an env), not --frame" if offline else f"{given[0]} goes with --frame (planning from images)"
    return None


def run(args: argparse.Namespace) -> int:
    from reverie.nn.model_folder import ModelFolderError
    from reverie.planning.control import PlanningSetupError
    from reverie.planning.goal_planning import plan_toward_goals
    from reverie.planning.goals import GoalError
    from reverie.planning.offline import plan_from_files

    problem = usage_error(args)
    if problem:
        print(f"reverie plan: error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.frame is None:
            plan_toward_goals(settings_from_args(args))
        else:
            frames = [*(args.frames or []), args.frame]
            plan_from_files(args.model_dir, frames, args.goal, offline_settings_from_args(args), args.state, args.actions, args.json)
    except (FileNotFoundError, KeyError, GoalError, PlanningSetupError, ModelFolderError) as error:
        print(f"reverie plan: {error.args[0] if isinstance(error, KeyError) else error}")  # a KeyError's str() quotes it
        return 1
    return 0
