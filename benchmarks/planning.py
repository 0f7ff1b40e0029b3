"""Planning speed of V-JEPA 2-AC: time per planned action, encoder and predictor throughput.

Builds the quickstart's models (configs/quickstart/vjepa.yaml under configs/quickstart/vjepa_ac.yaml,
64 px Reacher frames, 2-d actions and states) with fresh weights -- speed does not depend on them;
the feature and action statistics come from one batch of random inputs -- or loads
a saved `vjepa_ac` folder with `--model`, and measures on each device at hand (CPU, and CUDA
when there is a GPU):

- encoder: frames per second through the frozen encoder, one frame at a time (what planning
  encodes per step) and in batches;
- predictor: imagined frames per second, `rollout` of N candidate sequences over H steps with the
  KV cache (N x H frames per call);
- planning: seconds per action of receding-horizon CEM (`reverie.planning.control.PlanningPolicy`)
  at the quickstart's settings and at the planner's defaults (H 8, N 256, 6 iterations);
- oracle: seconds per action of the same CEM through the true simulator
  (`reverie.planning.oracle.OraclePolicy`, reverie/ReacherJoints-v0) at the quickstart's settings:
  the cost of the quickstart's ceiling baseline, on the CPU whatever the device.

Writes benchmarks/results/planning.json, keeping the figures it held before under "old" and
printing the planned policy's time per action beside the old one.

    .venv/bin/python benchmarks/planning.py
    .venv/bin/python benchmarks/planning.py --model runs/quickstart/models/vjepa_ac --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from common import ROOT, RESULTS, write_json
from reverie.envs.make import make_env
from reverie.envs.reacher_arm import reacher_fingertip_at
from reverie.nn.model_folder import MODELS, load_model_folder
from reverie.planning.control import PlanningPolicy, action_bounds, as_planning_model
from reverie.planning.goals import Goal, GoalTask, goal_task_for
from reverie.planning.oracle import OraclePolicy
from reverie.planning.planners import make_planner
from reverie.recipes.quickstart import ENV_ID, SCALES

CONFIGS = ROOT / "configs" / "quickstart"
ACTION_LOW, ACTION_HIGH = -0.25, 0.25  # reverie/ReacherJoints-v0's joint-angle steps (rad)


def quickstart_model() -> torch.nn.Module:
    """The quickstart's V-JEPA 2-AC, fresh weights: its predictor config over its encoder config."""
    encoder = OmegaConf.to_container(OmegaConf.load(CONFIGS / "vjepa.yaml").model)
    predictor = OmegaConf.to_container(OmegaConf.load(CONFIGS / "vjepa_ac.yaml").model)
    encoder.pop("name"), predictor.pop("name"), predictor.pop("encoder_folder")
    vjepa_ac = MODELS.get("vjepa_ac")
    model = vjepa_ac(vjepa_ac.config_class(encoder=encoder, **predictor))
    size, generator = encoder["image_size"], torch.Generator().manual_seed(0)
    frames = torch.rand(2, 4, 3, size, size, generator=generator)
    actions = (torch.rand(2, 4, predictor["action_dim"], generator=generator) - 0.5) * 2 * ACTION_HIGH
    states = torch.randn(2, 4, predictor["state_dim"], generator=generator) if predictor["state_dim"] else None
    with torch.no_grad():
        model.feature_losses(model.encode(frames), actions, states)  # training mode: the standardisers take in statistics
    return model.eval()


def timed(function, repeats: int, device: torch.device) -> float:
    """Seconds per call, after one warm-up call."""
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def encoder_throughput(model, size: int, device: torch.device, batch: int) -> float:
    frames = torch.rand(batch, 1, 3, size, size, device=device)
    return batch / timed(lambda: model.encode(frames), 20 if batch == 1 else 5, device)


def predictor_throughput(model, size: int, device: torch.device, candidates: int, horizon: int) -> float:
    context = model.encode(torch.rand(1, 1, 3, size, size, device=device))[0]  # (1, N_tok, D)
    actions = torch.rand(candidates, horizon, model.config.action_dim, device=device) * 2 - 1
    states = torch.zeros(1, model.config.state_dim, device=device) if model.config.state_dim else None  # (T0, S)
    return candidates * horizon / timed(lambda: model.rollout(context, actions, states=states), 5, device)


def seconds_per_action(model, size: int, device: torch.device, horizon: int, samples: int, iterations: int, steps: int = 10) -> float:
    """Receding-horizon CEM toward a random goal image: `steps` actions from random frames."""
    bounds = [torch.full((model.config.action_dim,), bound, device=device) for bound in (ACTION_LOW, ACTION_HIGH)]
    planner = make_planner("cem", *bounds, horizon=horizon, samples=samples, iterations=iterations, elites=max(1, samples // 8), init_std=0.5)
    policy = PlanningPolicy(as_planning_model(model, device), planner)
    rng = np.random.default_rng(0)
    policy.reset(Goal(GoalTask(), rng.integers(0, 256, (size, size, 3), dtype=np.uint8), None, seed=0))
    frames = rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8)
    observation = np.zeros(model.config.state_dim, np.float32) if model.config.state_dim else np.zeros((size, size, 3), np.uint8)
    policy(frames[0], observation)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for frame in frames:
        policy(frame, observation)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def oracle_seconds_per_action(horizon: int, samples: int, iterations: int, steps: int = 10) -> float:
    """Receding-horizon CEM through the simulator toward a fixed fingertip goal, from seed 0's start."""
    env = make_env(ENV_ID)
    low, high = (torch.as_tensor(bound) for bound in action_bounds(env))
    planner = make_planner("cem", low, high, horizon=horizon, samples=samples, iterations=iterations, elites=max(1, samples // 8), init_std=0.125)
    policy = OraclePolicy(env, planner)
    goal = Goal(goal_task_for(ENV_ID), np.zeros((1, 1, 3), np.uint8), reacher_fingertip_at(np.array([1.0, -1.5])), seed=0)
    policy.reset(goal)
    observation = env.reset(seed=0)[0]
    env.step(policy(None, observation))  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        observation = env.step(policy(None, observation))[0]
    seconds = (time.perf_counter() - started) / steps
    env.close()
    return seconds


def measure(model, size: int, device: torch.device) -> dict:
    quick = SCALES["full"]
    settings = {"quickstart": (quick.horizon, quick.samples, quick.iterations, 10), "planner_defaults": (8, 256, 6, 3)}
    return {
        "encoder_frames_per_s": {"batch_1": encoder_throughput(model, size, device, 1), "batch_64": encoder_throughput(model, size, device, 64)},
        "predictor_frames_per_s": {
            f"N{candidates}_H{horizon}": predictor_throughput(model, size, device, candidates, horizon)
            for candidates, horizon in ((64, 5), (256, 8))
        },
        "planning_s_per_action": {
            name: {"horizon": h, "samples": n, "iterations": i, "seconds": seconds_per_action(model, size, device, h, n, i, steps)}
            for name, (h, n, i, steps) in settings.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a vjepa_ac model folder (default: the quickstart's sizes, fresh weights)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU torch thread counts to measure")
    parser.add_argument("--out", type=Path, default=RESULTS / "planning.json")
    args = parser.parse_args()

    model = load_model_folder(args.model).eval() if args.model else quickstart_model()
    size = (model.config.frame_size or [model.encoder.config.image_size])[0]
    results = {
        "model": str(args.model or "configs/quickstart (fresh weights)"),
        "frame_size": size,
        "predictor_tokens_per_frame": model.predictor.frame_tokens,  # the encoder's patches, plus action (and state) tokens
        "parameters": {"encoder": sum(p.numel() for p in model.encoder.encoder.parameters()), "predictor": sum(p.numel() for p in model.predictor.parameters())},
        "torch": torch.__version__,
        "cpu": {"name": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "devices": {},
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        results["devices"][f"cpu_{threads}_threads"] = measure(model.to("cpu"), size, torch.device("cpu"))
        print(f"cpu, {threads} threads: {json.dumps(results['devices'][f'cpu_{threads}_threads'])}")
    if torch.cuda.is_available():
        results["gpu"] = torch.cuda.get_device_name()
        results["devices"]["cuda"] = measure(model.to("cuda"), size, torch.device("cuda"))
        print(f"cuda: {json.dumps(results['devices']['cuda'])}")
    budget = {name: getattr(SCALES["full"], name) for name in ("horizon", "samples", "iterations")}
    results["oracle_s_per_action"] = {"quickstart": budget | {"seconds": oracle_seconds_per_action(**budget)}}
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["old"] = old.get("old", old)  # the first figures stored before this layout; kept as they were
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    for line in comparison_lines(results):
        print(line)
    print(f"-> {args.out}")


def comparison_lines(results: dict) -> list[str]:
    """The quickstart budget's seconds per action: planned now beside the old figure, and the oracle."""
    lines = []
    for name, measured in results["devices"].items():
        before = results["old"].get("devices", {}).get(name, {}).get("planning_s_per_action", {}).get("quickstart", {}).get("seconds")
        now = measured["planning_s_per_action"]["quickstart"]["seconds"]
        lines.append(f"planned, quickstart budget, {name}: {now:.3f} s per action" + (f" (old {before:.3f})" if before else " (no old figure)"))
    lines.append(f"oracle, quickstart budget, cpu: {results['oracle_s_per_action']['quickstart']['seconds']:.3f} s per action")
    return lines


if __name__ == "__main__":
    main()
