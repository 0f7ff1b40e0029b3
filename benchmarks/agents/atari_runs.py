"""What the Atari benchmarks of the imagination agents share (`iris.py`, `diamond.py`): one agent
trained on one game to a step budget with evaluations along the way, the reference points beside
it, and the table and figure.

Evaluation plays whole games (no life-loss ends, no exploration) with the agent's actor, reset
with seeds 10000 + 100 * seed + i. Beside the agent, on the same protocol and seeds:
- random: a uniform action at every step, the floor of the Atari 100k tables;
- the best single action held for a whole game, the trivial baseline (the best of all the game's
  actions, each played for `constant_episodes` games).
A finished run's agent plays `--final-episodes` more games (`final_evaluation`); the headline is
their mean, with the bootstrap 95% interval of its difference from random's 20 games: the agent
beats random when that interval lies above 0.

A run checkpoints the agent to benchmarks/.data/NAME/GAME_seedN.safetensors after every
evaluation, so a killed run goes on from its last evaluation; each evaluation is merged into
benchmarks/results/NAME.json as it comes, under `runs` keyed GAME-ID:SEED, and the reference points
under `references` keyed by game id.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/common.py
import common  # noqa: E402
from reverie.agents.registry import load_agent  # noqa: E402

EVAL_SEED = 10_000
# the Atari 100k tables of [14] IRIS (Table 1) and [16] DIAMOND (Table 1): mean scores over their seeds
PUBLISHED = {
    "ALE/Asterix-v5": {"random": 210.0, "human": 8503.3, "IRIS": 853.6, "DIAMOND": 3698.5},
    "ALE/RoadRunner-v5": {"random": 11.5, "human": 7845.0, "IRIS": 9614.6, "DIAMOND": 20673.2},
    "ALE/Pong-v5": {"random": -20.7, "human": 14.6, "IRIS": 14.6, "DIAMOND": 20.4},
    "ALE/Breakout-v5": {"random": 1.7, "human": 30.5, "IRIS": 83.7, "DIAMOND": 132.5},
    "ALE/Boxing-v5": {"random": 0.1, "human": 12.1, "IRIS": 70.1, "DIAMOND": 86.9},
}


def play(env, choose, episodes: int, seed: int) -> list[float]:
    """Returns of `episodes` whole games where `choose(observation)` picks each action."""
    returns = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=EVAL_SEED + 100 * seed + episode)
        total, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(choose(observation))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return returns


def game_name(env_id: str) -> str:
    """ALE/Asterix-v5 -> Asterix."""
    return env_id.split("/")[-1].split("-")[0]


def references_for(name: str, agent_class, config, env_id: str) -> dict:
    """The reference points of `env_id`, computed once and kept in NAME.json."""
    results = common.RESULTS / f"{name}.json"
    stored = common.update_results(results, lambda results: None).get("references", {})
    if env_id not in stored:
        eval_env = agent_class.make_env(type(config)(**{**vars(config), "life_loss_ends": False}), env_id)
        computed = baselines(eval_env, episodes=20, constant_episodes=3)
        stored = common.update_results(results, lambda results: results.setdefault("references", {}).update({env_id: computed}))["references"]
    return stored[env_id]


def baselines(eval_env, episodes: int, constant_episodes: int) -> dict:
    """The random and the best-constant-action reference points on the evaluation protocol."""
    rng = np.random.default_rng(0)
    count = int(eval_env.action_space.n)
    random_returns = play(eval_env, lambda _: int(rng.integers(count)), episodes, seed=0)
    constant = {action: play(eval_env, lambda _, a=action: a, constant_episodes, seed=0) for action in range(count)}
    best = max(constant, key=lambda action: np.mean(constant[action]))
    names = eval_env.unwrapped.get_action_meanings()
    return {
        "random": {"mean": float(np.mean(random_returns)), "returns": random_returns},
        "best_constant": {"action": names[best], "mean": float(np.mean(constant[best])), "returns": constant[best]},
        "constant_means": {names[action]: float(np.mean(values)) for action, values in constant.items()},
    }


def train_with_evaluations(name: str, agent_class, config, env_id: str, seed: int, steps: int, eval_every: int, eval_episodes: int) -> dict:
    """Train `agent_class(config)` on `env_id` to `steps` real steps, evaluating after the first
    episode past every `eval_every` steps; resumes from benchmarks/.data/NAME/seed{seed}."""
    folder = common.DATA / name
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint, key = folder / f"{game_name(env_id)}_seed{seed}.safetensors", f"{env_id}:{seed}"
    env = agent_class.make_env(config, env_id)
    eval_env = agent_class.make_env(type(config)(**{**vars(config), "life_loss_ends": False}), env_id)
    stored = common.update_results(common.RESULTS / f"{name}.json", lambda results: None)["runs"].get(key)
    if checkpoint.exists() and stored:
        agent, run = load_agent(checkpoint), stored
        print(f"resuming {name} seed {seed} at step {agent.total_steps}", flush=True)
    else:
        agent = agent_class(config, env.observation_space, env.action_space)
        run = {"config": vars(config), "eval_steps": [], "eval_returns": [], "train_returns": [], "seconds": 0.0}
    started, last = time.perf_counter(), run["seconds"]

    def evaluate_and_save() -> None:
        returns = agent.evaluate(eval_env, eval_episodes, EVAL_SEED + 100 * seed)
        run["eval_steps"].append(agent.total_steps)
        run["eval_returns"].append(returns)
        run["seconds"] = last + time.perf_counter() - started
        agent.save(checkpoint)
        common.update_results(common.RESULTS / f"{name}.json", lambda results: results["runs"].update({key: run}))
        print(f"  {name} seed {seed} step {agent.total_steps} (epoch {agent.epochs}): eval {np.mean(returns):.1f} {returns} ({run['seconds']:.0f} s)", flush=True)

    def on_episode(row: dict) -> None:
        run["train_returns"].append(row["return"])
        due = run["eval_steps"][-1] + eval_every if run["eval_steps"] else eval_every
        if agent.total_steps >= due:
            losses = {key: round(value, 3) for key, value in row.items() if isinstance(value, float) and key not in ("return", "seconds")}
            print(f"  step {agent.total_steps}: last train return {row['return']:g}, {losses}", flush=True)
            evaluate_and_save()

    torch.manual_seed(seed)
    agent.train(env, steps=steps, on_episode=on_episode)
    if not run["eval_steps"] or run["eval_steps"][-1] < agent.total_steps:
        evaluate_and_save()
    return run


def final_evaluation(name: str, env_id: str, seed: int, episodes: int) -> None:
    """Play `episodes` more whole games with the checkpointed agent of a finished run (seeds apart
    from the evaluations along the way) and store their returns as the run's `final_returns`."""
    key, results = f"{env_id}:{seed}", common.RESULTS / f"{name}.json"
    run = common.update_results(results, lambda results: None)["runs"].get(key)
    checkpoint = common.DATA / name / f"{game_name(env_id)}_seed{seed}.safetensors"
    if run is None or "final_returns" in run or not checkpoint.exists():
        return
    agent = load_agent(checkpoint)
    eval_env = agent.make_env(type(agent.config)(**{**vars(agent.config), "life_loss_ends": False}), env_id)
    returns = agent.evaluate(eval_env, episodes, EVAL_SEED + 100 * seed + 50)
    print(f"  {name} seed {seed} after {agent.total_steps} steps: final {episodes} games {np.mean(returns):.1f}", flush=True)
    common.update_results(results, lambda results: results["runs"][key].update(final_returns=returns, final_steps=agent.total_steps))


def difference_interval(ours: list[float], theirs: list[float], draws: int = 10_000) -> tuple[float, float]:
    """The bootstrap 95% interval of mean(ours) - mean(theirs)."""
    rng = np.random.default_rng(0)
    ours_drawn = rng.choice(ours, (draws, len(ours))).mean(1)
    theirs_drawn = rng.choice(theirs, (draws, len(theirs))).mean(1)
    low, high = np.percentile(ours_drawn - theirs_drawn, [2.5, 97.5])
    return float(low), float(high)


def report(name: str, game: str, published: dict, references: dict, figure: Path) -> dict:
    """Print the table of `name`'s stored runs on `game` beside the references, draw the curves; the summary."""
    runs = {key: run for key, run in common.update_results(common.RESULTS / f"{name}.json", lambda results: None)["runs"].items() if key.startswith(f"{game}:")}
    summary = {}
    print(f"\n{game}: evaluation return (mean of whole games)   random {references['random']['mean']:.1f}   "
          f"best constant action ({references['best_constant']['action']}) {references['best_constant']['mean']:.1f}   published: {published}")  # fmt: skip
    for key, run in sorted(runs.items()):
        means = [float(np.mean(returns)) for returns in run["eval_returns"]]
        final = run.get("final_returns", run["eval_returns"][-1])
        low, high = difference_interval(final, references["random"]["returns"])
        summary[key] = {
            "eval_steps": run["eval_steps"], "eval_means": means, "final_steps": run.get("final_steps", run["eval_steps"][-1]),
            "final_games": len(final), "final_mean": float(np.mean(final)), "final_returns": final,
            "minus_random_95": [low, high], "beats_random": low > 0, "minutes": round(run["seconds"] / 60, 1),
        }
        print(f"  {key}: {len(run['eval_steps'])} evaluations in {run['seconds'] / 60:.1f} min")
        for step, mean, returns in zip(run["eval_steps"], means, run["eval_returns"]):
            print(f"    step {step:6d}: {mean:8.1f}   {returns}")
        print(f"    final, {len(final)} games: {np.mean(final):.1f}; minus random, 95% interval [{low:.1f}, {high:.1f}]: "
              f"{'beats' if low > 0 else 'does not beat'} random")  # fmt: skip
    draw(runs, references, game, figure)
    return summary


def replayed_in_dream(name: str, env_id: str, seed: int, windows: int, horizon: int, draw_seed: int):
    """Replay windows of a finished run's agent, replayed in its dream with their real actions:
    (the windows, the context length K, the dreamed frames (the frame the dream starts from, then
    one a step), the dreamed rewards (B, H)); None without a checkpoint."""
    checkpoint = common.DATA / name / f"{game_name(env_id)}_seed{seed}.safetensors"
    if not checkpoint.exists():
        return None
    agent = load_agent(checkpoint)
    context = agent.context_frames
    with torch.random.fork_rng():
        torch.manual_seed(draw_seed)
        window = agent.replay.sample(windows, context + horizon)
        world = agent.dream()
        frames, rewards = [world.reset(window["frames"][:, :context], window["actions"][:, : context - 1])], []
        for t in range(horizon):
            frame, reward, _ = world.step(window["actions"][:, context - 1 + t])
            frames.append(frame)
            rewards.append(reward)
    return window, context, frames, torch.stack(rewards, dim=1)


def dream_rewards(name: str, env_id: str, seed: int, windows: int = 64, horizon: int = 15) -> dict | None:
    """How often the dream pays where the game did: the mean reward sign a step (and the fraction of
    steps with a reward) of real replay windows against the same windows replayed in the dream. A
    dream that pays far more often than the game is what an actor trained in it learns to chase."""
    replayed = replayed_in_dream(name, env_id, seed, windows, horizon, draw_seed=1)
    if replayed is None:
        return None
    window, context, _, dreamed = replayed
    real = torch.sign(window["rewards"][:, context - 1 : context - 1 + horizon])
    return {
        "real_reward_per_step": float(real.mean()), "dream_reward_per_step": float(dreamed.float().mean()),
        "real_rewarded_steps": float((real != 0).float().mean()), "dream_rewarded_steps": float((dreamed != 0).float().mean()),
        "windows": windows, "horizon": horizon,
    }


def dream_figure(name: str, env_id: str, seed: int, figure: Path, rows: int = 3, horizon: int = 15) -> None:
    """Real replay windows beside the agent's dream of them: each pair of rows starts from the same
    real context and takes the real actions; the top row is what happened, the bottom the dream."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    replayed = replayed_in_dream(name, env_id, seed, rows, horizon, draw_seed=0)
    if replayed is None:
        return
    window, context, dreamed, _ = replayed
    real = window["frames"][:, context - 1 :]
    columns = horizon + 1
    axes = plt.subplots(2 * rows, columns, figsize=(columns * 0.8, 2 * rows * 0.85))[1]
    for row in range(rows):
        for t in range(columns):
            for offset, frames in ((0, real[row, t]), (1, dreamed[t][row])):
                axis = axes[2 * row + offset, t]
                axis.imshow(frames.permute(1, 2, 0).clamp(0, 1).numpy())
                axis.set_xticks([]), axis.set_yticks([])
            if t == 0:
                axes[2 * row, 0].set_ylabel("real", fontsize=7)
                axes[2 * row + 1, 0].set_ylabel("dream", fontsize=7)
    plt.suptitle(f"{name} on {game_name(env_id)}: the last real context frame, then {horizon} steps with the real actions", fontsize=8)
    plt.tight_layout()
    plt.savefig(figure, dpi=100)
    plt.close()
    print(f"figure: {figure}")


def draw(runs: dict, references: dict, game: str, figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = plt.subplots(figsize=(6, 4))[1]
    for key, run in sorted(runs.items()):
        means = [float(np.mean(returns)) for returns in run["eval_returns"]]
        axis.plot(run["eval_steps"], means, marker="o", label=f"seed {key.rsplit(':', 1)[1]}")
    axis.axhline(references["random"]["mean"], color="tab:gray", linestyle="--", label="random")
    axis.axhline(references["best_constant"]["mean"], color="tab:gray", linestyle=":", label=f"best constant action ({references['best_constant']['action']})")
    axis.set(title=game, xlabel="real environment steps", ylabel="evaluation return (whole games)")
    axis.legend()
    axis.figure.tight_layout()
    axis.figure.savefig(figure, dpi=100)
    print(f"figure: {figure}")


def benchmark(name: str, agent_class, settings: dict[str, dict], description: str, game: str = "ALE/Asterix-v5") -> None:
    """The command line of `iris.py` and `diamond.py`: train agent `name` at the chosen `settings`
    (the first is the default; another one's results go under NAME_SETTING), play its final games,
    and print, draw and store the results."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", choices=list(settings), default=next(iter(settings)), help="the agent's settings")
    parser.add_argument("--game", default=game, help=f"an ale-py id (default {game})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--final-episodes", type=int, default=20, help="whole games played by the trained agent at the end")
    parser.add_argument("--report", action="store_true", help="only print and draw the stored runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = settings[args.settings]
    name = name if args.settings == next(iter(settings)) else f"{name}_{args.settings}"
    results, game_label = common.RESULTS / f"{name}.json", game_name(args.game)
    references = references_for(name, agent_class, agent_class.config_class(**cpu), args.game)
    for seed in args.seeds:
        if not args.report:
            train_with_evaluations(name, agent_class, agent_class.config_class(**cpu, seed=seed), args.game, seed, args.steps, args.eval_every, args.eval_episodes)
        final_evaluation(name, args.game, seed, args.final_episodes)
    summary = report(name, args.game, PUBLISHED.get(args.game, {}), references, common.RESULTS / f"{name}_{game_label}.png")
    common.update_results(results, lambda stored: stored.setdefault("summary", {}).update(summary))
    rewards = dream_rewards(name, args.game, args.seeds[0])
    if rewards:
        print(f"replayed in the dream with their real actions, {rewards['windows']} windows of {rewards['horizon']} steps: reward a step "
              f"{rewards['real_reward_per_step']:.3f} real, {rewards['dream_reward_per_step']:.3f} dreamed")  # fmt: skip
        common.update_results(results, lambda stored: stored["summary"][f"{args.game}:{args.seeds[0]}"].update(dream_rewards=rewards))
    dream_figure(name, args.game, args.seeds[0], common.RESULTS / f"{name}_{game_label}_dreams.png")
