"""UniPi [22] on reverie/GoalGrid-v0 (a 6 x 6 toroidal room, 24 x 24 px frames, 4 actions, the goal
given as an image or as a text, at most 12 steps): plan by generating video, act by inverse dynamics.

- The inverse dynamics model trains on real transitions under random actions and is scored on
  held-out ones (UniPi's claim: actions can be read from consecutive frames; target above 95% on
  this deterministic env).
- The goal video model trains on shortest-path demonstrations from random starts to random goals,
  each transition's goal given as its image or as its text ("go to row R, column C").
- Success (the env ends the episode at the goal within its limit, UniPi's criterion) over the same
  held-out episodes for: random actions; UniPi with image goals and with text goals, open-loop
  (one plan of `--horizon` frames) and replanning every 2 steps; and the inverse dynamics model
  run on the ground-truth video of a shortest path, the ceiling of any generated plan.
Every number comes from the seeds fixed below. Writes benchmarks/results/video_policy.json and
video_policy.png (success rates, and a generated plan beside the real shortest path).

    .venv/bin/python benchmarks/video_policy.py
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import reverie.envs  # noqa: F401  registers reverie/GoalGrid-v0
from common import RESULTS, machine, write_json
from reverie.envs.goal_grid import task_text
from reverie.planning.goal_video import GoalVideoConfig, GoalVideoModel
from reverie.planning.inverse_dynamics import InverseDynamicsModel, fit_inverse_dynamics, inverse_dynamics_accuracy
from reverie.planning.video_policy import (
    VideoPolicy, as_tensor, demonstrations, ground_truth_video_planner, random_planner, random_transitions, shortest_path_video,
    success_rate,
)  # fmt: skip

ENV_ID, SIZE = "reverie/GoalGrid-v0", 6
REAL_TRANSITIONS, HELD_OUT_TRANSITIONS, IDM_STEPS = 4000, 1000, 500
DEMO_EPISODES, BATCH, LR = 1000, 32, 1e-3
EVALUATION_SEED, REPLAN_EVERY = 50_000, 2


def train_video_model(demo, steps: int) -> tuple[GoalVideoModel, list[float]]:
    torch.manual_seed(0)
    tasks = [task_text((row, column)) for row in range(SIZE) for column in range(SIZE)]
    model = GoalVideoModel(GoalVideoConfig(tasks=tasks))
    optimizer, generator, losses = torch.optim.Adam(model.parameters(), lr=LR), torch.Generator().manual_seed(0), []
    for step in range(steps):
        rows = torch.randint(0, len(demo.actions), (BATCH,), generator=generator)
        loss = model.training_loss(demo.frames[rows], demo.next_frames[rows], demo.goal_frames[rows], [demo.tasks[i] for i in rows], generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 500 == 0:
            print(f"video model step {step + 1}: loss {sum(losses[-100:]) / 100:.4f}", flush=True)
    return model.eval(), losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps of the goal video model (batch 32)")
    parser.add_argument("--episodes", type=int, default=100, help="held-out episodes per policy")
    parser.add_argument("--horizon", type=int, default=6, help="frames a plan generates (the torus's longest shortest path)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    env = gym.make(ENV_ID)
    started = time.perf_counter()
    real, held_out = random_transitions(env, REAL_TRANSITIONS, seed=0), random_transitions(env, HELD_OUT_TRANSITIONS, seed=1)
    torch.manual_seed(0)
    inverse_dynamics = InverseDynamicsModel(env.action_space.n)
    idm_losses = fit_inverse_dynamics(inverse_dynamics, real.frames, real.next_frames, real.actions, IDM_STEPS)
    idm_accuracy = inverse_dynamics_accuracy(inverse_dynamics, held_out.frames, held_out.next_frames, held_out.actions)
    print(f"inverse dynamics: held-out accuracy {idm_accuracy:.4f} on {HELD_OUT_TRANSITIONS} real transitions", flush=True)
    demo = demonstrations(env, DEMO_EPISODES, seed=10_000)
    video_model, losses = train_video_model(demo, args.steps)
    seconds = time.perf_counter() - started
    planners = {
        "random actions": (random_planner(env, seed=1), None),
        "UniPi, image goal, open-loop": (VideoPolicy(video_model, inverse_dynamics, args.horizon), None),
        f"UniPi, image goal, replan every {REPLAN_EVERY}": (VideoPolicy(video_model, inverse_dynamics, args.horizon), REPLAN_EVERY),
        "UniPi, text goal, open-loop": (VideoPolicy(video_model, inverse_dynamics, args.horizon, text_goals=True), None),
        f"UniPi, text goal, replan every {REPLAN_EVERY}": (VideoPolicy(video_model, inverse_dynamics, args.horizon, text_goals=True), REPLAN_EVERY),
        "inverse dynamics on ground-truth video (ceiling)": (ground_truth_video_planner(inverse_dynamics, env), None),
    }
    results = {}
    for name, (planner, replan_every) in planners.items():
        results[name] = success_rate(env, planner, args.episodes, EVALUATION_SEED, replan_every)
        low, high = results[name]["ci95"]
        print(f"{name:50s} success {results[name]['success_rate']:.2f} [{low:.2f}, {high:.2f}]", flush=True)
    claims = {
        "the inverse dynamics model reads above 95% of held-out real transitions": idm_accuracy > 0.95,
        "UniPi (image goal, replanning) succeeds more often than random actions, intervals apart":
            results[f"UniPi, image goal, replan every {REPLAN_EVERY}"]["ci95"][0] > results["random actions"]["ci95"][1],
        "UniPi (text goal, replanning) succeeds more often than random actions, intervals apart":
            results[f"UniPi, text goal, replan every {REPLAN_EVERY}"]["ci95"][0] > results["random actions"]["ci95"][1],
    }  # fmt: skip
    for claim, held in claims.items():
        print(f"{'yes' if held else 'NO '}  {claim}")
    write_json(RESULTS / "video_policy.json", {
        "env": ENV_ID, "data": {"real_transitions": REAL_TRANSITIONS, "held_out_transitions": HELD_OUT_TRANSITIONS, "demonstration_episodes": DEMO_EPISODES,
                                "demonstration_transitions": len(demo.actions)},
        "budget": {"video_model_steps": args.steps, "batch_size": BATCH, "lr": LR, "inverse_dynamics_steps": IDM_STEPS, "torch_threads": 2,
                   "training_seconds": seconds},
        "models": {"video": vars(video_model.config) | {"tasks": len(video_model.config.tasks)}},
        "inverse_dynamics_accuracy": idm_accuracy, "inverse_dynamics_loss_last": idm_losses[-1],
        "video_model_loss": {"first_100": sum(losses[:100]) / 100, "last_100": sum(losses[-100:]) / 100},
        "evaluation": {"episodes": args.episodes, "seed": EVALUATION_SEED, "horizon": args.horizon, "max_episode_steps": env.spec.max_episode_steps},
        "success": results, "claims": claims, "machine": machine(), "figure": "video_policy.png",
    })  # fmt: skip
    figure(env, video_model, inverse_dynamics, results, args.horizon)
    print(f"wrote {RESULTS / 'video_policy.json'} and {RESULTS / 'video_policy.png'}")


def figure(env, video_model: GoalVideoModel, inverse_dynamics: InverseDynamicsModel, results: dict, horizon: int) -> None:
    """Success rates with their intervals, and for one held-out episode the generated plan (image and
    text goal) beside the real shortest path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame, info = env.reset(seed=EVALUATION_SEED)
    strips = {
        "goal image": as_tensor(info["goal_frame"])[None],
        "real shortest path": shortest_path_video(env, info, np.random.default_rng(0)),
        "plan, image goal": VideoPolicy(video_model, inverse_dynamics, horizon).video(frame, info)[0],
        f"plan, text: {info['task']}": VideoPolicy(video_model, inverse_dynamics, horizon, text_goals=True).video(frame, info)[0],
    }
    plot, (bars, pictures) = plt.subplots(2, 1, figsize=(10, 7), gridspec_kw={"height_ratios": [1.4, 1.6]})
    names = list(results)
    rates = [results[name]["success_rate"] for name in names]
    errors = [[max(0.0, rate - results[name]["ci95"][0]) for name, rate in zip(names, rates)],
              [max(0.0, results[name]["ci95"][1] - rate) for name, rate in zip(names, rates)]]  # fmt: skip
    bars.barh(names, rates, xerr=errors, color=["grey"] + ["tab:blue"] * (len(names) - 2) + ["tab:green"])
    bars.set(xlim=(0, 1), xlabel="success rate (95% interval)", title=f"{ENV_ID}: reaching the goal within {env.spec.max_episode_steps} steps")
    bars.invert_yaxis()
    width = max(len(frames) for frames in strips.values())
    rows = [torch.cat([frames, torch.ones(width - len(frames), *frames.shape[1:])]) for frames in strips.values()]
    canvas = torch.cat([torch.cat(list(row), dim=2) for row in rows], dim=1)
    pictures.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    height = canvas.shape[1] // len(rows)
    pictures.set_yticks([height * (index + 0.5) for index in range(len(rows))], list(strips))
    pictures.set_xticks([])
    plot.tight_layout()
    plot.savefig(RESULTS / "video_policy.png", dpi=120)
    plt.close(plot)


if __name__ == "__main__":
    main()
