"""`make quickstart`: the V-JEPA 2 / V-JEPA 2-AC recipe (Assran et al. 2025) at laptop scale, end to end.

On `reverie/ReacherJoints-v0`: MuJoCo's Reacher arm (2 links) under a joint-position controller,
whose actions are joint-angle steps and whose observation is the arm's two joint angles, as
V-JEPA 2-AC's arm takes end-effector steps and reports its pose (`reverie.envs.reacher_joints`).
Each stage is one `reverie` command in its own process, as a user would type it (MuJoCo's
off-screen renderer wants one env per process):

1. record: episodes with actions, from random and noisy scripted policies (`reverie record`);
2. video: some episodes written as plain mp4 files without actions and ingested like any
   unlabeled video (`reverie ingest`: `has_actions: false`);
3. pretrain: V-JEPA on that unlabeled video (`reverie train configs/quickstart/vjepa.yaml`), then
   export its encoder (`reverie export --no-ema`: the target encoder is V-JEPA's own average);
4. posttrain: the action-conditioned predictor on the recorded episodes, over the frozen encoder
   (`reverie train configs/quickstart/vjepa_ac.yaml`), then export it;
5. baselines, beside stages 3 and 4 (they need no model): three reference points on the held-out
   goals (seeds the recordings never used), `reverie plan --goal-from-env --baseline random zero
   oracle` without a model: random actions, the zero action (the arm holds its pose: the floor)
   and the same CEM through the true simulator (the ceiling for this budget). The training stages
   run one torch thread, so this takes the other core;
6. plan: CEM in the predictor's feature space toward the same goals, in two processes side by side
   on halves of the goals, merged with the baselines into `plan/plan.json`;
7. report: `summary.json` and `report.md` with loss curves and the planning GIF. The headline is
   success at the end of the episode (the fingertip within `success_distance` of the goal's
   after the last action, as V-JEPA 2-AC scores a reach by where the arm ends), each rate with its
   95% Wilson interval.

A stage whose outputs exist is skipped when the command is run again, so a stopped quickstart
resumes. The chain's wall time is the sum of the stages that run in turn; the baselines' own time
is reported beside it (the plan stage's includes any wait for them). `--scale tiny` runs the
whole chain in about a minute (the smoke test does); `--scale check`, the full training with a
third of the goals, is the slow test's, which asserts that planning beats random actions at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from rich.console import Console

from reverie.recipes.quickstart_report import merge_plan_parts, rate_cell, write_report, write_unlabeled_videos

ENV_ID = "reverie/ReacherJoints-v0"
FPS = 10  # the env's control rate: one frame per action
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "quickstart"
BASELINES = ("random", "zero", "oracle")  # beside the planned policy, on the same goals (`reverie plan --baseline`)
BASELINE_PART = "part-baselines.json"  # in plan/: the baselines' report, merged into plan.json
GIF_EPISODES = 4  # goals shown in plan/planning.gif and plan/baselines.gif
console = Console(stderr=True)


@dataclass(frozen=True)
class Scale:
    random_episodes: int  # recorded with uniform random torques
    scripted_episodes: int  # recorded with the noisy scripted reacher (reverie.pipelines.policies)
    video_episodes: int  # of the random ones, also written as unlabeled mp4 for pretraining
    pretrain_steps: int
    posttrain_steps: int
    plan_episodes: int  # held-out goals, split evenly over `plan_workers` processes run side by side
    horizon: int
    samples: int
    iterations: int
    context_frames: int = 1  # plan from the last K frames and the actions between them
    plan_workers: int = 2  # `reverie plan` processes at once, one per CPU core (each one torch thread)
    size: int = 64  # frame side in px
    success_distance: float = 0.05  # m, fingertip to goal fingertip: a quarter of the arm's reach
    goal_seed: int = 100_000  # held-out goals: recorded episodes use seeds below this
    encoder_overrides: tuple[str, ...] = ()  # key=value for the V-JEPA config (the tiny test shrinks it)
    train_overrides: tuple[str, ...] = ()  # key=value for both train configs


SCALES = {
    "full": Scale(
        random_episodes=120,
        scripted_episodes=120,
        video_episodes=120,
        pretrain_steps=1000,
        posttrain_steps=3000,
        plan_episodes=60,
        horizon=4,
        samples=32,
        iterations=3,
    ),
    "tiny": Scale(
        random_episodes=3,
        scripted_episodes=3,
        video_episodes=3,
        pretrain_steps=4,
        posttrain_steps=4,
        plan_episodes=2,
        plan_workers=2,
        horizon=2,
        samples=8,
        iterations=1,
        size=32,
        encoder_overrides=("model.image_size=32", "model.patch_size=8"),
        train_overrides=("data.batch_size=2", "checkpoint.every_n_steps=2"),
    ),
}
# The slow test's scale: the full recording and training, then 20 of its goals. Shorter training
# gave models that never planned to a goal (120 episodes, V-JEPA 800 steps, V-JEPA 2-AC 600: 0/20)
# or that planned to few (V-JEPA 2-AC 1200 steps: 5/20 at the end, against 11/20 at 3000).
SCALES["check"] = replace(SCALES["full"], plan_episodes=20)


@dataclass
class Stage:
    name: str
    commands: list[list[str] | Callable[[], object]]  # command lines, or steps run in this process
    outputs: list[Path]  # all present: the stage is done (a `done` file is written when it ends)
    parallel: bool = False  # run the command lines side by side, then the in-process steps
    beside: bool = False  # start the command lines and go on with the next stages (no in-process steps)
    waits_for: tuple[str, ...] = ()  # `beside` stages to wait for before this one runs

    def done(self) -> bool:
        return all(path.exists() for path in self.outputs)


def reverie(*arguments: object) -> list[str]:
    """A `reverie ...` command line, run with this interpreter."""
    return [sys.executable, "-m", "reverie.cli.main", *map(str, arguments)]


def stages(out: Path, scale: Scale) -> list[Stage]:
    episodes, models = out / "episodes", out / "models"
    record = ["--size", scale.size, "--clip-frames", 16, "--stride", 8, "--format", "npy"]
    plan = out / "plan"
    return [
        Stage(
            "record",
            [
                reverie("record", ENV_ID, "--episodes", scale.random_episodes, "--out", episodes / "random", "--policy", "random", "--seed", 0, *record),
                reverie("record", ENV_ID, "--episodes", scale.scripted_episodes, "--out", episodes / "scripted", "--policy", "scripted", "--seed", 50_000, *record),
            ],
            [episodes / "random" / "done", episodes / "scripted" / "done"],
        ),
        Stage(
            "video",
            [
                lambda: write_unlabeled_videos(sorted(episodes.glob("*/shards/*.tar")), out / "videos", scale.video_episodes),
                reverie("ingest", out / "videos", "--out", out / "video", "--clip-frames", 8, "--fps", FPS, "--size", scale.size,
                        "--min-duration", 0, "--no-dedup", "--no-scene-cuts", "--workers", 2),
            ],
            [out / "video" / "done"],
        ),
        Stage(
            "baselines",
            [baseline_command(plan, scale)],
            [plan / BASELINE_PART],
            beside=True,
        ),
        Stage(
            "pretrain",
            [
                reverie("train", CONFIGS / "vjepa.yaml", f"data.shards={out / 'video' / 'shards'}", f"run.dir={out / 'vjepa'}",
                        f"trainer.max_steps={scale.pretrain_steps}", *scale.encoder_overrides, *scale.train_overrides),
                reverie("export", out / "vjepa", "--out", models / "vjepa", "--no-ema"),
            ],
            [models / "vjepa" / "model.safetensors"],
        ),
        Stage(
            "posttrain",
            [
                reverie("train", CONFIGS / "vjepa_ac.yaml", f"model.encoder_folder={models / 'vjepa'}", f"data.shards={episodes}/*/shards/*.tar",
                        f"run.dir={out / 'vjepa_ac'}", f"trainer.max_steps={scale.posttrain_steps}", *scale.train_overrides),
                reverie("export", out / "vjepa_ac", "--out", models / "vjepa_ac", "--no-ema"),
            ],
            [models / "vjepa_ac" / "model.safetensors"],
        ),
        Stage(
            "plan",
            [*plan_commands(models / "vjepa_ac", plan, scale), lambda: merge_plan_parts([*plan_parts(plan, scale), plan / BASELINE_PART], plan / "plan.json")],
            [plan / "plan.json", plan / "planning.gif"],
            parallel=True,
            waits_for=("baselines",),
        ),
    ]


def plan_parts(plan: Path, scale: Scale) -> list[Path]:
    return [plan / f"part-{worker}.json" for worker in range(scale.plan_workers)]


def search_flags(scale: Scale) -> list:
    """The planner's budget and the success threshold: the same for the planned policy and the oracle."""
    return ["--horizon", scale.horizon, "--samples", scale.samples, "--iterations", scale.iterations, "--success-distance", scale.success_distance]


def plan_commands(model: Path, plan: Path, scale: Scale) -> list[list[str]]:
    """One `reverie plan` per worker on its own consecutive block of goal seeds; the first writes the GIF."""
    if not 1 <= scale.plan_workers <= scale.plan_episodes:
        raise ValueError(f"plan_workers={scale.plan_workers} must be between 1 and plan_episodes={scale.plan_episodes}")
    share = -(-scale.plan_episodes // scale.plan_workers)
    commands = []
    for worker, part in enumerate(plan_parts(plan, scale)):
        first, episodes = scale.goal_seed + worker * share, min(share, scale.plan_episodes - worker * share)
        gif = ["--gif", plan / "planning.gif", "--gif-episodes", GIF_EPISODES] if worker == 0 else []
        commands.append(
            reverie("plan", model, "--env", ENV_ID, "--goal-from-env", "--episodes", episodes, "--seed", first, *search_flags(scale),
                    "--context-frames", scale.context_frames, *gif, "--json", part)
        )
    return commands


def baseline_command(plan: Path, scale: Scale) -> list[str]:
    """`reverie plan` without a model: the baselines alone on all the goals, with the GIF of the first ones."""
    return reverie("plan", "--env", ENV_ID, "--goal-from-env", "--episodes", scale.plan_episodes, "--seed", scale.goal_seed, "--baseline", *BASELINES,
                   "--size", scale.size, *search_flags(scale), "--gif", plan / "baselines.gif", "--gif-episodes", GIF_EPISODES, "--json", plan / BASELINE_PART)


@dataclass
class Running:
    """A `beside` stage's processes, started at `started` (perf_counter s)."""

    stage: Stage
    processes: list[subprocess.Popen]  # one per command line of the stage
    started: float


def run_stage(stage: Stage, index: int, total: int, times: dict[str, float], log: Path, running: dict[str, Running]) -> None:
    """Run the stage's commands in order, each command line in its own process (a parallel stage
    starts all its command lines together, then runs its in-process steps), or skip it when it is
    done. A `beside` stage's processes are started and left running in `running`; a stage that
    waits for one first joins it."""
    if stage.done():
        console.rule(f"[{index}/{total}] {stage.name}: done before, skipped")
        return
    console.rule(f"[{index}/{total}] {stage.name}" + (" (beside the next stages)" if stage.beside else ""))
    started = time.perf_counter()
    if stage.beside:
        running[stage.name] = Running(stage, start_commands(stage.commands, log), started)
        return
    for name in stage.waits_for:
        if name in running:
            finish(running.pop(name), times)
    if stage.parallel:
        command_lines = [command for command in stage.commands if not callable(command)]
        wait_for(stage.name, command_lines, start_commands(command_lines, log))
    for command in stage.commands:
        if callable(command):
            console.print(f"{command()}", style="bold cyan")
        elif not stage.parallel:
            wait_for(stage.name, [command], start_commands([command], log))
    mark_done(stage)
    times[stage.name] = time.perf_counter() - started
    console.print(f"{stage.name}: {times[stage.name]:.1f} s", style="green")


def mark_done(stage: Stage) -> None:
    for marker in stage.outputs:
        if marker.name == "done":
            marker.write_text("")


def finish(job: Running, times: dict[str, float]) -> None:
    """Wait for a `beside` stage; its time is from its start to its end."""
    console.print(f"waiting for {job.stage.name}", style="cyan")
    wait_for(job.stage.name, job.stage.commands, job.processes)
    mark_done(job.stage)
    times[job.stage.name] = time.perf_counter() - job.started
    console.print(f"{job.stage.name}: {times[job.stage.name]:.1f} s (beside the other stages)", style="green")


def start_commands(commands: list[list[str]], log: Path) -> list[subprocess.Popen]:
    """Start the command lines together, each printed and logged, one torch thread each."""
    environment = os.environ | {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for command in commands:
        console.print(f"$ {shlex.join(['reverie', *command[3:]])}", style="bold cyan")
        with log.open("a") as handle:
            handle.write(shlex.join(command) + "\n")
    return [subprocess.Popen(command, env=environment) for command in commands]


def wait_for(stage: str, commands: list[list[str]], processes: list[subprocess.Popen]) -> None:
    """Wait for all the processes; stop on a failure."""
    for command, process in zip(commands, processes):
        if process.wait():
            raise SystemExit(f"quickstart: stage {stage} failed (exit {process.returncode}): {shlex.join(command)}")


def run(out: Path, scale_name: str = "full") -> dict:
    """Run (or resume) the whole chain into `out`; return the summary."""
    scale = SCALES[scale_name]
    out.mkdir(parents=True, exist_ok=True)
    times_file = out / "stage_times.json"
    times: dict[str, float] = json.loads(times_file.read_text()) if times_file.exists() else {}
    chain = stages(out, scale)
    running: dict[str, Running] = {}
    try:
        for index, stage in enumerate(chain, start=1):
            run_stage(stage, index, len(chain) + 1, times, out / "commands.log", running)
            times_file.write_text(json.dumps(times, indent=2))
    finally:
        for job in running.values():  # a stage failed before the one that waits for these
            for process in job.processes:
                process.kill()
    console.rule(f"[{len(chain) + 1}/{len(chain) + 1}] report")
    started = time.perf_counter()
    summary = write_report(out, scale_name, asdict(scale), times)
    times["report"] = time.perf_counter() - started
    times_file.write_text(json.dumps(times, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    scales = "full: the 15-minute run, 60 goals; check: full training, 20 goals (the slow test); tiny: a one-minute smoke run"
    parser.add_argument("--scale", choices=sorted(SCALES), default="full", help=scales)
    parser.add_argument("--tiny", dest="scale", action="store_const", const="tiny", help="the same as --scale tiny")
    args = parser.parse_args()
    summary = run(args.out, args.scale)
    console.print(summary_line(summary) + f"; total {summary['wall_s']['total']:.0f} s; report: {args.out / 'report.md'}")


def summary_line(summary: dict) -> str:
    """The headline as printed: success at the end, then each reference point and the reach rates."""
    goals = summary["plan_episodes"]
    at_end = ", ".join(f"{name} {rate_cell(policy['success_rate'], policy['success_interval'], goals)}" for name, policy in summary["policies"].items())
    reached = ", ".join(f"{name} {policy['reach_rate']:.0%}" for name, policy in summary["policies"].items())
    return (
        f"success at the end (fingertip within {summary['success_distance']} m of the goal's after the last of {summary['plan_steps']} steps, "
        f"{goals} held-out goals, 95% interval): {at_end}; reached at some step: {reached}"
    )


if __name__ == "__main__":
    main()
