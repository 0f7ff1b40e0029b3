"""MB-MF, the model-based part: a residual dynamics network and random-shooting MPC with on-policy
data aggregation.

[6] Nagabandi et al. 2018, "Neural Network Dynamics for Model-Based Deep Reinforcement Learning
with Model-Free Fine-Tuning", ICRA. Sec. IV:

- The dynamics model predicts the change of state (Sec. IV-A, eq. 1),

      s_{t+1}^ = s_t + f_theta(s_t, a_t),

  where f_theta is an MLP that reads (s_t, a_t) normalised to zero mean and unit std, and outputs
  the normalised delta, (s_{t+1} - s_t - mu_delta) / sigma_delta. Its loss is the mean squared error
  of that normalised delta over the data set D (eq. 2, one-step form), minimised with Adam.
- Random-shooting MPC (Sec. IV-B, eq. 3): at every real step, K action sequences of length H are
  drawn at random, rolled through the model from the current state, and scored by the task's known
  reward r(s_t, a_t, s_{t+1}) (`reverie.envs.model_tasks.MODEL_TASKS`) summed over the horizon; the first
  action of the best sequence is taken and the search starts over at the next step. The shared
  CEM (`reverie.planning.planners`) with one iteration and one elite is exactly this search; its
  samples are Gaussian around the box centre and clipped to the box, with std `sample_std` times
  the box's half-width, where the paper draws them uniformly. On HalfCheetah-v5, whose reward
  charges 0.1 |a|^2, a std of 0.3 did better than 0.5 or 1: after 5 random episodes, MPC episodes
  2-7 returned 41 to 418 with 0.3, -24 to 121 with 0.5, and -14 to 3 with 1 (episodes 2-4 only),
  one seed, K = 500, a 2 x 256 network.
- Data aggregation (Sec. IV-C, Alg. 1): D_rand holds `random_episodes` episodes of uniform random
  actions; each iteration fits the model on D_rand + D_RL, runs `rollouts_per_iteration` MPC
  episodes, and adds them to D_RL. A termination test, where the task has one, stops a sequence's
  reward (Hopper).

Imitating the MPC controller with a policy network and fine-tuning that policy model-free (Sec. V)
live in `reverie.agents.mbmf_finetune`. The defaults are close to the paper's HalfCheetah settings
(two hidden layers of 500 ReLU units, Adam at 1e-3, batches of 512, K = 1000, H = 10); the paper
also adds Gaussian noise to its training data, which is left out here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import repeat
from torch import Tensor, nn

from reverie.agents.base import TaskAgent, seeded
from reverie.agents.registry import AGENTS, load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays
from reverie.agents.replay import ReplayBuffer
from reverie.envs.model_tasks import ModelTask
from reverie.nn.mlp import mlp
from reverie.planning.planners import Planner, make_planner


@dataclass
class MBMFConfig:
    horizon: int = 10  # H, steps per random action sequence
    samples: int = 1000  # K, random action sequences per real step
    sample_std: float = 0.3  # sampling std, in half-widths of the action box
    hidden: int = 500
    layers: int = 2  # hidden ReLU layers of f_theta
    learning_rate: float = 1e-3
    batch_size: int = 512
    epochs: int = 30  # passes over D_rand + D_RL at each refit
    random_episodes: int = 10  # episodes of uniform random actions that make D_rand
    rollouts_per_iteration: int = 1  # MPC episodes between two refits
    replay_capacity: int = 1_000_000
    seed: int = 0


class ResidualDynamics(nn.Module):
    """s' = s + f(s, a): an MLP on normalised (s, a) that predicts the normalised state change."""

    def __init__(self, observation_dim: int, action_dim: int, hidden: int, layers: int):
        super().__init__()
        self.network = mlp(observation_dim + action_dim, observation_dim, hidden, layers, nn.ReLU)
        for name, size in (("input_mean", observation_dim + action_dim), ("delta_mean", observation_dim)):
            self.register_buffer(name, torch.zeros(size))
        for name, size in (("input_std", observation_dim + action_dim), ("delta_std", observation_dim)):
            self.register_buffer(name, torch.ones(size))

    def forward(self, observations: Tensor, actions: Tensor) -> Tensor:
        """(..., D) normalised predicted delta of raw `observations` (..., D) and `actions` (..., A)."""
        inputs = (torch.cat([observations, actions], dim=-1) - self.input_mean) / self.input_std
        return self.network(inputs)

    def next_observation(self, observations: Tensor, actions: Tensor) -> Tensor:
        """(..., D) s + f(s, a) in raw units (eq. 1)."""
        return observations + self(observations, actions) * self.delta_std + self.delta_mean

    def loss(self, observations: Tensor, actions: Tensor, next_observations: Tensor) -> Tensor:
        """Mean squared error of the normalised delta (eq. 2 for one step)."""
        target = (next_observations - observations - self.delta_mean) / self.delta_std
        return ((self(observations, actions) - target) ** 2).mean()

    def set_normaliser(self, observations: Tensor, actions: Tensor, next_observations: Tensor) -> None:
        """Normalise with the mean and std of these (N, .) data; a constant column keeps std 1."""
        for prefix, values in (("input", torch.cat([observations, actions], -1)), ("delta", next_observations - observations)):
            std = values.std(0, correction=0)
            getattr(self, f"{prefix}_mean").copy_(values.mean(0))
            getattr(self, f"{prefix}_std").copy_(torch.where(std < 1e-6, torch.ones_like(std), std))


@torch.no_grad()
def shooting_cost(model: ResidualDynamics, task: ModelTask, state: Tensor, action_sequences: Tensor) -> Tensor:
    """(N,) minus the predicted return of `action_sequences` (N, H, A) from `state` (D,) (eq. 3)."""
    sequences, horizon, _ = action_sequences.shape
    states = repeat(state, "d -> n d", n=sequences)
    total, alive = torch.zeros(sequences), torch.ones(sequences)
    for step in range(horizon):
        actions = action_sequences[:, step]
        next_states = model.next_observation(states, actions)
        total += alive * task.reward_fn(states, actions, next_states)
        if task.termination_fn is not None:
            alive = alive * (~task.termination_fn(next_states)).to(alive.dtype)
        states = next_states
    return -total


@AGENTS.register("mbmf")
class MBMF(TaskAgent):
    """Model-based MB-MF (Alg. 1) for a flat continuous task with a known reward."""

    registry_name = "mbmf"
    config_class = MBMFConfig
    display_name = "MB-MF"
    streams = ("plan", "fit", "act")

    def build_buffers(self) -> None:
        self.random_data = ReplayBuffer(self.observation_dim, self.action_dim, self.config.replay_capacity)  # D_rand
        self.rl_data = ReplayBuffer(self.observation_dim, self.action_dim, self.config.replay_capacity)  # D_RL

    def build(self) -> None:
        config = self.config
        self.planner: Planner = make_planner(
            "cem", self.low, self.high, self.generators["plan"], horizon=config.horizon, samples=config.samples,
            iterations=1, elites=1, alpha=0.0, init_std=config.sample_std * float((self.high - self.low).mean()) / 2,
        )  # one CEM iteration, best sample taken: random shooting
        with seeded(config.seed):
            self.model = ResidualDynamics(self.observation_dim, self.action_dim, config.hidden, config.layers)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)

    # -- acting and learning ---------------------------------------------------------------------

    def mpc_action(self, observation: np.ndarray) -> np.ndarray:
        """(A,) the first action of the best of K random sequences under the model; no warm start."""
        state = torch.as_tensor(observation, dtype=torch.float32)
        self.model.eval()
        plan = self.planner.plan(lambda action_sequences: shooting_cost(self.model, self.task, state, action_sequences))
        return plan[0].numpy()

    def act(self, observation: np.ndarray) -> np.ndarray:
        """(A,) uniform random while D_rand is being collected, then the MPC action."""
        if self.episodes < self.config.random_episodes:
            return self.random_action()
        return self.mpc_action(observation)

    def store(self, observation: np.ndarray, action: np.ndarray, reward: float, next_observation: np.ndarray, terminated: bool) -> None:
        """Into D_rand while it is being collected, then into D_RL."""
        buffer = self.random_data if self.episodes < self.config.random_episodes else self.rl_data
        buffer.add(observation, action, reward, next_observation, terminated)

    def dataset(self) -> dict[str, Tensor]:
        """D_rand + D_RL as tensors: observations, actions, next_observations."""
        parts = [buffer.arrays() for buffer in (self.random_data, self.rl_data)]
        return {name: torch.as_tensor(np.concatenate([part[name] for part in parts])) for name in ("observations", "actions", "next_observations")}

    def fit_model(self, epochs: int | None = None) -> dict:
        """Refit f_theta to D_rand + D_RL for `epochs` passes (default `config.epochs`), from its
        current weights, with the normaliser reset to these data. Returns steps, the first and
        last epoch's mean loss."""
        data = self.dataset()
        self.model.set_normaliser(data["observations"], data["actions"], data["next_observations"])
        self.model.train()
        epoch_losses = []
        for _ in range(self.config.epochs if epochs is None else epochs):
            order = torch.randperm(len(data["observations"]), generator=self.generators["fit"])
            losses = []
            for start in range(0, len(order), self.config.batch_size):
                rows = order[start : start + self.config.batch_size]
                loss = self.model.loss(data["observations"][rows], data["actions"][rows], data["next_observations"][rows])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
                self.model_steps += 1
            epoch_losses.append(float(np.mean(losses)))
        return {"first_loss": epoch_losses[0], "loss": epoch_losses[-1], "transitions": len(data["observations"])}

    def refit_due(self) -> bool:
        """After D_rand is complete, and after every `rollouts_per_iteration` MPC episodes."""
        mpc_episodes = self.episodes - self.config.random_episodes
        return mpc_episodes >= 0 and mpc_episodes % self.config.rollouts_per_iteration == 0

    def end_episode(self, steps: int) -> dict:
        """Refit when due (`refit_due`). The row adds backups (model gradient steps so far),
        model_loss (NaN when the episode ended without a refit) and mpc (whether the controller
        acted)."""
        fit = self.fit_model() if self.refit_due() else {"loss": float("nan")}
        return {"backups": self.model_steps, "model_loss": fit["loss"], "mpc": self.episodes > self.config.random_episodes}

    # -- checkpoints -----------------------------------------------------------------------------

    def buffers(self) -> dict[str, ReplayBuffer]:
        return {"random.": self.random_data, "rl.": self.rl_data}

    def extra_state(self) -> dict[str, np.ndarray]:
        return module_arrays(self.model, "model") | optimizer_arrays(self.optimizer, "adam")

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        load_module_arrays(self.model, arrays, "model")
        load_optimizer_arrays(self.optimizer, arrays, "adam")
