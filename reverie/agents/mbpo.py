"""MBPO: model-based policy optimisation with short model rollouts branched from real states.

[3] Janner et al. 2019, "When to Trust Your Model: Model-Based Policy Optimization", NeurIPS.
The paper's bound (Thm. 4.3) says a model's compounding error grows with the rollout length k, so
MBPO keeps k small and starts every rollout from a state the real policy visited. Alg. 2:

    for each epoch:
        train the model p_theta on D_env by maximum likelihood
        for each environment step:
            act in the environment with pi_phi; add the transition to D_env
            for M model rollouts: sample s_t uniformly from D_env, roll out k steps with pi_phi
                under p_theta, add the transitions to D_model
            for G gradient updates: update pi_phi (SAC) on a batch from D_model

As in the paper's code, the model is retrained and the M rollouts per step are made together every
`model_every` (250) steps, D_model keeps the rollouts of the last `model_retain_steps` steps, and
each SAC batch takes a share `real_ratio` of real transitions and the rest from D_model.

- The model is the shared bootstrapped ensemble of probabilistic networks
  (`reverie.agents.ensemble`, [9] Chua et al. 2018, eq. 2) predicting s' - s from (s, a). As in the paper's
  code, each retrain holds out a share `model_holdout` (0.2) of D_env and trains until the held-out
  error has not improved by 1% for `model_patience` (5) epochs, each member keeping its best
  weights; the `elites` members of lowest held-out error are used, each rollout step drawing one
  elite per row (the paper's 7 members, 5 elites). A fixed few epochs per retrain leave the model
  far from fitted while D_env is small, and SAC then learns from its errors: on InvertedPendulum
  (benchmark settings, seed 0) 5 epochs per retrain gave a return of 139 after 5k steps, 40 gave 1000 at 4.2k.
- Rewards and terminations of model transitions come from the task's known functions
  (`reverie.envs.model_tasks.MODEL_TASKS`), where the paper's model also predicts the reward.
- The policy learner is `reverie.agents.sac` (twin Q, Polyak targets, learned temperature).

Defaults are the paper's InvertedPendulum settings (k = 1, M = 400, G = 20, real ratio 0.05,
7 members of 4 x 200 units, SAC of 2 x 256 units), except the entropy target, which stays SAC's -A
(the paper's pendulum run used -0.05), and `random_steps`, which waits only for the first model.
The benchmark (`benchmarks/agents/mbpo.py`) shrinks the networks, M and G to fit a shared CPU core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from reverie.agents.ensemble import EnsembleConfig, ProbabilisticEnsemble
from reverie.envs.model_tasks import model_task
from reverie.agents.registry import AGENTS, generator_arrays, load_generator_arrays, load_optimizer_arrays, optimizer_arrays, TaskAgentCheckpoint
from reverie.agents.spaces import flat_box
from reverie.agents.replay import FIELDS, ReplayBuffer
from reverie.agents.sac import SAC, SACConfig


@dataclass
class MBPOConfig:
    members: int = 7  # ensemble size
    elites: int = 5  # members with the lowest holdout error, the ones rollouts use
    hidden: int = 200  # model units per hidden layer
    layers: int = 4  # model hidden layers
    model_learning_rate: float = 1e-3
    model_weight_decay: float = 5e-5
    model_batch_size: int = 256  # per member and step
    model_epochs: int = 100  # most epochs over D_env at a retrain (the weights carry over)
    model_patience: int = 5  # a retrain stops after this many epochs without a 1% held-out gain
    model_holdout: float = 0.2  # share of D_env held out to stop training and pick the elites
    model_every: int = 250  # env steps between retrains (and rollout rounds)
    rollouts_per_step: int = 400  # M; each round branches M * model_every rollouts
    rollout_length: int = 1  # k
    model_retain_steps: int = 1000  # D_model holds the rollouts of this many env steps
    updates_per_step: int = 20  # G, SAC gradient updates per env step
    real_ratio: float = 0.05  # share of real transitions in a SAC batch
    batch_size: int = 256  # SAC batch
    random_steps: int = 250  # uniform random actions before the first model
    sac_hidden: int = 256
    sac_layers: int = 2
    learning_rate: float = 3e-4  # SAC actor, critics and temperature
    gamma: float = 0.99
    tau: float = 0.005
    target_entropy: float | None = None  # None: -A
    eval_every: int = 0  # env steps between deterministic evaluations (0: none)
    eval_episodes: int = 1
    replay_capacity: int = 1_000_000
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.elites <= self.members:
            raise ValueError(f"MBPO elites={self.elites} must be between 1 and members={self.members}")
        if not 0 < self.model_holdout < 1:
            raise ValueError(f"MBPO model_holdout={self.model_holdout} must lie in (0, 1): the held-out share ranks the members")
        if not 0 <= self.real_ratio <= 1:
            raise ValueError(f"MBPO real_ratio={self.real_ratio} must lie in [0, 1]")


def sample_members(ensemble: ProbabilisticEnsemble, inputs: Tensor, members: Tensor, generator: torch.Generator) -> Tensor:
    """(B, D) targets for `inputs` (B, F), row i drawn from member `members[i]`'s Gaussian; each
    member runs only on its own rows (padded to the largest group) in one batched call."""
    order = members.argsort(stable=True)
    grouped_members = members[order]
    counts = torch.bincount(members, minlength=ensemble.members)  # (E,)
    slot = torch.arange(len(members)) - (counts.cumsum(0) - counts)[grouped_members]  # row within its member's group
    grid = inputs.new_zeros(ensemble.members, int(counts.max()), inputs.shape[-1])  # (E, width, F)
    grid[grouped_members, slot] = inputs[order]
    drawn = ensemble.sample(grid, generator)  # (E, width, D)
    targets = torch.empty(len(members), drawn.shape[-1], dtype=drawn.dtype)
    targets[order] = drawn[grouped_members, slot]
    return targets


@AGENTS.register("mbpo")
class MBPO(TaskAgentCheckpoint):
    """MBPO for a flat continuous task with a known reward (`reverie.envs.model_tasks.MODEL_TASKS`)."""

    registry_name = "mbpo"
    config_class = MBPOConfig

    def __init__(self, config: MBPOConfig, observation_space: gym.Space, action_space: gym.Space, task: str | None = None):
        self.config = config
        self.observation_dim = flat_box(observation_space, "MBPO", "observation").shape[0]
        action_space = flat_box(action_space, "MBPO", "action")
        self.low, self.high = action_space.low.astype(np.float32), action_space.high.astype(np.float32)
        self.generators = {name: torch.Generator().manual_seed(config.seed * 1000 + offset) for offset, name in enumerate(("sac", "model", "fit", "rollout", "act"))}
        self.rng = np.random.default_rng(config.seed)  # which stored transitions a batch or rollout takes
        sac_config = SACConfig(hidden=config.sac_hidden, layers=config.sac_layers, learning_rate=config.learning_rate, gamma=config.gamma, tau=config.tau, target_entropy=config.target_entropy)
        self.sac = SAC(sac_config, self.observation_dim, self.low, self.high, self.generators["sac"])
        self.replay = ReplayBuffer(self.observation_dim, len(self.low), config.replay_capacity)  # D_env
        model_capacity = config.rollouts_per_step * config.rollout_length * config.model_retain_steps
        self.model_replay = ReplayBuffer(self.observation_dim, len(self.low), model_capacity)  # D_model
        self.task_id: str | None = None
        self.ensemble: ProbabilisticEnsemble | None = None
        self.model_optimizer: torch.optim.Optimizer | None = None
        self.elites = list(range(config.elites))
        self.episodes = self.total_steps = self.model_steps = 0
        self.model_loss = float("nan")
        self.evaluations: list[tuple[int, float]] = []  # (env steps, mean deterministic return)
        if task is not None:
            self.set_task(task)

    def set_task(self, task_id: str) -> None:
        """Bind the task's known reward and termination, and build the ensemble for its features."""
        if self.task_id == task_id:
            return
        if self.task_id is not None:
            raise ValueError(f"this MBPO agent learns {self.task_id!r}, not {task_id!r}")
        self.task_id, self.task = task_id, model_task(task_id)
        config = self.config
        features = self.task.model_input(torch.zeros(self.observation_dim)).shape[-1]
        ensemble_config = EnsembleConfig(
            members=config.members, hidden=config.hidden, layers=config.layers, batch_size=config.model_batch_size,
            holdout=config.model_holdout, patience=config.model_patience,
        )
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.ensemble = ProbabilisticEnsemble(features + len(self.low), self.observation_dim, ensemble_config)
        self.model_optimizer = torch.optim.Adam(self.ensemble.parameters(), lr=config.model_learning_rate, weight_decay=config.model_weight_decay)

    # -- the model -------------------------------------------------------------------------------

    def model_inputs(self, observations: Tensor, actions: Tensor) -> Tensor:
        return torch.cat([self.task.model_input(observations), actions], dim=-1)

    def fit_model(self) -> dict:
        """Fit the ensemble to D_env, (features(s), a) -> s' - s, until its error on a held-out share
        stops falling (each member keeps its best weights), and make the members with the lowest
        held-out error the elites."""
        data = {name: torch.as_tensor(array) for name, array in self.replay.arrays().items()}
        inputs = self.model_inputs(data["observations"], data["actions"])
        targets = data["next_observations"] - data["observations"]
        self.ensemble.train()
        result = self.ensemble.fit(inputs, targets, self.config.model_epochs, self.generators["fit"], self.model_optimizer)
        holdout_mse = result["member_holdout_mse"]  # (E,)
        self.elites = sorted(holdout_mse.argsort()[: self.config.elites].tolist())
        self.model_steps += result["steps"]
        self.model_loss = result["loss"]
        return {"loss": result["loss"], "holdout_mse": holdout_mse[self.elites].mean().item(), "steps": result["steps"]}

    @torch.no_grad()
    def branch_rollouts(self) -> int:
        """M * model_every rollouts of k steps with the current policy, each from a state drawn
        uniformly from D_env, one random elite per row and step; returns transitions added."""
        config = self.config
        states = torch.as_tensor(self.replay.sample(config.rollouts_per_step * config.model_every, self.rng)["observations"])
        elites = torch.tensor(self.elites)
        self.ensemble.eval()
        added = 0
        for _ in range(config.rollout_length):
            actions = self.sac.act(states)
            members = elites[torch.randint(len(elites), (len(states),), generator=self.generators["rollout"])]
            next_states = states + sample_members(self.ensemble, self.model_inputs(states, actions), members, self.generators["model"])
            rewards = self.task.reward_fn(states, actions, next_states)
            terminated = self.task.termination_fn(next_states) if self.task.termination_fn is not None else torch.zeros(len(states), dtype=torch.bool)
            self.add_model_transitions(states, actions, rewards, next_states, terminated)
            added += len(states)
            states = next_states[~terminated]
            if not len(states):
                break
        return added

    def add_model_transitions(self, states: Tensor, actions: Tensor, rewards: Tensor, next_states: Tensor, terminated: Tensor) -> None:
        """Write a batch of model transitions into D_model's ring, oldest first out."""
        buffer = self.model_replay
        rows = (buffer.added + np.arange(len(states))) % buffer.capacity
        for name, values in zip(FIELDS, (states, actions, rewards, next_states, terminated)):
            getattr(buffer, name)[rows] = values.numpy()
        buffer.added += len(states)

    # -- acting and learning ---------------------------------------------------------------------

    def act(self, observation: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """(A,) a uniform random action before the first model, then a sample of pi (or its mode)."""
        if self.total_steps < self.config.random_steps and not deterministic:
            return self.low + (self.high - self.low) * torch.rand(len(self.low), generator=self.generators["act"]).numpy()
        return self.sac.act(torch.as_tensor(observation, dtype=torch.float32), deterministic).numpy()

    def policy_batch(self) -> dict[str, Tensor]:
        """A SAC batch: `real_ratio` of it from D_env and the rest from D_model (not empty)."""
        real = round(self.config.real_ratio * self.config.batch_size)
        parts = [self.replay.sample(real, self.rng), self.model_replay.sample(self.config.batch_size - real, self.rng)]
        return {name: torch.as_tensor(np.concatenate([part[name] for part in parts])) for name in FIELDS}

    def evaluate(self, env: gym.Env) -> float:
        """Mean return of `eval_episodes` episodes acting with the policy's mode."""
        returns = []
        for episode in range(self.config.eval_episodes):
            observation, _ = env.reset(seed=10_000 + 100 * self.config.seed + episode)
            total, done = 0.0, False
            while not done:
                observation, reward, terminated, truncated, _ = env.step(self.act(observation, deterministic=True))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    def env_step(self, env: gym.Env, eval_env: gym.Env | None, observation: np.ndarray) -> tuple:
        """One step of Alg. 2: act, store, retrain and branch every `model_every` steps, G updates."""
        config = self.config
        action = self.act(observation)
        next_observation, reward, terminated, truncated, _ = env.step(action)
        self.replay.add(observation, action, float(reward), next_observation, bool(terminated))
        self.total_steps += 1
        if self.total_steps >= config.random_steps and self.total_steps % config.model_every == 0:
            self.fit_model()
            self.branch_rollouts()
        if len(self.model_replay):
            for _ in range(config.updates_per_step):
                self.sac.update(self.policy_batch())
        if eval_env is not None and self.total_steps % config.eval_every == 0:
            self.evaluations.append((self.total_steps, self.evaluate(eval_env)))
        return next_observation, float(reward), terminated or truncated

    def train(
        self, env: gym.Env, episodes: int | None = None, steps: int | None = None, on_episode: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Run episodes until `episodes` episodes or `steps` env steps in all (counting any before a
        resume). Episode i is reset with seed `config.seed + i`. Returns one row per episode:
        episode, return, steps, total_steps, backups (SAC updates), model_loss, eval_return (the
        latest evaluation), seconds; `on_episode` gets each as it ends."""
        if episodes is None and steps is None:
            raise ValueError("train needs a budget: episodes or steps")
        self.set_task(env.spec.id)
        eval_env = gym.make(env.spec.id) if self.config.eval_every else None
        rows = []
        while episodes is None or self.episodes < episodes:
            started = time.perf_counter()
            observation, _ = env.reset(seed=self.config.seed + self.episodes)
            episode_return, episode_steps, done = 0.0, 0, False
            while not done:
                if steps is not None and self.total_steps >= steps:
                    return rows
                observation, reward, done = self.env_step(env, eval_env, observation)
                episode_return += reward
                episode_steps += 1
            self.episodes += 1
            row = {
                "episode": self.episodes, "return": episode_return, "steps": episode_steps, "total_steps": self.total_steps,
                "backups": self.sac.updates, "model_loss": self.model_loss,
                "eval_return": self.evaluations[-1][1] if self.evaluations else float("nan"), "seconds": time.perf_counter() - started,
            }
            rows.append(row)
            if on_episode is not None:
                on_episode(row)
        return rows

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        arrays = generator_arrays(self.generators, skip=("sac",))  # the SAC learner saves its own stream
        arrays["counters"] = np.array([self.episodes, self.total_steps, self.model_steps], np.int64)
        arrays["model_loss"] = np.array([self.model_loss], np.float64)
        arrays["elites"] = np.array(self.elites, np.int64)
        arrays["evaluations"] = np.array(self.evaluations, np.float64).reshape(-1, 2)
        arrays.update(self.replay.state_dict())
        arrays.update({f"model_{name}": value for name, value in self.model_replay.state_dict().items()})
        arrays.update(self.sac.state_dict())
        if self.ensemble is not None:
            arrays.update({f"ensemble.{name}": value.detach().numpy() for name, value in self.ensemble.state_dict().items()})
            arrays.update(optimizer_arrays(self.model_optimizer, "model_adam"))
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        load_generator_arrays(self.generators, arrays, skip=("sac",))
        self.episodes, self.total_steps, self.model_steps = arrays["counters"].tolist()
        self.model_loss = float(arrays["model_loss"][0])
        self.elites = arrays["elites"].tolist()
        self.evaluations = [(int(steps), float(value)) for steps, value in arrays["evaluations"]]
        self.replay.load_state_dict(arrays)
        self.model_replay.load_state_dict({name[len("model_"):]: value for name, value in arrays.items() if name.startswith("model_replay.")})
        self.sac.load_state_dict(arrays)
        if self.ensemble is not None:
            self.ensemble.load_state_dict({name[len("ensemble."):]: torch.from_numpy(value) for name, value in arrays.items() if name.startswith("ensemble.")})
            load_optimizer_arrays(self.model_optimizer, arrays, "model_adam")

    def checkpoint_fields(self) -> dict:
        return super().checkpoint_fields() | {"rng": self.rng.bit_generator.state}

    def restore_fields(self, fields: dict) -> None:
        self.rng.bit_generator.state = fields["rng"]
