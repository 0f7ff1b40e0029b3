"""The quickstart's own pieces beside the `reverie` commands (reverie/quickstart.py): unlabeled mp4
videos cut from recorded episodes, and the closing `summary.json` and `report.md` with loss curves.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import webdataset as wds

from reverie.planning.control import rate_and_interval
from reverie.planning.goals import REACHER_SUCCESS_DISTANCE
from reverie.shards.payloads import encode_mp4
from reverie.shards.writer import write_text_atomically

NOT_IN_TOTAL = ("baselines", "report")  # the baselines run beside the training stages; the report is written after
LOSS_CURVES = {"vjepa": "V-JEPA pretraining (unlabeled video)", "vjepa_ac": "V-JEPA 2-AC post-training (episodes with actions)"}


def recorded_episodes(shards: list[Path]) -> dict[tuple[str, int], tuple[np.ndarray, float]]:
    """Whole episodes' frames (T, H, W, 3) uint8 and fps from recorded clips (possibly overlapping),
    keyed by (recording folder, episode), reassembled by each clip's `step`."""
    pieces: dict[tuple[str, int], dict[int, np.ndarray]] = defaultdict(dict)
    rates: dict[tuple[str, int], float] = {}
    for shard in shards:
        for sample in wds.WebDataset(str(shard), shardshuffle=False).decode():
            meta = sample["json"]
            episode = (shard.parent.parent.name, meta["episode"])
            rates[episode] = meta["fps"]
            for offset, frame in enumerate(sample["npy"]):
                pieces[episode][meta["step"] + offset] = frame
    return {episode: (np.stack([steps[t] for t in sorted(steps)]), rates[episode]) for episode, steps in pieces.items()}


def write_unlabeled_videos(shards: list[Path], videos: Path, count: int) -> str:
    """Write `count` recorded episodes (taken in turn from each recording folder) as plain mp4
    files, frames only: video as it comes from a camera, without actions or states."""
    episodes = recorded_episodes(shards)
    folders = sorted({folder for folder, _ in episodes})
    in_turn = sorted(episodes, key=lambda key: (key[1], folders.index(key[0])))[:count]
    videos.mkdir(parents=True, exist_ok=True)
    for folder, index in in_turn:
        frames, fps = episodes[folder, index]
        path = videos / f"{folder}_{index:06d}.mp4"
        partial = path.with_name(path.name + ".tmp")
        partial.write_bytes(encode_mp4(frames, fps))
        os.replace(partial, path)
    return f"wrote {len(in_turn)} episodes as mp4 videos without actions -> {videos}"


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return {name: np.array([float(row[name]) if row[name] else np.nan for row in rows]) for name in rows[0]} if rows else {}


def plot_losses(run_dir: Path, title: str, path: Path) -> Path | None:
    """Every loss term of a run's metrics.csv against the step, log scale, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics_file = run_dir / "metrics.csv"
    if not metrics_file.exists():
        return None
    metrics = read_metrics(metrics_file)
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for name, values in metrics.items():
        if name not in ("step", "lr", "samples_per_s"):
            axes.plot(metrics["step"], values, label=name, linewidth=1.5 if name == "loss" else 0.8)
    axes.set(xlabel="optimizer step", ylabel="L1 loss", yscale="log", title=title)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def count_lines(path: Path, status: str = "ok") -> int:
    if not path.exists():
        return 0
    return sum(json.loads(line).get("status") == status for line in path.read_text().splitlines() if line.strip())


class PlanMergeError(ValueError):
    """Plan reports that do not describe the same goals or the same search; names the parts."""


def search_settings(report: dict) -> dict:
    """A plan report's search budget, which the oracle and the planned policy share (each part has
    its own seed; the context and action cost are the planned policy's alone)."""
    return {key: value for key, value in report["planner"].items() if key not in ("seed", "context_frames", "action_cost")}


def merge_plan_parts(parts: list[Path], path: Path) -> Path:
    """One `reverie plan --json` report from several: the planned policy's, run on consecutive
    blocks of goals, and the baselines', run on all of them without a model. The first part's
    setup; each policy's episodes from every part that ran it, in goal order (per-part summaries
    are dropped; the quickstart's summary is computed from the episodes). Every policy must cover
    the same goals, and the search settings (the oracle's and the planned policy's budget) must
    agree. Written atomically."""
    reports = [json.loads(part.read_text()) for part in parts]
    merged = {key: value for key, value in reports[0].items() if key != "policies"}
    merged["seed"] = [report["seed"] for report in reports]
    episodes: dict[str, list[dict]] = defaultdict(list)
    for part, report in zip(parts, reports):
        if search_settings(report) != search_settings(reports[0]):
            raise PlanMergeError(f"{part}: its search settings differ from {parts[0]}'s: {search_settings(report)} against {search_settings(reports[0])}")
        for name, policy in report["policies"].items():
            episodes[name] += policy["episodes"]
    goals = {name: [line["goal_seed"] for line in lines] for name, lines in episodes.items()}
    for name, seeds in goals.items():
        if sorted(seeds) != sorted(next(iter(goals.values()))) or len(set(seeds)) < len(seeds):
            raise PlanMergeError(f"{', '.join(map(str, parts))}: policy {name} has goals {sorted(seeds)}, not those of the others")
    merged["policies"] = {name: {"episodes": sorted(lines, key=lambda line: line["goal_seed"])} for name, lines in episodes.items()}
    write_text_atomically(path, json.dumps(merged, indent=2))
    return path


POLICIES = {  # the report's policies in its order: name in plan.json -> what it is
    "planned": "planned (CEM on the model)",
    "random": "random actions",
    "zero": "zero action (holds the pose)",
    "oracle": "oracle (the same CEM through the simulator)",
}
HEADLINE = {"planned": "plan", "random": "random"}  # the policies summary.json's top keys name: plan_success_rate, ...


def policy_summary(lines: list[dict], success_distance: float) -> dict:
    """One policy's episodes: at the end within `success_distance` (the headline) and within the
    task's own REACHER_SUCCESS_DISTANCE, reached at some step within each, every rate with its 95%
    Wilson interval; the mean final and closest distances and the seconds per action."""
    finals = [line["final_distance"] for line in lines]
    closest = [line["closest_distance"] for line in lines]
    summary = {}
    for suffix, threshold in (("", success_distance), ("_strict", REACHER_SUCCESS_DISTANCE)):
        summary[f"success_rate{suffix}"], summary[f"success_interval{suffix}"] = rate_and_interval([distance < threshold for distance in finals])
        summary[f"reach_rate{suffix}"], summary[f"reach_interval{suffix}"] = rate_and_interval([distance < threshold for distance in closest])
    steps = sum(line["steps"] for line in lines)
    seconds = sum(line["seconds_per_action"] * line["steps"] for line in lines)
    return summary | {
        "mean_final_distance": float(np.mean(finals)),
        "mean_closest_distance": float(np.mean(closest)),
        "seconds_per_action": seconds / steps,
        "policy_seconds": seconds,  # summed over the plan processes
        "final_distances": finals,
        "closest_distances": closest,
    }


def planning_summary(plan: dict, success_distance: float) -> dict:
    """The headline, success at the end of the episode within `success_distance` (V-JEPA 2-AC [26]
    scores a reach by where the arm ends), for the planned policy and random actions, with the
    reached-at-some-step rates beside it; and every policy's own summary (`policy_summary`)."""
    policies = {name: policy_summary(policy["episodes"], success_distance) for name, policy in plan["policies"].items()}
    headline = {}
    for name, prefix in HEADLINE.items():
        summary = policies[name]
        for key in ("success_rate", "success_interval", "success_rate_strict", "success_interval_strict", "reach_rate", "reach_interval"):
            headline[f"{prefix}_{key}"] = summary[key]
    planned = plan["policies"]["planned"]["episodes"]
    initials = [line["initial_distance"] for line in planned]
    return {
        **headline,
        "success_criterion": (
            f"true simulator state: the fingertip (forward kinematics of MuJoCo's joint angles) is within {success_distance} m "
            f"of the goal image's fingertip after the last action of the {plan['steps']}-step episode; within "
            f"{REACHER_SUCCESS_DISTANCE} m (the task's own threshold) and reached at some step are reported beside it"
        ),
        "success_distance": success_distance,
        "strict_success_distance": REACHER_SUCCESS_DISTANCE,
        "interval": "95% Wilson score interval",
        "plan_episodes": len(planned),
        "plan_steps": plan["steps"],
        "goal_seeds": [line["goal_seed"] for line in planned],
        "planner": plan["planner"],
        "frame_size": plan["frame_size"],
        "initial_distances": initials,
        "mean_initial_distance": float(np.mean(initials)),
        "policies": policies,
    }


def write_report(out: Path, scale_name: str, scale: dict, times: dict[str, float]) -> dict:
    """summary.json and report.md in `out`, from the runs' files; returns the summary."""
    plan = json.loads((out / "plan" / "plan.json").read_text())
    curves = {name: plot_losses(out / name, title, out / f"{name}_loss.png") for name, title in LOSS_CURVES.items()}
    recorded = {policy: count_lines(out / "episodes" / policy / "manifest.jsonl") for policy in ("random", "scripted")}
    summary = {
        "env": plan["env"],
        "scale": scale_name,
        **planning_summary(plan, scale["success_distance"]),
        "episodes": {
            "recorded_with_actions": sum(recorded.values()),
            "recorded_random": recorded["random"],
            "recorded_scripted": recorded["scripted"],
            "unlabeled_videos": count_lines(out / "video" / "manifest.jsonl"),
            "planning_goals": len(plan["policies"]["planned"]["episodes"]),
        },
        "training_steps": {"pretrain": scale["pretrain_steps"], "posttrain": scale["posttrain_steps"]},
        "wall_s": {**times, "total": float(sum(seconds for name, seconds in times.items() if name not in NOT_IN_TOTAL))},
        "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "1")),
        "scale_settings": scale,
        "files": {
            "plan": "plan/plan.json",
            "gif": "plan/planning.gif",
            "baselines_gif": "plan/baselines.gif",
            "loss_curves": {name: path.name for name, path in curves.items() if path},
        },
    }
    partial = out / "summary.json.tmp"
    partial.write_text(json.dumps(summary, indent=2))
    os.replace(partial, out / "summary.json")
    (out / "report.md").write_text(report_markdown(summary))
    return summary


def context_text(frames: int, size: int) -> str:
    return f"the current {size} px frame" if frames == 1 else f"the last {frames} {size} px frames and the actions between them"


def rate_cell(rate: float, interval: list[float], goals: int) -> str:
    """A rate as the report shows it: count, percent and 95% interval, e.g. "7/40 18% (9-32%)"."""
    return f"{round(rate * goals)}/{goals} {rate:.0%} ({interval[0]:.0%}-{interval[1]:.0%})".replace("%-", "-")


def in_report_order(names) -> list[str]:
    """`POLICIES` first, in its order, then any other policy."""
    return sorted(names, key=lambda name: list(POLICIES).index(name) if name in POLICIES else len(POLICIES))


def policy_rows(summary: dict) -> str:
    """One table row per policy, in report order."""
    goals, rows = summary["plan_episodes"], []
    for name in in_report_order(summary["policies"]):
        policy = summary["policies"][name]
        cells = [
            POLICIES.get(name, name),
            rate_cell(policy["success_rate"], policy["success_interval"], goals),
            rate_cell(policy["success_rate_strict"], policy["success_interval_strict"], goals),
            rate_cell(policy["reach_rate"], policy["reach_interval"], goals),
            f"{policy['mean_final_distance']:.3f}",
            f"{policy['mean_closest_distance']:.3f}",
            f"{1000 * policy['seconds_per_action']:.2f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def report_markdown(summary: dict) -> str:
    planner, walls, policies = summary["planner"], summary["wall_s"], summary["policies"]
    stage_rows = "\n".join(f"| {name} | {seconds:.1f} |" for name, seconds in walls.items())
    curves = "\n\n".join(f"![{name} loss]({file})" for name, file in summary["files"]["loss_curves"].items())
    episodes, distance = summary["episodes"], summary["success_distance"]
    baselines = " | ".join(["goal", *(name for name in in_report_order(policies) if name != "planned")])
    seconds = ", ".join(f"{name} {policies[name]['policy_seconds']:.0f} s" for name in in_report_order(policies))
    return f"""# reverie quickstart: V-JEPA 2-AC planning on {summary['env']}

Goal-image planning with a world model trained here from scratch, in {walls['total'] / 60:.1f} minutes of stages.
V-JEPA was pretrained on {episodes['unlabeled_videos']} unlabeled videos (mp4, no actions, through `reverie ingest`); the action-conditioned
predictor was post-trained over the frozen encoder on {episodes['recorded_with_actions']} recorded episodes with
actions ({episodes['recorded_random']} random, {episodes['recorded_scripted']} noisy scripted). Planning ran on
{summary['plan_episodes']} held-out goals (reset seeds {summary['goal_seeds'][0]}..{summary['goal_seeds'][-1]}, never recorded).

**Success criterion** ({summary['success_criterion']}).

**At the end of the episode, within {distance} m: planned {rate_cell(summary['plan_success_rate'], summary['plan_success_interval'], summary['plan_episodes'])},
random {rate_cell(summary['random_success_rate'], summary['random_success_interval'], summary['plan_episodes'])}** (count, rate, {summary['interval']}).

| policy | at the end, within {distance} m | at the end, within {summary['strict_success_distance']} m | reached within {distance} m at some step | mean final distance (m) | mean closest distance (m) | ms per action |
| --- | --- | --- | --- | --- | --- | --- |
{policy_rows(summary)}

The zero action holds the arm at its start: the floor a planner must clear by moving. The oracle is the same
search with the same budget (and seed) through the true simulator, its energy the fingertip's true distance
after the last action: the ceiling for this planner budget, so the gap from planned to oracle is the model's.
Mean distance at the start: {summary['mean_initial_distance']:.3f} m. Planner: {planner['name']} with horizon
{planner['horizon']}, {planner['samples']} samples, {planner['iterations']} iterations, {planner.get('elites', '-')} elites,
initial std {planner.get('init_std', planner.get('noise_std'))}, replanning every step from {context_text(planner.get('context_frames', 1), summary['frame_size'])}.
Time per action is the policy's own calls, measured while two processes ran side by side (the planned
policy's two, or the baselines' one beside training); summed over them: {seconds} (plan stage
{walls.get('plan', float('nan')):.0f} s of wall time; the baselines {walls.get('baselines', float('nan')):.0f} s, beside pretraining
and post-training, not in the total).

![planning: goal | planned](plan/planning.gif) ![baselines: {baselines}](plan/baselines.gif)

Each row: the goal image, then the planned episode toward it; beside it, the same goals under each baseline ({baselines}).

## Loss curves

{curves}

## Wall time per stage (s)

| stage | s |
| --- | --- |
{stage_rows}
"""
