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

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from einops import rearrange, repeat
from torch import Tensor

from reverie.agents.base import TaskAgent, seeded
from reverie.agents.ensemble import EnsembleConfig, ProbabilisticEnsemble
from reverie.agents.registry import AGENTS, load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays
from reverie.envs.model_tasks import ModelTask
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
class PETS(TaskAgent):
    """PETS for a flat continuous task with a known reward (`reverie.envs.model_tasks.MODEL_TASKS`)."""

    registry_name = "pets"
    config_class = PETSConfig
    display_name = "PETS"
    streams = ("plan", "model", "fit", "act")

    def build(self) -> None:
        config = self.config
        self.planner: Planner = make_planner(
            "cem", self.low, self.high, self.generators["plan"], horizon=config.horizon, samples=config.samples,
            iterations=config.iterations, elites=config.elites, alpha=config.alpha,
            init_std=float((self.high - self.low).mean()) / 4, return_mean=True,
        )  # init_std: the PETS code's initial variance (high - low)^2 / 16
        self.ensemble: ProbabilisticEnsemble | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def build_task(self, task_id: str) -> None:
        """Bind the task's known reward and build the ensemble for its model features."""
        super().build_task(task_id)
        config = self.config
        ensemble_config = EnsembleConfig(members=config.members, hidden=config.hidden, layers=config.layers, batch_size=config.batch_size, holdout=config.holdout)
        with seeded(config.seed):
            self.ensemble = ProbabilisticEnsemble(self.model_features() + self.action_dim, self.observation_dim, ensemble_config)
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
            return self.random_action()
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

    def start_episode(self) -> None:
        """A trial's first search starts cold, not from the last trial's final plan."""
        self.planner.reset()

    def end_episode(self, steps: int) -> dict:
        """Refit the model after the trial; the row adds backups (model gradient steps so far) and
        model_loss."""
        fit = self.fit_model()
        return {"backups": self.model_steps, "model_loss": fit["loss"]}

    # -- checkpoints -----------------------------------------------------------------------------

    def extra_state(self) -> dict[str, np.ndarray]:
        arrays = {}
        if self.planner._warm_mean is not None:
            arrays["planner.warm_mean"] = self.planner._warm_mean.numpy()
        if self.ensemble is not None:
            arrays.update(module_arrays(self.ensemble, "ensemble"))
            arrays.update(optimizer_arrays(self.optimizer, "adam"))
        return arrays

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.planner.reset()
        if "planner.warm_mean" in arrays:
            self.planner._warm_mean = torch.from_numpy(arrays["planner.warm_mean"])
        if self.ensemble is not None:
            load_module_arrays(self.ensemble, arrays, "ensemble")
            load_optimizer_arrays(self.optimizer, arrays, "adam")
