"""The recurrent state-space model of PlaNet and Dreamer ([10] Hafner et al. 2019, "Learning Latent
Dynamics for Planning from Pixels", Sec. 3, eq. 1; [11]-[13] Dreamer v1-v3), the one latent
dynamics model the latent-space agents share.

The state s_t = (h_t, z_t) is a deterministic part h_t and a stochastic part z_t:

    h_t = GRU(h_{t-1}, MLP([z_{t-1}, a_{t-1}]))            deterministic path
    z_t ~ p(z_t | h_t)                                       prior (the transition, used to imagine)
    z_t ~ q(z_t | h_t, e_t)                                  posterior, e_t the observation's embedding

The stochastic part is, by `latent`:
- `gaussian` (PlaNet, Dreamer v1): a diagonal Gaussian of `stochastic` values, std = softplus(.)
  + `min_std`, sampled by reparameterization;
- `categorical` (Dreamer v2, v3): `groups` categoricals of `classes` classes each (32 x 32), a
  one-hot sample per group with straight-through gradients (v2, Sec. 2), the probabilities mixed
  with `unimix` of the uniform (v3: 1%).

At an episode start (`is_first`) the state and the previous action are reset to zeros before the
step, so nothing leaks across episodes (a detail users of Dreamer v3's reference report getting
wrong). `kl_loss` gives the KL term with Dreamer v2's balancing (Sec. 2, alpha = 0.8 on the
prior's side) and Dreamer v3's free bits (each KL clipped below at `free_nats`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LATENTS = ("gaussian", "categorical")


@dataclass
class RSSMConfig:
    embedding: int  # width of e_t
    actions: int  # width of a_t (one-hot for discrete actions)
    deterministic: int = 200  # h_t; Dreamer v3 (size S): 512
    hidden: int = 200  # the MLPs
    latent: str = "gaussian"  # gaussian | categorical
    stochastic: int = 30  # gaussian: the values of z_t (PlaNet, Dreamer v1: 30)
    min_std: float = 0.1  # gaussian
    groups: int = 32  # categorical (Dreamer v2, v3: 32 x 32)
    classes: int = 32
    unimix: float = 0.0  # categorical: the uniform's share (Dreamer v3: 0.01)


@dataclass
class State:
    deterministic: Tensor  # h (B, D)
    stochastic: Tensor  # z (B, Z), flat (groups x classes one-hots for categorical)
    statistics: Tensor  # the distribution of z: (B, 2 Z) mean and std, or (B, groups, classes) probabilities

    def features(self) -> Tensor:
        """[h, z] (B, D + Z): what the heads read."""
        return torch.cat([self.deterministic, self.stochastic], dim=-1)


class RSSM(nn.Module):
    def __init__(self, config: RSSMConfig):
        super().__init__()
        if config.latent not in LATENTS:
            raise ValueError(f"latent {config.latent!r}: must be one of {', '.join(LATENTS)}")
        self.config = config
        self.stochastic_size = config.stochastic if config.latent == "gaussian" else config.groups * config.classes
        statistics = 2 * config.stochastic if config.latent == "gaussian" else config.groups * config.classes
        self.step_input = nn.Sequential(nn.Linear(self.stochastic_size + config.actions, config.hidden), nn.SiLU())
        self.gru = nn.GRUCell(config.hidden, config.deterministic)
        self.prior_head = nn.Sequential(nn.Linear(config.deterministic, config.hidden), nn.SiLU(), nn.Linear(config.hidden, statistics))
        self.posterior_head = nn.Sequential(nn.Linear(config.deterministic + config.embedding, config.hidden), nn.SiLU(), nn.Linear(config.hidden, statistics))

    @property
    def feature_size(self) -> int:
        return self.config.deterministic + self.stochastic_size

    def initial(self, batch: int) -> State:
        weight = self.gru.weight_hh
        zeros = weight.new_zeros(batch, self.stochastic_size)
        return State(weight.new_zeros(batch, self.config.deterministic), zeros, self.statistics_of(self.prior_head(weight.new_zeros(batch, self.config.deterministic))))

    def statistics_of(self, output: Tensor) -> Tensor:
        """A head's output -> the distribution's statistics (mean and std, or mixed probabilities)."""
        if self.config.latent == "gaussian":
            mean, std = output.chunk(2, dim=-1)
            return torch.cat([mean, F.softplus(std) + self.config.min_std], dim=-1)
        probabilities = output.unflatten(-1, (self.config.groups, self.config.classes)).softmax(-1)
        return (1 - self.config.unimix) * probabilities + self.config.unimix / self.config.classes

    def sample(self, statistics: Tensor) -> Tensor:
        """z (B, Z): reparameterized Gaussian, or one-hot categoricals with straight-through gradients."""
        if self.config.latent == "gaussian":
            mean, std = statistics.chunk(2, dim=-1)
            return mean + std * torch.randn_like(std)
        classes = torch.multinomial(statistics.flatten(0, -2), 1).view(statistics.shape[:-1])
        one_hot = F.one_hot(classes, self.config.classes).to(statistics.dtype)
        return (one_hot + statistics - statistics.detach()).flatten(-2)

    def imagine_step(self, state: State, action: Tensor) -> State:
        """s_{t-1}, a_{t-1} -> s_t from the prior."""
        deterministic = self.gru(self.step_input(torch.cat([state.stochastic, action], dim=-1)), state.deterministic)
        statistics = self.statistics_of(self.prior_head(deterministic))
        return State(deterministic, self.sample(statistics), statistics)

    def observe_step(self, state: State, action: Tensor, embedding: Tensor, is_first: Tensor) -> tuple[State, State]:
        """(posterior, prior) of s_t from s_{t-1}, a_{t-1} and e_t; state and action are zeroed where `is_first`."""
        keep = (~is_first).to(embedding.dtype)[:, None]
        state = State(state.deterministic * keep, state.stochastic * keep, state.statistics)
        prior = self.imagine_step(state, action * keep)
        statistics = self.statistics_of(self.posterior_head(torch.cat([prior.deterministic, embedding], dim=-1)))
        return State(prior.deterministic, self.sample(statistics), statistics), prior

    def observe(self, embeddings: Tensor, actions: Tensor, is_first: Tensor, state: State | None = None) -> tuple[list[State], list[State]]:
        """embeddings (B, T, E), the previous actions (B, T, A) (a_{t-1} beside e_t), is_first (B, T)
        -> the T posteriors and priors."""
        state = state or self.initial(embeddings.shape[0])
        posteriors, priors = [], []
        for t in range(embeddings.shape[1]):
            state, prior = self.observe_step(state, actions[:, t], embeddings[:, t], is_first[:, t])
            posteriors.append(state)
            priors.append(prior)
        return posteriors, priors

    def kl(self, posterior: Tensor, prior: Tensor) -> Tensor:
        """KL(q || p) per batch row, summed over the latent's values or groups."""
        if self.config.latent == "gaussian":
            q_mean, q_std = posterior.chunk(2, dim=-1)
            p_mean, p_std = prior.chunk(2, dim=-1)
            return (torch.log(p_std / q_std) + (q_std**2 + (q_mean - p_mean) ** 2) / (2 * p_std**2) - 0.5).sum(-1)
        return (posterior * (posterior.log() - prior.log())).sum(-1).sum(-1)

    def kl_loss(self, posterior: Tensor, prior: Tensor, prior_weight: float = 0.8, posterior_weight: float = 0.2, free_nats: float = 0.0) -> Tensor:
        """The balanced KL of Dreamer v2 (Sec. 2): prior_weight KL(sg(q) || p) + posterior_weight
        KL(q || sg(p)), each row's KL clipped below at `free_nats` (Dreamer v3's free bits) before the
        batch mean. Dreamer v2: 0.8 and 0.2 (times its KL scale); Dreamer v3: 0.5 and 0.1 with 1 nat
        free; weights 0.5 and 0.5 with no free nats are the plain KL."""
        prior_side = self.kl(posterior.detach(), prior).clamp(min=free_nats).mean()
        posterior_side = self.kl(posterior, prior.detach()).clamp(min=free_nats).mean()
        return prior_weight * prior_side + posterior_weight * posterior_side
