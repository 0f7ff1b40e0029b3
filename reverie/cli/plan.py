"""Plan toward goal images with a world model in a real environment: `reverie plan MODEL_DIR --env ENV --goal-from-env`.

Each episode starts from a seeded state (episode i: seed + i) and replans every step: encode the
frame, search action sequences with CEM or MPPI for the lowest model energy to the goal image,
execute the first action. With `--goal-from-env` the env's goal task makes a held-out goal per
episode (`reverie.planning.goals`) and success is measured in the simulator's true state; with
`--goal IMAGE` there is no true goal state, so only the model's feature distance is reported.
`--baseline random` runs uniform random actions on the same goals. The loop is
`reverie.planning.goal_planning.plan_toward_goals`; this module parses the flags and calls it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a model folder (config.json + model.safetensors), e.g. vjepa_ac")
    parser.add_argument("--env", required=True, dest="env_id", help="a gymnasium id with a goal task: Reacher-v5, gym_pusht/PushT-v0")
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--goal", type=Path, metavar="IMAGE", help="one goal image (PNG) for every episode; no true-state success")
    goal.add_argument("--goal-from-env", action="store_true", help="a held-out goal per episode from the env's goal task")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="episode i starts from seed + i; seeds the planner too")
    parser.add_argument("--planner", default="cem", help="a registered planner: cem or mppi")
    parser.add_argument("--horizon", type=int, help="H, steps per planned sequence (planner default 8)")
    parser.add_argument("--samples", type=int, help="N, sequences per search iteration (planner default 256)")
    parser.add_argument("--iterations", type=int, help="search iterations per step (planner default 6)")
    parser.add_argument("--std", type=float, help="sampling std in action units (CEM init_std, MPPI noise_std); default: a quarter of the action range")
    parser.add_argument("--context-frames", type=int, default=1, help="plan from the last K frames and the actions between them (default 1: the current frame)")
    parser.add_argument("--action-cost", type=float, default=0.0, help="lambda: add lambda * mean |action| to the energy (default 0: the energy alone)")
    parser.add_argument("--steps", type=int, help="steps per episode (default: the goal task's)")
    parser.add_argument(
        "--success-distance", type=float, help="success when the true-state distance ends under this (default: the goal task's, e.g. Reacher 0.02 m)"
    )
    parser.add_argument("--size", type=int, help="frame side in px (default: the model's training frames)")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, ...")
    parser.add_argument("--baseline", choices=["random"], help="also run this policy on the same goals")
    parser.add_argument("--gif", type=Path, metavar="PATH", help="write the first episodes (goal | planned | baseline) as a GIF")
    parser.add_argument("--gif-episodes", type=int, default=4)
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the per-episode results and the summary as JSON")


def settings_from_args(args: argparse.Namespace):
    """The run's `GoalPlanningSettings` from the parsed flags."""
    from reverie.planning.goal_planning import GoalPlanningSettings

    return GoalPlanningSettings(
        model_dir=args.model_dir,
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


def run(args: argparse.Namespace) -> int:
    from reverie.nn.model_folder import ModelFolderError
    from reverie.planning.control import PlanningSetupError
    from reverie.planning.goal_planning import plan_toward_goals
    from reverie.planning.goals import GoalError

    try:
        plan_toward_goals(settings_from_args(args))
    except (FileNotFoundError, KeyError, GoalError, PlanningSetupError, ModelFolderError) as error:
        print(f"reverie plan: {error.args[0] if isinstance(error, KeyError) else error}")  # a KeyError's str() quotes it
        return 1
    return 0
