"""Plan toward goal images with a world model in a real environment, episode after episode, and
report how close each policy came: the loop behind `reverie plan`.

Episode i starts from a seeded state (seed + i) and replans every step with the receding-horizon
policy of `reverie.planning.control` (V-JEPA 2-AC, [26] Assran et al. 2025, sec. 4): encode the
frame, search action sequences with a registered planner (CEM or MPPI) for the lowest model energy
to the goal image, execute the first action. With a goal task's held-out goals (`goal_image=None`,
`reverie.planning.goals`) success is measured in the simulator's true state; with one goal image
there is no true goal state, so only the model's feature distance is reported. Baselines run on
the same goals (`BASELINES`): random actions, the zero action (the arm holds its pose: the floor),
and the oracle, the same search through the true simulator (`reverie.planning.oracle`: the ceiling
for this planner budget). Every policy's time per action is measured. The baselines need no model:
without one (`model_dir=None`, `reverie plan --env ... --baseline ...` with no MODEL_DIR) only they
run, at the frame size given, so they can run while the model trains; their feature distances
are then not measured (None).

- `GoalPlanningSettings`: the run, as `reverie plan`'s flags set it.
- `plan_toward_goals(settings) -> report`: run, print the summary, write the JSON and GIF asked for.
- `run_goal_planning(settings) -> GoalPlanningRun`: the episodes and the report alone.
- `planner_config(settings, low, high)`: the planner's config, from the registry by name
  (`PlannerConfig.for_search`); unset search settings keep the planner's defaults.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from rich.progress import Progress

from reverie.envs.make import make_env
from reverie.nn.model_folder import load_model_folder
from reverie.planning.control import (
    EpisodeResult,
    GoalPolicy,
    PlanningModel,
    PlanningPolicy,
    PlanningSetupError,
    RandomPolicy,
    ZeroPolicy,
    action_bounds,
    as_planning_model,
    feature_distance,
    run_goal_episode,
    summarize,
    write_gif,
)
from reverie.planning.goals import Goal, GoalTask, goal_task_for, image_goal
from reverie.planning.oracle import OraclePolicy
from reverie.planning.planners import PLANNERS, Planner, PlannerConfig, search_config
from reverie.shards.writer import write_text_atomically

PLANNED = "planned"  # the report's name for the planning policy


@dataclass
class BaselineSetup:
    """What a baseline policy is built from."""

    env: object  # the env the episodes run in
    low: np.ndarray  # (A,) the action box
    high: np.ndarray  # (A,)
    seed: int
    new_planner: Callable[[], Planner]  # a fresh planner with the planned policy's config, on the CPU


BASELINES: dict[str, Callable[[BaselineSetup], GoalPolicy]] = {
    "random": lambda setup: RandomPolicy(setup.low, setup.high, seed=setup.seed),
    "zero": lambda setup: ZeroPolicy(setup.low, setup.high),
    "oracle": lambda setup: OraclePolicy(setup.env, setup.new_planner(), seed=setup.seed),
}
NEEDS_TRUE_GOALS = {"oracle"}  # baselines that plan toward the goal's true state


@dataclass
class GoalPlanningSettings:
    model_dir: Path | None  # a model folder (config.json + model.safetensors), e.g. vjepa_ac; None: the baselines alone
    env_id: str  # a gymnasium id with a goal task: Reacher-v5, gym_pusht/PushT-v0
    goal_image: Path | None = None  # one goal image (PNG) for every episode; None: a held-out goal per episode from the env's goal task
    episodes: int = 10
    seed: int = 0  # episode i starts from seed + i; seeds the planner and the baseline too
    planner: str = "cem"  # a name in PLANNERS
    horizon: int | None = None  # None: the planner's default (and so for samples, iterations)
    samples: int | None = None
    iterations: int | None = None
    std: float | None = None  # sampling std in action units; None: a quarter of the mean action range
    context_frames: int = 1  # plan from the last K frames and the actions between them
    action_cost: float = 0.0  # lambda: add lambda * mean |action| to the energy
    steps: int | None = None  # steps per episode; None: the goal task's
    success_distance: float | None = None  # the true-state distance threshold; None: the goal task's
    size: int | None = None  # frame side in px; None: the model's training frames
    device: str = "cpu"  # where the model runs
    baseline: str | Sequence[str] | None = None  # also run these policies (names in BASELINES) on the same goals; kept as a tuple
    gif_path: Path | None = None  # write the first episodes (goal | planned | each baseline) as a GIF
    gif_episodes: int = 4
    json_path: Path | None = None  # write the report as JSON

    def __post_init__(self):
        names = () if self.baseline is None else (self.baseline,) if isinstance(self.baseline, str) else self.baseline
        self.baseline = tuple(names)


@dataclass
class GoalPlanningRun:
    report: dict  # what `json_path` gets: the setup, and per policy its summary and episodes
    goals: list[Goal]
    results: dict[str, list[EpisodeResult]]  # policy name -> one result per goal


def plan_toward_goals(settings: GoalPlanningSettings) -> dict:
    """Run the episodes, print the summary, write the JSON and GIF the settings name; the report."""
    run = run_goal_planning(settings)
    for line in summary_lines(run.report):
        print(line)
    if settings.json_path:
        write_json(settings.json_path, run.report)
        print(f"json: {settings.json_path}")
    if settings.gif_path:
        write_episodes_gif(settings.gif_path, run, settings.gif_episodes)
        print(f"gif: {settings.gif_path} (goal | {' | '.join(run.results)})")
    return run.report


def run_goal_planning(settings: GoalPlanningSettings) -> GoalPlanningRun:
    """Every policy's episodes toward the same goals, and the report on them."""
    if settings.episodes < 1:
        raise PlanningSetupError(f"--episodes must be at least 1, got {settings.episodes}")
    planner_class = PLANNERS.get(settings.planner)  # an unknown name fails here, before the model loads
    check_baselines(settings)
    if settings.model_dir is None and not settings.baseline:
        raise PlanningSetupError("no model folder and no --baseline: nothing to run (give MODEL_DIR, or baselines to run alone)")
    if settings.model_dir is None and settings.goal_image is not None:
        raise PlanningSetupError("baselines alone need --goal-from-env: with a goal image only a model's feature distance is measured")
    task = goal_task(settings)
    raw_model = None if settings.model_dir is None else load_model_folder(settings.model_dir)
    model = None if raw_model is None else as_planning_model(raw_model, settings.device)
    size = model_frame_size(model, settings)
    steps = settings.steps or task.episode_steps
    env = make_env(settings.env_id, size=size, max_episode_steps=steps)
    try:
        check_actions(raw_model, env, settings)
        low, high = action_bounds(env)
        goals = make_goals(task, env, settings, size)
        config = planner_config(settings, low, high)
        bounds = [torch.as_tensor(bound, device=settings.device) for bound in (low, high)]
        policies: dict[str, GoalPolicy] = {}
        if model is not None:
            planner = planner_class(config, *bounds)
            policies[PLANNED] = PlanningPolicy(model, planner, seed=settings.seed, context_frames=settings.context_frames, action_cost=settings.action_cost)
        setup = BaselineSetup(env, low, high, settings.seed, lambda: planner_class(config, torch.as_tensor(low), torch.as_tensor(high)))
        policies |= {name: BASELINES[name](setup) for name in settings.baseline}
        results = {name: run_policy(name, policy, env, goals, steps) for name, policy in policies.items()}
    finally:
        env.close()
    lines = {name: [episode_line(model, goal, result) for goal, result in zip(goals, episodes)] for name, episodes in results.items()}
    report = build_report(settings, task, steps, size, config, results, lines)
    return GoalPlanningRun(report=report, goals=goals, results=results)


def check_baselines(settings: GoalPlanningSettings) -> None:
    """Known baseline names, each once, and true goals for those that plan toward them."""
    for name in settings.baseline:
        if name not in BASELINES:
            raise PlanningSetupError(f"baseline {name!r} is not one of {', '.join(BASELINES)}")
        if name in NEEDS_TRUE_GOALS and settings.goal_image is not None:
            raise PlanningSetupError(f"baseline {name!r} plans toward the goal's true state, which a goal image has not (use --goal-from-env)")
    if len(set(settings.baseline)) < len(settings.baseline):
        raise PlanningSetupError(f"baselines {', '.join(settings.baseline)}: each at most once")


def planner_config(settings: GoalPlanningSettings, low: np.ndarray, high: np.ndarray) -> PlannerConfig:
    """The named planner's config from the search settings; unset ones keep the planner's defaults."""
    search = {name: getattr(settings, name) for name in ("horizon", "samples", "iterations") if getattr(settings, name) is not None}
    std = settings.std if settings.std is not None else float(np.mean(high - low)) / 4
    return search_config(settings.planner, std, seed=settings.seed, **search)


def goal_task(settings: GoalPlanningSettings) -> GoalTask:
    """The env's goal task, with the success distance the settings ask for."""
    task = goal_task_for(settings.env_id)
    if settings.success_distance is not None:
        if "distance" not in task.success_thresholds:
            raise PlanningSetupError(f"--success-distance: the {task.name} task has no distance threshold")
        task.success_thresholds = task.success_thresholds | {"distance": settings.success_distance}
    return task


def model_frame_size(model: PlanningModel | None, settings: GoalPlanningSettings) -> int:
    size = settings.size or getattr(model, "frame_size", None)
    if not size:
        if model is None:
            raise PlanningSetupError("baselines alone: pass --size, the frame side in px (there is no model to read it from)")
        raise PlanningSetupError(f"{settings.model_dir}: the model's frame size is not known (square frames); pass --size")
    return int(size)


def check_actions(model, env, settings: GoalPlanningSettings) -> None:
    action_dim = getattr(getattr(model, "config", None), "action_dim", None)
    if action_dim is not None and action_dim != env.action_space.shape[0]:
        raise PlanningSetupError(
            f"{settings.model_dir}: the model takes {action_dim}-d actions, {settings.env_id} has {env.action_space.shape[0]}-d ones"
        )


def make_goals(task: GoalTask, env, settings: GoalPlanningSettings, size: int) -> list[Goal]:
    seeds = [settings.seed + index for index in range(settings.episodes)]
    if settings.goal_image is None:
        return [task.make_goal(env, seed, size) for seed in seeds]
    return [image_goal(task, settings.goal_image, seed, size) for seed in seeds]


def run_policy(name: str, policy: GoalPolicy, env, goals: list[Goal], steps: int) -> list[EpisodeResult]:
    results = []
    with Progress(disable=not sys.stderr.isatty()) as progress:
        bar = progress.add_task(f"{name} episodes", total=len(goals))
        for goal in goals:
            results.append(run_goal_episode(env, goal, policy, steps))
            progress.advance(bar)
    return results


def episode_line(model: PlanningModel | None, goal: Goal, result: EpisodeResult) -> dict:
    """One episode as the report lists it (no feature distance without a model)."""
    return {
        "goal_seed": goal.seed,
        "goal_state": None if goal.state is None else goal.state.tolist(),
        "steps": len(result.actions),
        "initial_distance": result.initial_distance,
        "final_distance": result.final_distance,
        "errors": result.errors,
        "success": result.success,
        "closest_distance": result.closest_distance,
        "reached_step": result.reached_step,
        "final_feature_distance": None if model is None else feature_distance(model, result.frames[-1], goal),
        "seconds_per_action": result.policy_seconds / max(1, len(result.actions)),
    }


def build_report(
    settings: GoalPlanningSettings,
    task: GoalTask,
    steps: int,
    size: int,
    config: PlannerConfig,
    results: dict[str, list[EpisodeResult]],
    lines: dict[str, list[dict]],
) -> dict:
    """The setup, and per policy its summary and episodes."""
    from_env = settings.goal_image is None
    report = {
        "env": settings.env_id,
        "model": None if settings.model_dir is None else str(settings.model_dir),
        "goal": "env" if from_env else str(settings.goal_image),
        "task": {"name": task.name, "success_thresholds": task.success_thresholds if from_env else None},
        "steps": steps,
        "frame_size": size,
        "seed": settings.seed,
        "planner": {"name": settings.planner, **dataclasses.asdict(config), "context_frames": settings.context_frames, "action_cost": settings.action_cost},
        "policies": {},
    }
    for name, episodes in results.items():
        distances = [line["final_feature_distance"] for line in lines[name]]
        features = None if None in distances else float(np.mean(distances))
        report["policies"][name] = {"summary": summarize(episodes) | {"mean_final_feature_distance": features}, "episodes": lines[name]}
    return report


def summary_lines(report: dict) -> list[str]:
    """What `reverie plan` prints: the setup, the success criterion, one line per policy."""
    from_env = report["goal"] == "env"
    episodes = len(next(iter(report["policies"].values()))["episodes"])
    goals = "from the env" if from_env else report["goal"]
    lines = [f"{report['env']}, {episodes} goals ({goals}), {report['steps']} steps, {report['frame_size']} px frames"]
    if from_env:
        thresholds = ", ".join(f"{name} < {bound:g}" for name, bound in report["task"]["success_thresholds"].items())
        lines.append(f"success ({report['task']['name']}): {thresholds}, at the end of the episode and at any step of it")
    return lines + [describe(name, policy["summary"], policy["episodes"]) for name, policy in report["policies"].items()]


def interval_text(interval: Sequence[float]) -> str:
    """A 95% interval of rates, in percent: "95% CI 9-91%"."""
    return f"95% CI {interval[0]:.0%}-{interval[1]:.0%}".replace("%-", "-")


def describe(name: str, summary: dict, lines: list[dict]) -> str:
    seconds = summary["seconds_per_action"]
    features = "not measured (no model)" if summary["mean_final_feature_distance"] is None else f"{summary['mean_final_feature_distance']:.4f}"
    if summary["success_rate"] is None:
        return f"{name}: success not defined for an image goal; mean final feature distance {features} (model energy); {seconds:.3f} s per action"
    at_end = sum(bool(line["success"]) for line in lines)
    reached = sum(line["reached_step"] is not None for line in lines)
    return (
        f"{name}: success at the end {at_end}/{len(lines)} ({summary['success_rate']:.0%}, {interval_text(summary['success_interval'])}), "
        f"reached at some step {reached}/{len(lines)} ({summary['reach_rate']:.0%}, {interval_text(summary['reach_interval'])}); "
        f"mean final distance {summary['mean_final_distance']:.4f}, mean closest {summary['mean_closest_distance']:.4f}, "
        f"mean final feature distance {features}; {seconds:.3f} s per action"
    )


def write_json(path: Path, report: dict) -> None:
    """Write the report atomically (`reverie.shards.writer.write_text_atomically`)."""
    write_text_atomically(path, json.dumps(report, indent=2))


def write_episodes_gif(path: Path, run: GoalPlanningRun, episodes: int) -> Path:
    """The first episodes as GIF rows: the goal image, then each policy's frames."""
    shown = range(min(episodes, len(run.goals)))
    return write_gif(path, [[run.goals[index].image] + [results[index].frames for results in run.results.values()] for index in shown])
