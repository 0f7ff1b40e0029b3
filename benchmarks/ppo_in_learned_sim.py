"""A real client trained only inside a learned simulator, then scored in the real game: the claim
of World Models [7] and DIAMOND [16], measured with stable-baselines3's PPO.

The simulator is an imagination agent's world model after its CPU run on Asterix
(`benchmarks/agents/diamond.py` or `iris.py`: 10k real steps): DIAMOND's diffusion model with its
reward/termination model, or IRIS's transformer with its own heads. It is stepped as reverie's
learned worlds (`reverie.envs.learned_worlds`, the batched core of `reverie/WorldModel-v0`) behind
SB3's VecEnv interface, N worlds in one model call. Each dreamed episode starts from the first
frame of an episode of the agent's replay and lasts until the model says it ended, or
`--max-steps` steps; its rewards are the predicted signs, as Atari agents train on clipped rewards.

Scored on whole real games (no life-loss ends, the same seeds as `atari_runs.py`), beside:
- random play and the best single action (the agent benchmark's references);
- the same PPO trained in the real game for as many real steps as the world model was trained on
  (the claim: the world model makes better use of the same real data);
- the agent's own actor, trained in the same dreams (its benchmark's final games).

    .venv/bin/python benchmarks/ppo_in_learned_sim.py                 # after benchmarks/agents/diamond.py
    .venv/bin/python benchmarks/ppo_in_learned_sim.py --agent iris    # after benchmarks/agents/iris.py
    .venv/bin/python benchmarks/ppo_in_learned_sim.py --sim-steps 200000 --seeds 0 1

Results: benchmarks/results/ppo_in_learned_sim.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent / "agents"))
import atari_runs  # noqa: E402
from atari_runs import common  # noqa: E402
from reverie.agents.registry import load_agent  # noqa: E402
from reverie.envs.learned_worlds import LearnedWorlds, StartFrames, load_world_model  # noqa: E402

GAME = "ALE/Asterix-v5"
RESULTS = common.RESULTS / "ppo_in_learned_sim.json"


class SmallCNN(BaseFeaturesExtractor):
    """SB3's NatureCNN needs frames of 36 px or more; this is its shape for 32 px frames."""

    def __init__(self, observation_space: gym.spaces.Box, features: int = 256):
        super().__init__(observation_space, features)
        self.net = nn.Sequential(
            nn.Conv2d(observation_space.shape[0], 32, 4, stride=2), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            width = self.net(torch.zeros(1, *observation_space.shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(width, features), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(observations))


class DreamVecEnv(VecEnv):
    """SB3's VecEnv over reverie's learned worlds: all worlds step in one model call, and a world
    that ends restarts at once from a drawn start frame (SB3's convention, with the final frame in
    `terminal_observation`)."""

    def __init__(self, worlds: LearnedWorlds, starts: StartFrames, max_steps: int, seed: int):
        frame_size, self.render_mode = starts.frame_size, None
        super().__init__(worlds.num_worlds, gym.spaces.Box(0, 255, (*frame_size, 3), np.uint8), worlds.action_space)
        self.worlds, self.starts, self.max_steps = worlds, starts, max_steps
        self.rng, self.lengths = np.random.default_rng(seed), np.zeros(worlds.num_worlds, np.int64)
        worlds.seed(seed)

    def reset(self) -> np.ndarray:
        frames = [self.starts.draw(self.rng) for _ in range(self.num_envs)]
        self.worlds.restart(range(self.num_envs), frames)
        self.lengths[:] = 0
        return np.stack(frames)

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = actions

    def step_wait(self):
        frames, rewards, terminated = self.worlds.step(self.actions)
        self.lengths += 1
        truncated = (self.lengths >= self.max_steps) & ~terminated
        done = terminated | truncated
        infos = [{} for _ in range(self.num_envs)]
        for world in np.flatnonzero(done):
            infos[world] = {"terminal_observation": frames[world], "TimeLimit.truncated": bool(truncated[world])}
            start = self.starts.draw(self.rng)
            self.worlds.restart([world], [start])
            frames[world], self.lengths[world] = start, 0
        return frames, rewards, done, infos

    def close(self) -> None:
        pass

    def get_attr(self, name, indices=None):
        return [getattr(self, name)] * self.num_envs

    def set_attr(self, name, value, indices=None) -> None:
        setattr(self, name, value)

    def env_method(self, name, *args, indices=None, **kwargs):
        raise NotImplementedError(f"a dream has no per-world env to call {name} on")

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def ppo(env, seed: int) -> PPO:
    """SB3 PPO with its Atari settings (rl-zoo: n_steps 128, 4 epochs, batch 256, clip 0.1, entropy 0.01)."""
    policy_kwargs = {"features_extractor_class": SmallCNN, "normalize_images": True}
    return PPO("CnnPolicy", env, n_steps=128, n_epochs=4, batch_size=256, learning_rate=2.5e-4, clip_range=0.1, ent_coef=0.01,
               vf_coef=0.5, policy_kwargs=policy_kwargs, seed=seed, verbose=0)  # fmt: skip


def score(model: PPO, agent, game: str, episodes: int, seed: int) -> list[float]:
    eval_env = agent.make_env(type(agent.config)(**{**vars(agent.config), "life_loss_ends": False}), game)
    return atari_runs.play(eval_env, lambda observation: int(model.predict(observation, deterministic=False)[0]), episodes, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", choices=["diamond", "iris"], default="diamond", help="whose world model is the simulator")
    parser.add_argument("--game", default=GAME, help="the game of the agent's run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sim-steps", type=int, default=100_000)
    parser.add_argument("--worlds", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=200, help="the longest dreamed episode")
    parser.add_argument("--episodes", type=int, default=20, help="real games each policy is scored on")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    agent = load_agent(common.DATA / args.agent / f"{atari_runs.game_name(args.game)}_seed0.safetensors")
    replay = agent.replay.state_dict()
    episodes = replay["replay.episodes"]
    first_frames = replay["replay.frames"][np.r_[0, np.flatnonzero(np.diff(episodes)) + 1]]  # each episode's first, (N, 3, S, S)
    starts = StartFrames(np.ascontiguousarray(first_frames.transpose(0, 2, 3, 1)), None, (agent.frame_size, agent.frame_size))
    real_steps = agent.total_steps
    stored = common.update_results(common.RESULTS / f"{args.agent}.json", lambda results: None)
    references, own_actor = stored["references"][args.game], stored["runs"][f"{args.game}:0"].get("final_returns")
    for seed in args.seeds:
        started = time.perf_counter()
        reward_model = getattr(agent, "reward_model", None)  # DIAMOND's; IRIS's world model has its own heads
        worlds = LearnedWorlds(load_world_model(agent.world_model.eval(), "cpu"), args.worlds, "cpu", None if reward_model is None else reward_model.eval())
        dream = DreamVecEnv(worlds, starts, args.max_steps, seed)
        in_dream = ppo(dream, seed).learn(args.sim_steps)
        dream_seconds = time.perf_counter() - started
        dream_returns = score(in_dream, agent, args.game, args.episodes, seed)
        print(f"seed {seed}: PPO in the dream ({args.sim_steps} dreamed steps, {dream_seconds:.0f} s): {np.mean(dream_returns):.1f}", flush=True)
        started = time.perf_counter()
        real = DummyVecEnv([lambda: agent.make_env(agent.config, args.game) for _ in range(8)])
        in_real = ppo(real, seed).learn(real_steps)
        real_seconds = time.perf_counter() - started
        real_returns = score(in_real, agent, args.game, args.episodes, seed)
        print(f"seed {seed}: PPO in the real game ({real_steps} real steps, {real_seconds:.0f} s): {np.mean(real_returns):.1f}", flush=True)
        low, high = atari_runs.difference_interval(dream_returns, references["random"]["returns"])
        result = {
            "sim_steps": args.sim_steps, "worlds": args.worlds, "real_steps_of_the_world_model": real_steps,
            "ppo_in_dream": {"mean": float(np.mean(dream_returns)), "returns": dream_returns, "seconds": dream_seconds, "minus_random_95": [low, high]},
            "ppo_in_real": {"mean": float(np.mean(real_returns)), "returns": real_returns, "seconds": real_seconds},
            "random": references["random"]["mean"], "best_constant": references["best_constant"],
            "agents_own_actor": None if own_actor is None else float(np.mean(own_actor)),
        }
        common.update_results(RESULTS, lambda results: results["runs"].update({f"{args.agent}:{args.game}:{seed}": result}))
        print(f"  random {references['random']['mean']:.1f}, best constant action {references['best_constant']['mean']:.1f}; "
              f"in the dream minus random, 95% interval [{low:.1f}, {high:.1f}]")  # fmt: skip


if __name__ == "__main__":
    main()
