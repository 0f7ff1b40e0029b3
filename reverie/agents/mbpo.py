"""MBPO: model-based policy optimisation with short model rollouts branched from real states.

[8] Janner et al. 2019, "When to Trust Your Model: Model-Based Policy Optimization", NeurIPS.
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

from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from reverie.agents.base import TaskAgent, seeded
from reverie.agents.ensemble import EnsembleConfig, ProbabilisticEnsemble
from reverie.agents.registry import AGENTS, load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays
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
class MBPO(TaskAgent):
    """MBPO for a flat continuous task with a known reward (`reverie.envs.model_tasks.MODEL_TASKS`)."""

    registry_name = "mbpo"
    config_class = MBPOConfig
    display_name = "MBPO"
    streams = ("sac", "model", "fit", "rollout", "act")
    own_streams = ("sac",)  # the SAC learner saves its own stream

    def build_buffers(self) -> None:
        super().build_buffers()  # D_env
        config = self.config
        model_capacity = config.rollouts_per_step * config.rollout_length * config.model_retain_steps
        self.model_replay = ReplayBuffer(self.observation_dim, self.action_dim, model_capacity)  # D_model

    def build(self) -> None:
        config = self.config
        self.rng = np.random.default_rng(config.seed)  # which stored transitions a batch or rollout takes
        sac_config = SACConfig(hidden=config.sac_hidden, layers=config.sac_layers, learning_rate=config.learning_rate, gamma=config.gamma, tau=config.tau, target_entropy=config.target_entropy)
        self.sac = SAC(sac_config, self.observation_dim, self.low, self.high, self.generators["sac"])
        self.ensemble: ProbabilisticEnsemble | None = None
        self.model_optimizer: torch.optim.Optimizer | None = None
        self.elites = list(range(config.elites))
        self.model_loss = float("nan")
        self.evaluations: list[tuple[int, float]] = []  # (env steps, mean deterministic return)
        self.eval_env: gym.Env | None = None

    def build_task(self, task_id: str) -> None:
        """Bind the task's known reward and termination, and build the ensemble for its features."""
        super().build_task(task_id)
        config = self.config
        ensemble_config = EnsembleConfig(
            members=config.members, hidden=config.hidden, layers=config.layers, batch_size=config.model_batch_size,
            holdout=config.model_holdout, patience=config.model_patience,
        )
        with seeded(config.seed):
            self.ensemble = ProbabilisticEnsemble(self.model_features() + self.action_dim, self.observation_dim, ensemble_config)
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
            return self.random_action()
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

    def train(
        self, env: gym.Env, episodes: int | None = None, steps: int | None = None, on_episode: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """`TaskAgent.train`, with a second instance of the env for the evaluations."""
        self.eval_env = gym.make(env.spec.id) if self.config.eval_every else None
        return super().train(env, episodes, steps, on_episode)

    def after_step(self) -> None:
        """The rest of one step of Alg. 2: retrain and branch every `model_every` steps, G updates."""
        config = self.config
        if self.total_steps >= config.random_steps and self.total_steps % config.model_every == 0:
            self.fit_model()
            self.branch_rollouts()
        if len(self.model_replay):
            for _ in range(config.updates_per_step):
                self.sac.update(self.policy_batch())
        if self.eval_env is not None and self.total_steps % config.eval_every == 0:
            self.evaluations.append((self.total_steps, self.evaluate(self.eval_env)))

    def end_episode(self, steps: int) -> dict:
        """The row adds backups (SAC updates so far), model_loss (of the latest retrain) and
        eval_return (the latest evaluation)."""
        latest = self.evaluations[-1][1] if self.evaluations else float("nan")
        return {"backups": self.sac.updates, "model_loss": self.model_loss, "eval_return": latest}

    # -- checkpoints -----------------------------------------------------------------------------

    def buffers(self) -> dict[str, ReplayBuffer]:
        return {"": self.replay, "model_": self.model_replay}

    def extra_state(self) -> dict[str, np.ndarray]:
        arrays = {
            "model_loss": np.array([self.model_loss], np.float64),
            "elites": np.array(self.elites, np.int64),
            "evaluations": np.array(self.evaluations, np.float64).reshape(-1, 2),
            **self.sac.state_dict(),
        }
        if self.ensemble is not None:
            arrays.update(module_arrays(self.ensemble, "ensemble"))
            arrays.update(optimizer_arrays(self.model_optimizer, "model_adam"))
        return arrays

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.model_loss = float(arrays["model_loss"][0])
        self.elites = arrays["elites"].tolist()
        self.evaluations = [(int(steps), float(value)) for steps, value in arrays["evaluations"]]
        self.sac.load_state_dict(arrays)
        if self.ensemble is not None:
            load_module_arrays(self.ensemble, arrays, "ensemble")
            load_optimizer_arrays(self.model_optimizer, arrays, "model_adam")

    def checkpoint_fields(self) -> dict:
        return super().checkpoint_fields() | {"rng": self.rng.bit_generator.state}

    def restore_fields(self, fields: dict) -> None:
        self.rng.bit_generator.state = fields["rng"]
