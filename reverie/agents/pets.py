"""PETS: probabilistic ensembles with trajectory sampling.

[9] Chua et al. 2018, "Deep Reinforcement Learning in a Handful of Trials using Probabilistic
Dynamics Models", NeurIPS. The agent alternates (Alg. 1):

1. act in the environment for one trial, by model-predictive control: at every step, the CEM
   (`reverie.planning.planners`) searches action sequences a_{t:t+H} for the lowest cost, the
   first action is taken and the rest of the plan warm-starts the next step's search;
2. add the trial's transitions to the data set and fit the probabilistic ensemble
   (`reverie.agents.ensemble`, eq. 2) to predict s_{t+1} - s_t from (features(s_t), a_t),
   each member on its own bootstrap.

The cost of a sequence is estimated by trajectory sampling (Sec. 5): P particles start at the
current state, and each step every particle is moved by a next state drawn from one member's
Gaussian, s_{t+1} ~ f_b(s_t, a_t). TS-1 draws a particle's member b afresh every step; TS-inf
draws it once per sequence and keeps it over the horizon, separating the members' (epistemic)
disagreement from the Gaussians' (aleatoric) noise. As in the PETS code, each member gets exactly
P/E of a sequence's particles, so all members run at once in one batched call. The cost is

    cost(a_{t:t+H}) = -(1/P) sum_p sum_tau r(s^p_tau, a_tau, s^p_{tau+1})

with the task's known reward r (`reverie.envs.model_tasks.MODEL_TASKS`); a termination test, where the
task has one, stops a particle's reward. The first `random_episodes` trials act uniformly at random.
The defaults are the paper's cart-pole settings (plan horizon 25, 400 samples, 40 elites,
5 iterations, 20 particles, 5 members; hidden layers of 200 swish units as in mbrl-lib, where the
paper used 500).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from einops import rearrange, repeat
from torch import Tensor

from reverie.agents.ensemble import EnsembleConfig, ProbabilisticEnsemble
from reverie.envs.model_tasks import ModelTask, model_task
from reverie.agents.registry import AGENTS, generator_arrays, load_generator_arrays, load_optimizer_arrays, optimizer_arrays, TaskAgentCheckpoint
from reverie.agents.spaces import flat_box
from reverie.agents.replay import ReplayBuffer
from reverie.planning.planners import Planner, make_planner

PROPAGATIONS = ("ts_inf", "ts_1")


@dataclass
class PETSConfig:
    horizon: int = 25  # H, planning steps
    samples: int = 400  # CEM population per iteration
    elites: int = 40
    iterations: int = 5  # CEM iterations per real step
    alpha: float = 0.1  # CEM smoothing: share of the previous mean and std kept
    particles: int = 20  # P, a multiple of `members`
    propagation: str = "ts_inf"  # "ts_inf" or "ts_1"
    members: int = 5  # E, ensemble size
    hidden: int = 200
    layers: int = 4  # hidden layers
    learning_rate: float = 1e-3
    weight_decay: float = 5e-5
    batch_size: int = 32
    epochs: int = 5  # ensemble epochs over all data after each trial
    holdout: float = 0.0  # share kept out for early stopping (0: always `epochs`)
    random_episodes: int = 1  # first trials with uniform random actions
    replay_capacity: int = 100_000
    seed: int = 0

    def __post_init__(self):
        if self.propagation not in PROPAGATIONS:
            raise ValueError(f"PETS propagation {self.propagation!r} is not one of {PROPAGATIONS}")
        if self.particles % self.members:
            raise ValueError(f"PETS particles={self.particles} must be a multiple of members={self.members}")


def particle_members(sequences: int, particles: int, members: int, generator: torch.Generator) -> Tensor:
    """(N, P) member of each particle: each row a random arrangement holding every member P/E times."""
    layout = torch.arange(particles) // (particles // members)  # (P,) 0..0 1..1 ...
    order = torch.argsort(torch.rand(sequences, particles, generator=generator), dim=1)
    return layout[order]


def propagate(ensemble: ProbabilisticEnsemble, task: ModelTask, states: Tensor, actions: Tensor, members: Tensor, generator: torch.Generator) -> Tensor:
    """Next states (N, P, D) of particles `states` (N, P, D) under `actions` (N, P, A), particle p of
    sequence n moved by a sample of member `members[n, p]`, all members in one batched call."""
    order = members.argsort(dim=1, stable=True)  # (N, P) particles grouped by member, P/E each

    def grouped(values: Tensor) -> Tensor:
        return values.gather(1, repeat(order, "n p -> n p d", d=values.shape[-1]))

    grouped_states = grouped(states)
    inputs = torch.cat([task.model_input(grouped_states), grouped(actions)], dim=-1)
    deltas = ensemble.sample(rearrange(inputs, "n (e k) f -> e (n k) f", e=ensemble.members), generator)
    next_grouped = grouped_states + rearrange(deltas, "e (n k) d -> n (e k) d", n=states.shape[0])
    return torch.empty_like(states).scatter_(1, repeat(order, "n p -> n p d", d=states.shape[-1]), next_grouped)


def trajectory_cost(
    ensemble: ProbabilisticEnsemble, task: ModelTask, state: Tensor, action_sequences: Tensor,
    particles: int, propagation: str, generator: torch.Generator,
) -> Tensor:
    """(N,) minus the particle-mean predicted return of `action_sequences` (N, H, A) from `state` (D,)."""
    sequences, horizon, _ = action_sequences.shape
    states = repeat(state, "d -> n p d", n=sequences, p=particles)
    members = particle_members(sequences, particles, ensemble.members, generator)
    total = torch.zeros(sequences, particles)
    alive = torch.ones(sequences, particles)
    for step in range(horizon):
        if propagation == "ts_1" and step > 0:
            members = particle_members(sequences, particles, ensemble.members, generator)
        actions = repeat(action_sequences[:, step], "n a -> n p a", p=particles)
        next_states = propagate(ensemble, task, states, actions, members, generator)
        total += alive * task.reward_fn(states, actions, next_states)
        if task.termination_fn is not None:
            alive = alive * (~task.termination_fn(next_states)).to(alive.dtype)
        states = next_states
    return -total.mean(1)


@AGENTS.register("pets")
class PETS(TaskAgentCheckpoint):
    """PETS for a flat continuous task with a known reward (`reverie.envs.model_tasks.MODEL_TASKS`)."""

    registry_name = "pets"
    config_class = PETSConfig

    def __init__(self, config: PETSConfig, observation_space: gym.Space, action_space: gym.Space, task: str | None = None):
        self.config = config
        self.observation_dim = flat_box(observation_space, "PETS", "observation").shape[0]
        action_space = flat_box(action_space, "PETS", "action")
        self.low = torch.as_tensor(action_space.low, dtype=torch.float32)  # (A,)
        self.high = torch.as_tensor(action_space.high, dtype=torch.float32)
        self.replay = ReplayBuffer(self.observation_dim, len(self.low), config.replay_capacity)
        self.generators = {name: torch.Generator().manual_seed(config.seed * 1000 + offset) for offset, name in enumerate(("plan", "model", "fit", "act"))}
        self.planner: Planner = make_planner(
            "cem", self.low, self.high, self.generators["plan"], horizon=config.horizon, samples=config.samples,
            iterations=config.iterations, elites=config.elites, alpha=config.alpha,
            init_std=float((self.high - self.low).mean()) / 4, return_mean=True,
        )  # init_std: the PETS code's initial variance (high - low)^2 / 16
        self.task_id: str | None = None
        self.ensemble: ProbabilisticEnsemble | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.episodes = 0
        self.total_steps = 0
        self.model_steps = 0  # ensemble gradient steps
        if task is not None:
            self.set_task(task)

    def set_task(self, task_id: str) -> None:
        """Bind the task's known reward and build the ensemble for its model features."""
        if self.task_id == task_id:
            return
        if self.task_id is not None:
            raise ValueError(f"this PETS agent plans for {self.task_id!r}, not {task_id!r}")
        self.task_id, self.task = task_id, model_task(task_id)
        features = self.task.model_input(torch.zeros(self.observation_dim)).shape[-1]
        config = self.config
        ensemble_config = EnsembleConfig(members=config.members, hidden=config.hidden, layers=config.layers, batch_size=config.batch_size, holdout=config.holdout)
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.ensemble = ProbabilisticEnsemble(features + len(self.low), self.observation_dim, ensemble_config)
        self.optimizer = torch.optim.Adam(self.ensemble.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    # -- acting and learning ---------------------------------------------------------------------

    def plan_cost(self, observation: np.ndarray) -> Callable[[Tensor], Tensor]:
        state = torch.as_tensor(observation, dtype=torch.float32)
        config = self.config
        return lambda action_sequences: trajectory_cost(
            self.ensemble, self.task, state, action_sequences, config.particles, config.propagation, self.generators["model"]
        )

    def act(self, observation: np.ndarray) -> np.ndarray:
        """(A,) a uniform random action during the first trials, then the CEM plan's first action."""
        if self.episodes < self.config.random_episodes:
            return (self.low + (self.high - self.low) * torch.rand(len(self.low), generator=self.generators["act"])).numpy()
        self.ensemble.eval()
        return self.planner.act(self.plan_cost(observation)).numpy()

    def fit_model(self) -> dict:
        """Refit the ensemble to every stored transition: (features(s), a) -> s' - s."""
        data = {name: torch.as_tensor(array) for name, array in self.replay.arrays().items()}
        inputs = torch.cat([self.task.model_input(data["observations"]), data["actions"]], dim=-1)
        targets = data["next_observations"] - data["observations"]
        self.ensemble.train()
        result = self.ensemble.fit(inputs, targets, self.config.epochs, self.generators["fit"], self.optimizer)
        self.model_steps += result["steps"]
        return result

    def train(
        self, env: gym.Env, episodes: int | None = None, steps: int | None = None, on_episode: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Run trials until `episodes` trials or `steps` real steps in all (counting any before a
        resume), refitting the model after each trial. Trial i is reset with seed `config.seed + i`.
        Returns one row per trial: episode, return, steps, total_steps, backups (model gradient
        steps), model_loss, seconds; `on_episode` gets each as it ends."""
        if episodes is None and steps is None:
            raise ValueError("train needs a budget: episodes or steps")
        self.set_task(env.spec.id)
        rows = []
        while episodes is None or self.episodes < episodes:
            started = time.perf_counter()
            observation, _ = env.reset(seed=self.config.seed + self.episodes)
            self.planner.reset()
            episode_return, episode_steps, done = 0.0, 0, False
            while not done:
                if steps is not None and self.total_steps >= steps:
                    return rows
                action = self.act(observation)
                next_observation, reward, terminated, truncated, _ = env.step(action)
                self.replay.add(observation, action, float(reward), next_observation, bool(terminated))
                self.total_steps += 1
                episode_return += float(reward)
                episode_steps += 1
                observation, done = next_observation, terminated or truncated
            self.episodes += 1
            fit = self.fit_model()
            row = {
                "episode": self.episodes, "return": episode_return, "steps": episode_steps, "total_steps": self.total_steps,
                "backups": self.model_steps, "model_loss": fit["loss"], "seconds": time.perf_counter() - started,
            }
            rows.append(row)
            if on_episode is not None:
                on_episode(row)
        return rows

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        arrays = generator_arrays(self.generators)
        arrays["counters"] = np.array([self.episodes, self.total_steps, self.model_steps], np.int64)
        arrays.update(self.replay.state_dict())
        if self.planner._warm_mean is not None:
            arrays["planner.warm_mean"] = self.planner._warm_mean.numpy()
        if self.ensemble is not None:
            arrays.update({f"ensemble.{name}": value.detach().numpy() for name, value in self.ensemble.state_dict().items()})
            arrays.update(optimizer_arrays(self.optimizer, "adam"))
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        load_generator_arrays(self.generators, arrays)
        self.episodes, self.total_steps, self.model_steps = arrays["counters"].tolist()
        self.replay.load_state_dict(arrays)
        self.planner.reset()
        if "planner.warm_mean" in arrays:
            self.planner._warm_mean = torch.from_numpy(arrays["planner.warm_mean"])
        if self.ensemble is not None:
            prefix = "ensemble."
            self.ensemble.load_state_dict({name[len(prefix):]: torch.from_numpy(value) for name, value in arrays.items() if name.startswith(prefix)})
            load_optimizer_arrays(self.optimizer, arrays, "adam")
