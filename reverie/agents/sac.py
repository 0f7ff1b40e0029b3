"""Soft actor-critic: the learner that MBPO (and later agents) drive on batches they assemble.

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv:1812.05905; not in
the survey), the version with twin Q-functions and a learned temperature. With the target networks
Q-bar (Polyak averages of the Q-functions) and a' ~ pi(.|s'), one update of `SAC.update` takes

    y         = r + gamma (1 - terminated) [ min_i Qbar_i(s', a') - alpha log pi(a'|s') ]
    J_Q       = sum_i mean (Q_i(s, a) - y)^2 / 2                                  (eq. 5, twin Q)
    J_pi      = mean [ alpha log pi(a~|s) - min_i Q_i(s, a~) ],  a~ = f(eps; s)   (eq. 7, reparam.)
    J_alpha   = mean [ -log alpha (log pi(a~|s) + H_target) ]                     (eq. 18)
    Qbar_i   <- (1 - tau) Qbar_i + tau Q_i

The policy is a tanh-squashed Gaussian, u ~ N(mu(s), sigma(s)^2), a = tanh(u), with the
change-of-variables log-likelihood (appendix C, eq. 21)

    log pi(a|s) = log N(u; mu, sigma^2) - sum_j log(1 - tanh(u_j)^2).

The networks see actions in the squashed box [-1, 1]^A; `act` and `update` speak the environment's
box and rescale. The entropy target defaults to -A (the paper's heuristic). All noise is drawn from
a `torch.Generator`, so a restored learner acts and updates exactly as the one it was saved from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reverie.agents.registry import load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays
from reverie.nn.mlp import mlp

LOG_STD_RANGE = (-5.0, 2.0)  # keeps sigma in [e^-5, e^2]: no collapse, no runaway noise


@dataclass
class SACConfig:
    hidden: int = 256  # units per hidden layer, actor and critics
    layers: int = 2  # hidden layers
    learning_rate: float = 3e-4  # actor, critics and temperature
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics
    initial_alpha: float = 1.0  # starting temperature
    target_entropy: float | None = None  # H_target; None: -A


class SquashedGaussianActor(nn.Module):
    """pi(a|s): a tanh-squashed diagonal Gaussian over actions in [-1, 1]^A."""

    def __init__(self, observation_dim: int, action_dim: int, hidden: int, layers: int):
        super().__init__()
        self.body = mlp(observation_dim, 2 * action_dim, hidden, layers, nn.ReLU)

    def forward(self, observations: Tensor, generator: torch.Generator | None = None, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """(actions (B, A) in [-1, 1], log pi(actions|s) (B,)) for `observations` (B, D)."""
        mean, log_std = self.body(observations).chunk(2, dim=-1)
        log_std = log_std.clamp(*LOG_STD_RANGE)
        noise = torch.zeros_like(mean) if deterministic else torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        pre_tanh = mean + log_std.exp() * noise  # u, reparameterised
        gaussian_log_prob = (-0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        squash_correction = (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return torch.tanh(pre_tanh), gaussian_log_prob - squash_correction


class TwinQ(nn.Module):
    """Q_1(s, a), Q_2(s, a): two independent critics, each (B,)."""

    def __init__(self, observation_dim: int, action_dim: int, hidden: int, layers: int):
        super().__init__()
        self.critics = nn.ModuleList(mlp(observation_dim + action_dim, 1, hidden, layers, nn.ReLU) for _ in range(2))

    def forward(self, observations: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        inputs = torch.cat([observations, actions], dim=-1)
        first, second = (critic(inputs).squeeze(-1) for critic in self.critics)
        return first, second


class SAC:
    """The SAC learner for one flat Box task: `act` on observations, `update` on a batch of
    transitions {observations, actions, rewards, next_observations, terminated}."""

    def __init__(self, config: SACConfig, observation_dim: int, low: np.ndarray, high: np.ndarray, generator: torch.Generator):
        self.config, self.generator = config, generator
        self.low = torch.as_tensor(low, dtype=torch.float32)  # (A,)
        self.high = torch.as_tensor(high, dtype=torch.float32)
        action_dim = len(self.low)
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            self.actor = SquashedGaussianActor(observation_dim, action_dim, config.hidden, config.layers)
            self.critic = TwinQ(observation_dim, action_dim, config.hidden, config.layers)
        self.target_critic = TwinQ(observation_dim, action_dim, config.hidden, config.layers).requires_grad_(False)
        self.target_critic.load_state_dict(self.critic.state_dict())
        self.log_alpha = torch.full((1,), math.log(config.initial_alpha), requires_grad=True)  # (1,): safetensors has no 0-d arrays
        self.target_entropy = -float(action_dim) if config.target_entropy is None else config.target_entropy
        self.optimizers = {
            "actor": torch.optim.Adam(self.actor.parameters(), lr=config.learning_rate),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=config.learning_rate),
            "alpha": torch.optim.Adam([self.log_alpha], lr=config.learning_rate),
        }
        self.updates = 0

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp().detach()

    def to_env(self, squashed: Tensor) -> Tensor:
        return self.low + (squashed + 1) * (self.high - self.low) / 2

    def to_squashed(self, actions: Tensor) -> Tensor:
        return (2 * (actions - self.low) / (self.high - self.low) - 1).clamp(-1, 1)

    @torch.no_grad()
    def act(self, observations: Tensor, deterministic: bool = False) -> Tensor:
        """Environment-box actions (..., A) for `observations` (..., D): sampled, or tanh(mu) if deterministic."""
        squashed, _ = self.actor(observations.float(), self.generator, deterministic)
        return self.to_env(squashed)

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One gradient step on the critics, the actor and the temperature, then the Polyak step."""
        observations, next_observations = batch["observations"].float(), batch["next_observations"].float()
        actions = self.to_squashed(batch["actions"].float())
        alpha = self.alpha
        with torch.no_grad():
            next_actions, next_log_prob = self.actor(next_observations, self.generator)
            next_q = torch.minimum(*self.target_critic(next_observations, next_actions)) - alpha * next_log_prob
            target = batch["rewards"].float() + self.config.gamma * (1 - batch["terminated"].float()) * next_q
        first, second = self.critic(observations, actions)
        critic_loss = 0.5 * ((first - target) ** 2).mean() + 0.5 * ((second - target) ** 2).mean()
        self._step("critic", critic_loss)

        new_actions, log_prob = self.actor(observations, self.generator)
        self.critic.requires_grad_(False)  # the actor's loss moves only the actor
        actor_loss = (alpha * log_prob - torch.minimum(*self.critic(observations, new_actions))).mean()
        self._step("actor", actor_loss)
        self.critic.requires_grad_(True)

        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self._step("alpha", alpha_loss)
        with torch.no_grad():
            for target_value, value in zip(self.target_critic.parameters(), self.critic.parameters()):
                target_value.lerp_(value, self.config.tau)
        self.updates += 1
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "alpha": self.alpha.item(), "entropy": -log_prob.mean().item()}

    def _step(self, name: str, loss: Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self, prefix: str = "sac.") -> dict[str, np.ndarray]:
        """Networks, temperature, optimizer moments, update count and noise stream, as named arrays."""
        arrays = {f"{prefix}log_alpha": self.log_alpha.detach().numpy()}
        for part in ("actor", "critic", "target_critic"):
            arrays.update(module_arrays(getattr(self, part), f"{prefix}{part}"))
        for part, optimizer in self.optimizers.items():
            arrays.update(optimizer_arrays(optimizer, f"{prefix}adam.{part}"))
        arrays[f"{prefix}updates"] = np.array([self.updates], np.int64)
        arrays[f"{prefix}generator"] = self.generator.get_state().numpy()
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray], prefix: str = "sac.") -> None:
        with torch.no_grad():
            self.log_alpha.copy_(torch.from_numpy(arrays[f"{prefix}log_alpha"]))
        for part in ("actor", "critic", "target_critic"):
            load_module_arrays(getattr(self, part), arrays, f"{prefix}{part}")
        for part, optimizer in self.optimizers.items():
            load_optimizer_arrays(optimizer, arrays, f"{prefix}adam.{part}")
        self.updates = int(arrays[f"{prefix}updates"][0])
        self.generator.set_state(torch.from_numpy(arrays[f"{prefix}generator"]))
