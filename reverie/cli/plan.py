"""Plan toward goal images with a world model in a real environment: `reverie plan MODEL_DIR --env ENV --goal-from-env`.

Each episode starts from a seeded state (episode i: seed + i) and replans every step: encode the
frame, search action sequences with CEM or MPPI for the lowest model energy to the goal image,
execute the first action. With `--goal-from-env` the env's goal task makes a held-out goal per
episode (`reverie.planning.goals`) and success is measured in the simulator's true state; with
`--goal IMAGE` there is no true goal state, so only the model's feature distance is reported.
`--baseline random` runs uniform random actions on the same goals.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
from rich.progress import Progress

PLANNED = "planned"


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


def planner_overrides(args: argparse.Namespace, low: np.ndarray, high: np.ndarray) -> dict:
    """The planner's config from the flags; unset flags keep the planner's defaults."""
    from reverie.planning.planners import CEMConfig

    overrides = {"seed": args.seed}
    overrides |= {name: getattr(args, name) for name in ("horizon", "samples", "iterations") if getattr(args, name) is not None}
    std = args.std if args.std is not None else float(np.mean(high - low)) / 4
    if args.planner == "cem":
        samples = overrides.get("samples", CEMConfig.samples)
        overrides |= {"init_std": std, "elites": max(1, samples // 8)}
    elif args.planner == "mppi":
        overrides["noise_std"] = std
    return overrides


def model_frame_size(model, args: argparse.Namespace) -> int:
    from reverie.planning.control import PlanningSetupError

    size = args.size or getattr(model, "frame_size", None)
    if not size:
        raise PlanningSetupError(f"{args.model_dir}: the model's frame size is not known (square frames); pass --size")
    return int(size)


def check_actions(model, env, args: argparse.Namespace) -> None:
    from reverie.planning.control import PlanningSetupError

    action_dim = getattr(getattr(model, "config", None), "action_dim", None)
    if action_dim is not None and action_dim != env.action_space.shape[0]:
        raise PlanningSetupError(f"{args.model_dir}: the model takes {action_dim}-d actions, {args.env_id} has {env.action_space.shape[0]}-d ones")


def make_goals(task, env, args: argparse.Namespace, size: int) -> list:
    from reverie.planning.goals import image_goal

    seeds = [args.seed + index for index in range(args.episodes)]
    if args.goal_from_env:
        return [task.make_goal(env, seed, size) for seed in seeds]
    return [image_goal(task, args.goal, seed, size) for seed in seeds]


def run_policy(name: str, policy, env, goals: list, steps: int, model) -> tuple[list, list[dict]]:
    from reverie.planning.control import feature_distance, run_goal_episode

    results, lines = [], []
    with Progress(disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"{name} episodes", total=len(goals))
        for goal in goals:
            result = run_goal_episode(env, goal, policy, steps)
            results.append(result)
            lines.append(
                {
                    "goal_seed": goal.seed,
                    "goal_state": None if goal.state is None else goal.state.tolist(),
                    "steps": len(result.actions),
                    "initial_distance": result.initial_distance,
                    "final_distance": result.final_distance,
                    "errors": result.errors,
                    "success": result.success,
                    "closest_distance": result.closest_distance,
                    "reached_step": result.reached_step,
                    "final_feature_distance": feature_distance(model, result.frames[-1], goal),
                }
            )
            progress.advance(task)
    return results, lines


def describe(name: str, summary: dict, lines: list[dict]) -> str:
    features = summary["mean_final_feature_distance"]
    if summary["success_rate"] is None:
        return f"{name}: success not defined for an image goal; mean final feature distance {features:.4f} (model energy)"
    at_end = sum(bool(line["success"]) for line in lines)
    reached = sum(line["reached_step"] is not None for line in lines)
    return (
        f"{name}: success at the end {at_end}/{len(lines)} ({summary['success_rate']:.0%}), reached at some step {reached}/{len(lines)} "
        f"({summary['reach_rate']:.0%}); mean final distance {summary['mean_final_distance']:.4f}, mean closest "
        f"{summary['mean_closest_distance']:.4f}, mean final feature distance {features:.4f}"
    )


def build_report(args: argparse.Namespace, task, steps: int, size: int, planner_config, runs: dict) -> dict:
    """What `--json` writes: the setup, and per policy its summary and episodes."""
    from reverie.planning.control import summarize

    report = {
        "env": args.env_id,
        "model": str(args.model_dir),
        "goal": "env" if args.goal_from_env else str(args.goal),
        "task": {"name": task.name, "success_thresholds": task.success_thresholds if args.goal_from_env else None},
        "steps": steps,
        "frame_size": size,
        "seed": args.seed,
        "planner": {"name": args.planner, **dataclasses.asdict(planner_config), "context_frames": args.context_frames, "action_cost": args.action_cost},
        "policies": {},
    }
    for name, (results, lines) in runs.items():
        features = float(np.mean([line["final_feature_distance"] for line in lines]))
        report["policies"][name] = {"summary": summarize(results) | {"mean_final_feature_distance": features}, "episodes": lines}
    return report


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(report, indent=2))
    os.replace(partial, path)


def run(args: argparse.Namespace) -> int:
    from reverie.planning.control import PlanningSetupError
    from reverie.planning.goals import GoalError

    try:
        return plan(args)
    except (FileNotFoundError, KeyError, GoalError, PlanningSetupError) as error:
        print(f"reverie plan: {error.args[0] if isinstance(error, KeyError) else error}")  # a KeyError's str() quotes it
        return 1


def plan(args: argparse.Namespace) -> int:
    import torch

    from reverie.nn.model_folder import load_model_folder
    from reverie.envs.make import make_env
    from reverie.planning.control import PlanningPolicy, PlanningSetupError, RandomPolicy, action_bounds, as_planning_model, write_gif
    from reverie.planning.goals import goal_task_for
    from reverie.planning.planners import make_planner

    if args.episodes < 1:
        raise PlanningSetupError(f"--episodes must be at least 1, got {args.episodes}")
    task = goal_task_for(args.env_id)
    if args.success_distance is not None:
        if "distance" not in task.success_thresholds:
            raise PlanningSetupError(f"--success-distance: the {task.name} task has no distance threshold")
        task.success_thresholds = task.success_thresholds | {"distance": args.success_distance}
    raw_model = load_model_folder(args.model_dir)
    model = as_planning_model(raw_model, args.device)
    size = model_frame_size(model, args)
    steps = args.steps or task.episode_steps
    env = make_env(args.env_id, size=size, max_episode_steps=steps)
    try:
        check_actions(raw_model, env, args)
        low, high = action_bounds(env)
        goals = make_goals(task, env, args, size)
        bounds = [torch.as_tensor(bound, device=args.device) for bound in (low, high)]
        planner = make_planner(args.planner, *bounds, **planner_overrides(args, low, high))
        policies = {PLANNED: PlanningPolicy(model, planner, seed=args.seed, context_frames=args.context_frames, action_cost=args.action_cost)}
        if args.baseline == "random":
            policies["random"] = RandomPolicy(low, high, seed=args.seed)
        runs = {name: run_policy(name, policy, env, goals, steps, model) for name, policy in policies.items()}
    finally:
        env.close()

    report = build_report(args, task, steps, size, planner.config, runs)
    print(f"{args.env_id}, {len(goals)} goals ({'from the env' if args.goal_from_env else args.goal}), {steps} steps, {size} px frames")
    if args.goal_from_env:
        thresholds = ", ".join(f"{name} < {bound:g}" for name, bound in task.success_thresholds.items())
        print(f"success ({task.name}): {thresholds}, at the end of the episode and at any step of it")
    for name, (_, lines) in runs.items():
        print(describe(name, report["policies"][name]["summary"], lines))
    if args.json:
        write_json(args.json, report)
        print(f"json: {args.json}")
    if args.gif:
        shown = range(min(args.gif_episodes, len(goals)))
        write_gif(args.gif, [[goals[index].image] + [results[index].frames for results, _ in runs.values()] for index in shown])
        print(f"gif: {args.gif} (goal | {' | '.join(runs)})")
    return 0
