"""SVG: stochastic value gradients, SVG(1) with experience replay and SVG(inf).

[4] Heess et al. 2015, "Learning Continuous Control Policies by Stochastic Value Gradients",
NeurIPS. Both the dynamics model and the policy are reparameterised: their randomness is an input
noise drawn from a fixed distribution, so a value can be differentiated through them:

    s' = f(s, a, xi)  = s + mu(s, a) + sigma(s, a) * xi,   xi ~ N(0, I)     (learned by likelihood)
    a  = pi(s, eta)   = centre + half_range * tanh(m(s) + std(s) * eta),   eta ~ N(0, I)

The model is the shared Gaussian network of `reverie.agents.ensemble` (one member by default,
trained on replay by its NLL, eq. 2 of PETS); the reward r(s, a) is the task's known function
(`reverie.envs.model_tasks.MODEL_TASKS`). Given a real transition (s, a, s'), the noises that explain it
are inferred: eta = (atanh((a - centre) / half_range) - m(s)) / std(s) and
xi = (s' - s - mu(s, a)) / sigma(s, a). The value gradients are then taken along the real data:
every state and action keeps its observed value, and only the derivatives come from the model and
the policy (`at_data`), which is the paper's stochastic value-gradient recursion

    v_s = r_s + r_a pi_s + gamma v'_s (f_s + f_a pi_s)
    v_theta = r_a pi_theta + gamma (v'_s f_a pi_theta + v'_theta)

computed by backpropagation.

- `variant="svg_inf"` (Alg. 1): on-policy. After each episode the model is trained on replay, the
  noises of the whole real trajectory are inferred and the policy ascends the gradient of the
  discounted return sum_t gamma^t r(s_t, a_t), unrolled through the model from s_0 (the recursion
  above with no value function). `updates_per_episode` > 1 repeats the step on the same trajectory
  (1 is the paper's). `backprop_window` W departs from Alg. 1 to cut the gradient's variance: it
  cuts the trajectory into blocks of W steps and lets no gradient cross a block's start (truncated
  backpropagation: a reward's gradient flows back at most W - 1 steps, so the product of model
  Jacobians through an unstable stretch, the pendulum near upright, stays bounded).
- `variant="svg_1"` (Alg. 2, SVG(1)-ER): off-policy. Each real step stores (s, a, r, s') and the
  behaviour log-density of a; then the model, a value function V(s) and the policy each take a
  gradient step on a replayed minibatch. V is fitted by importance-weighted TD(0) toward
  r + gamma V_target(s') (fitted policy evaluation, with a Polyak-averaged target); the policy
  ascends w * [r(s, pi(s, eta)) + gamma V(f(s, pi(s, eta), xi))] with the weight
  w = min(pi_theta(a|s) / pi_k(a|s), max_weight), truncated to bound the variance of old data.

The log-densities are those of the pre-squash Gaussian; tanh's Jacobian is the same under both
policies and cancels in w. An optional `entropy_weight` adds the pre-squash entropy to the policy's
objective (0 by default, as in the paper), and `min_log_std` floors the pre-squash log std: left
free, SVG(1)'s policy narrows until almost every replayed action is improbable under it (on the
pendulum, log std -4 after 15 episodes, and 2% of a minibatch with w > 0.1), which starves the
weighted value and policy steps of data. `mean_penalty` subtracts c |m(s)|^2 from the objective:
where the pre-squash mean has run far out (|m| about 15 on SVG(inf)'s pendulum), tanh' is about
1e-13, the action sits at its bound, the value gradient through it is nil, and only the penalty
brings the mean back to where the squash has a slope.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from reverie.agents.base import TaskAgent, seeded
from reverie.agents.ensemble import EnsembleConfig, ProbabilisticEnsemble
from reverie.agents.registry import AGENTS, load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays
from reverie.envs.model_tasks import ModelTask
from reverie.nn.mlp import mlp

VARIANTS = ("svg_1", "svg_inf")
MAX_LOG_STD = 1.0  # of the policy's pre-squash Gaussian


@dataclass
class SVGConfig:
    variant: str = "svg_1"  # "svg_1" (SVG(1)-ER, Alg. 2) or "svg_inf" (Alg. 1)
    discount: float = 0.98  # gamma
    hidden: int = 128  # policy and value networks
    layers: int = 2
    model_hidden: int = 128
    model_layers: int = 2
    members: int = 1  # model ensemble size; gradients average over members
    policy_lr: float = 3e-4
    value_lr: float = 1e-3
    model_lr: float = 1e-3
    batch_size: int = 64
    model_updates: int = 1  # model gradient steps per real step
    learning_starts: int = 1000  # real steps before any update (their data set the model's normaliser)
    max_weight: float = 5.0  # importance weights are truncated here (SVG(1))
    target_tau: float = 0.005  # Polyak step of V's target network (SVG(1))
    updates_per_episode: int = 1  # policy steps on each trajectory (SVG(inf))
    backprop_window: int = 0  # SVG(inf): length of the blocks the gradient flows back within (0: all)
    grad_clip: float = 10.0  # max gradient norm of a policy step
    entropy_weight: float = 0.0
    min_log_std: float = -5.0  # floor of the policy's pre-squash log std
    mean_penalty: float = 0.0  # weight of the squared pre-squash mean, subtracted from the objective
    replay_capacity: int = 100_000
    seed: int = 0

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"SVG variant {self.variant!r} is not one of {VARIANTS}")


def at_data(value: Tensor, data: Tensor) -> Tensor:
    """`data` in the forward pass, the derivatives of `value` in the backward one: gradients are
    taken along the real trajectory, where the model and policy reproduce it by inferred noise."""
    return data + (value - value.detach())


class SquashedGaussianPolicy(nn.Module):
    """a = centre + half_range * tanh(m(s) + std(s) * eta), eta ~ N(0, I), for actions in [low, high]."""

    def __init__(self, observation_dim: int, low: Tensor, high: Tensor, hidden: int, layers: int, min_log_std: float):
        super().__init__()
        self.net = mlp(observation_dim, 2 * len(low), hidden, layers, nn.SiLU)
        self.min_log_std = min_log_std
        self.register_buffer("centre", (high + low) / 2)
        self.register_buffer("half_range", (high - low) / 2)

    def forward(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-squash (mean, log_std), each (..., A)."""
        mean, raw = self.net(states).chunk(2, dim=-1)
        return mean, self.min_log_std + (MAX_LOG_STD - self.min_log_std) * torch.sigmoid(raw)

    def act(self, states: Tensor, noise: Tensor) -> Tensor:
        mean, log_std = self(states)
        return self.centre + self.half_range * torch.tanh(mean + log_std.exp() * noise)

    def pre_squash(self, actions: Tensor) -> Tensor:
        return torch.atanh(((actions - self.centre) / self.half_range).clamp(-1 + 1e-6, 1 - 1e-6))

    def infer_noise(self, states: Tensor, actions: Tensor) -> Tensor:
        """eta (..., A) with act(states, eta) == actions."""
        mean, log_std = self(states)
        return (self.pre_squash(actions) - mean) / log_std.exp()

    def log_prob(self, states: Tensor, actions: Tensor) -> Tensor:
        """(...) log-density of the pre-squash Gaussian at `actions` (tanh's Jacobian left out)."""
        mean, log_std = self(states)
        z = (self.pre_squash(actions) - mean) / log_std.exp()
        return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def infer_model_noise(model: ProbabilisticEnsemble, inputs: Tensor, deltas: Tensor) -> Tensor:
    """xi (E, B, D) that makes each member's sample equal the observed `deltas` (B, D) = s' - s,
    from model `inputs` (B, F)."""
    mean, logvar = model(inputs.expand(model.members, *inputs.shape))
    return ((deltas - model.target_mean) / model.target_std - mean) * (-0.5 * logvar).exp()


def model_step(model: ProbabilisticEnsemble, task: ModelTask, states: Tensor, actions: Tensor, noise: Tensor) -> Tensor:
    """f(s, a, xi): next states (E, B, D) of `states` (B, D) or (E, B, D), one per member, under
    `actions` (B, A) or (E, B, A) and noise (E, B, D)."""
    inputs = torch.cat([task.model_input(states), actions], dim=-1)
    mean, logvar = model(inputs.expand(model.members, *inputs.shape[-2:]))
    return states + (mean + (0.5 * logvar).exp() * noise) * model.target_std + model.target_mean


@AGENTS.register("svg")
class SVG(TaskAgent):
    """SVG(1)-ER or SVG(inf) (`config.variant`) for a flat continuous task with a known reward."""

    registry_name = "svg"
    config_class = SVGConfig
    display_name = "SVG"
    streams = ("act", "replay")
    counters = ("episodes", "total_steps", "updates", "model_steps")  # updates: policy gradient steps

    def build(self) -> None:
        config = self.config
        self.behaviour_log_prob = np.zeros(config.replay_capacity, np.float32)  # beside replay row i
        with seeded(config.seed):
            self.policy = SquashedGaussianPolicy(self.observation_dim, self.low, self.high, config.hidden, config.layers, config.min_log_std)
            self.value = mlp(self.observation_dim, 1, config.hidden, config.layers, nn.SiLU)
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self.optimizers = {
            "policy": torch.optim.Adam(self.policy.parameters(), lr=config.policy_lr),
            "value": torch.optim.Adam(self.value.parameters(), lr=config.value_lr),
        }
        self.model: ProbabilisticEnsemble | None = None
        self.episode_model_losses: list[float] = []

    def build_task(self, task_id: str) -> None:
        """Bind the task's known reward and build the dynamics model for its features."""
        super().build_task(task_id)
        config = self.config
        ensemble_config = EnsembleConfig(members=config.members, hidden=config.model_hidden, layers=config.model_layers, batch_size=config.batch_size)
        with seeded(config.seed + 1):
            self.model = ProbabilisticEnsemble(self.model_features() + self.action_dim, self.observation_dim, ensemble_config)
        self.optimizers["model"] = torch.optim.Adam(self.model.parameters(), lr=config.model_lr, weight_decay=ensemble_config.weight_decay)

    # -- acting ----------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> tuple[np.ndarray, float]:
        """(A,) an action drawn from the policy, and its behaviour log-density."""
        state = torch.as_tensor(observation, dtype=torch.float32)
        noise = torch.randn(self.action_dim, generator=self.generators["act"])
        action = self.policy.act(state, noise)
        return action.numpy(), self.policy.log_prob(state, action).item()

    def behaviour_action(self, observation: np.ndarray) -> np.ndarray:
        """An action of `act`, its log-density kept beside the replay row it will take."""
        action, log_prob = self.act(observation)
        self.behaviour_log_prob[self.replay.added % self.config.replay_capacity] = log_prob
        return action

    # -- learning --------------------------------------------------------------------------------

    def sample(self) -> dict[str, Tensor]:
        rows = torch.randint(len(self.replay), (self.config.batch_size,), generator=self.generators["replay"]).numpy()
        batch = {name: torch.as_tensor(array[rows]) for name, array in self.replay.arrays().items()}
        batch["behaviour_log_prob"] = torch.as_tensor(self.behaviour_log_prob[rows])
        return batch

    def model_inputs(self, observations: Tensor, actions: Tensor) -> Tensor:
        return torch.cat([self.task.model_input(observations), actions], dim=-1)

    def update_model(self) -> float:
        """One likelihood step of the dynamics model on a replayed minibatch (each member its own).
        The first one fixes the model's normaliser to the statistics of the data then stored: a
        normaliser moved later would shift every prediction at once."""
        if self.model_steps == 0:
            self.set_normaliser()
        batches = [self.sample() for _ in range(self.model.members)]
        inputs = torch.stack([self.model_inputs(batch["observations"], batch["actions"]) for batch in batches])
        targets = torch.stack([batch["next_observations"] - batch["observations"] for batch in batches])
        loss = self.model.loss(inputs, targets)
        self.optimizers["model"].zero_grad()
        loss.backward()
        self.optimizers["model"].step()
        self.model_steps += 1
        self.episode_model_losses.append(loss.item() / self.model.members)
        return loss.item()

    @torch.no_grad()
    def model_loss(self) -> float:
        """The model's NLL (and bound term) on every stored transition, averaged over members."""
        data = {name: torch.as_tensor(array) for name, array in self.replay.arrays().items()}
        inputs = self.model_inputs(data["observations"], data["actions"])
        loss = self.model.loss(inputs.expand(self.model.members, *inputs.shape), data["next_observations"] - data["observations"])
        return loss.item() / self.model.members

    def set_normaliser(self) -> None:
        """Normalise the model's inputs and targets with the statistics of all stored data."""
        data = {name: torch.as_tensor(array) for name, array in self.replay.arrays().items()}
        self.model.set_normaliser(self.model_inputs(data["observations"], data["actions"]), data["next_observations"] - data["observations"])

    def policy_step(self, objective: Tensor, states: Tensor) -> None:
        """Ascend `objective`, plus the entropy bonus and minus the mean penalty at `states`, by one
        clipped Adam step of the policy. A step whose gradient is not finite (a value gradient that
        overflowed through a long model rollout) is skipped, not taken: clipping an infinite norm
        would write NaN into the policy. Skipped steps do not count in `updates`."""
        mean, log_std = self.policy(states)
        regulariser = self.config.entropy_weight * log_std.sum(-1).mean() - self.config.mean_penalty * (mean**2).sum(-1).mean()
        loss = -(objective + regulariser)
        self.optimizers["policy"].zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip)
        if not torch.isfinite(norm):
            self.optimizers["policy"].zero_grad()
            return
        self.optimizers["policy"].step()
        self.updates += 1

    def svg_1_update(self) -> None:
        """Alg. 2: importance-weighted TD step of V, then the one-step value gradient of the policy."""
        config, batch = self.config, self.sample()
        states, actions, next_states = batch["observations"], batch["actions"], batch["next_observations"]
        continues = config.discount * (~batch["terminated"]).float()
        with torch.no_grad():
            weights = (self.policy.log_prob(states, actions) - batch["behaviour_log_prob"]).exp().clamp(max=config.max_weight)
            td_targets = batch["rewards"] + continues * self.target_value(next_states).squeeze(-1)
            policy_noise = self.policy.infer_noise(states, actions)
            model_noise = infer_model_noise(self.model, self.model_inputs(states, actions), next_states - states)
        value_loss = (weights * (self.value(states).squeeze(-1) - td_targets) ** 2).mean()
        self.optimizers["value"].zero_grad()
        value_loss.backward()
        self.optimizers["value"].step()
        with torch.no_grad():
            for target, online in zip(self.target_value.parameters(), self.value.parameters()):
                target.lerp_(online, config.target_tau)

        policy_actions = at_data(self.policy.act(states, policy_noise), actions)
        predicted = at_data(model_step(self.model, self.task, states, policy_actions, model_noise), next_states)  # (E, B, D)
        self.value.requires_grad_(False)
        returns = self.task.reward_fn(states, policy_actions, predicted) + continues * self.value(predicted).squeeze(-1)  # (E, B)
        self.value.requires_grad_(True)
        self.policy_step((weights * returns).mean(), states)

    def svg_inf_update(self, trajectory: dict[str, Tensor]) -> None:
        """Alg. 1: backpropagate the real trajectory's discounted return through model and policy."""
        states, actions, next_states = trajectory["observations"], trajectory["actions"], trajectory["next_observations"]
        with torch.no_grad():
            policy_noise = self.policy.infer_noise(states, actions)  # (T, A)
            model_noise = infer_model_noise(self.model, self.model_inputs(states, actions), next_states - states)  # (E, T, D)
        state = states[:1].expand(self.model.members, 1, -1)  # (E, 1, D), each member its own
        total, discount, window = 0.0, 1.0, self.config.backprop_window
        for step in range(len(states)):
            if window and step % window == 0:
                state = state.detach()  # truncated backpropagation: no gradient across a block's start
            action = at_data(self.policy.act(state, policy_noise[step]), actions[step])
            next_state = at_data(model_step(self.model, self.task, state, action, model_noise[:, step : step + 1]), next_states[step])
            total = total + discount * self.task.reward_fn(state, action, next_state)  # (E, 1)
            discount *= self.config.discount
            state = next_state
        self.policy_step(total.mean() / len(states), states)

    # -- the loop --------------------------------------------------------------------------------

    def start_episode(self) -> None:
        """The row's model_loss covers this episode's model steps only."""
        self.episode_model_losses = []

    def after_step(self) -> None:
        """SVG(1) learns after every real step."""
        if self.config.variant == "svg_1" and self.total_steps >= self.config.learning_starts:
            self.learn_step()

    def end_episode(self, steps: int) -> dict:
        """SVG(inf) learns from the episode. The row adds backups (policy gradient steps so far),
        model_steps and model_loss (the mean NLL of the episode's model steps, on their minibatches)."""
        if self.config.variant == "svg_inf" and self.total_steps >= self.config.learning_starts:
            self.learn_episode(self.replay.added - steps, steps)
        model_loss = float(np.mean(self.episode_model_losses)) if self.episode_model_losses else float("nan")
        return {"backups": self.updates, "model_steps": self.model_steps, "model_loss": model_loss}

    def learn_step(self) -> None:
        """SVG(1): model, value and policy steps after one real step."""
        for _ in range(self.config.model_updates):
            self.update_model()
        self.svg_1_update()

    def learn_episode(self, first_row: int, length: int) -> None:
        """SVG(inf): model steps for the episode's real steps, then the trajectory's policy steps."""
        for _ in range(self.config.model_updates * length):
            self.update_model()
        rows = np.arange(first_row, first_row + length) % self.config.replay_capacity
        trajectory = {name: torch.as_tensor(array[rows]) for name, array in self.replay.arrays().items()}
        for _ in range(self.config.updates_per_episode):
            self.svg_inf_update(trajectory)

    # -- checkpoints -----------------------------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        found = {"policy": self.policy, "value": self.value, "target_value": self.target_value}
        return found | ({"model": self.model} if self.model is not None else {})

    def extra_state(self) -> dict[str, np.ndarray]:
        arrays = {"behaviour_log_prob": self.behaviour_log_prob[: len(self.replay)]}
        for prefix, module in self.modules().items():
            arrays.update(module_arrays(module, prefix))
        for prefix, optimizer in self.optimizers.items():
            arrays.update(optimizer_arrays(optimizer, f"adam.{prefix}"))
        return arrays

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.behaviour_log_prob[: len(arrays["behaviour_log_prob"])] = arrays["behaviour_log_prob"]
        for prefix, module in self.modules().items():
            load_module_arrays(module, arrays, prefix)
        for prefix, optimizer in self.optimizers.items():
            load_optimizer_arrays(optimizer, arrays, f"adam.{prefix}")
