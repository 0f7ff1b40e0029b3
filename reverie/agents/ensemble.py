"""A bootstrapped ensemble of probabilistic networks, the dynamics model of PETS and MBPO.

[9] Chua et al. 2018, "Deep Reinforcement Learning in a Handful of Trials using Probabilistic
Dynamics Models", Sec. 4.1 and appendix A.1. Each of the E members b is a network that outputs a
diagonal Gaussian over its (normalised) target y, here a state change:

    f_b(x) = N(mu_b(x), diag(sigma_b^2(x)))
    loss   = sum_b mean_n [ (mu_b(x_n) - y_n)^T Sigma_b^-1 (mu_b(x_n) - y_n) + log det Sigma_b ]   (eq. 2)
             + bound_weight * (sum max_logvar - sum min_logvar)

The log-variance is kept between learned soft bounds (the appendix's softplus bounding):

    logvar <- max_logvar - softplus(max_logvar - logvar)
    logvar <- min_logvar + softplus(logvar - min_logvar)

and the regulariser pulls max_logvar down and min_logvar up, so the bounds hug the data. Each member
trains on its own bootstrap of the data (sampled with replacement), which with the random
initialisation gives the ensemble its epistemic spread. Inputs and targets are normalised to zero
mean and unit standard deviation with statistics of the data the model was last fit to.

All members run in one batched matmul: every layer holds one (E, in, out) weight tensor and
`forward` takes inputs shaped (E, B, in), member b seeing row b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class EnsembleConfig:
    members: int = 5  # E, bootstrapped networks
    hidden: int = 200  # units per hidden layer
    layers: int = 4  # hidden layers, swish activations
    learning_rate: float = 1e-3
    weight_decay: float = 5e-5  # Adam's L2 on the weights of every layer
    batch_size: int = 32  # per member and step
    bound_weight: float = 0.01  # coefficient of the log-variance bound regulariser
    holdout: float = 0.0  # share of the data kept out to stop training early (0: train all epochs)
    patience: int = 5  # epochs without a 1% holdout gain (any member) before stopping


class EnsembleLinear(nn.Module):
    """E independent affine maps applied at once: (E, B, in) -> (E, B, out)."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))  # (E, in, out)
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))  # (E, 1, out)
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default, per member
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, inputs, self.weight)


class ProbabilisticEnsemble(nn.Module):
    """E Gaussian regressors of `target_dim` outputs from `input_dim` inputs, batched over members."""

    def __init__(self, input_dim: int, target_dim: int, config: EnsembleConfig):
        super().__init__()
        self.config, self.input_dim, self.target_dim = config, input_dim, target_dim
        widths = [input_dim] + [config.hidden] * config.layers
        self.hidden_layers = nn.ModuleList(EnsembleLinear(config.members, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.output_layer = EnsembleLinear(config.members, widths[-1], 2 * target_dim)  # mean and log-variance
        self.max_logvar = nn.Parameter(torch.full((target_dim,), 0.5))  # in normalised target units
        self.min_logvar = nn.Parameter(torch.full((target_dim,), -10.0))
        for name, size in (("input_mean", input_dim), ("target_mean", target_dim)):
            self.register_buffer(name, torch.zeros(size))
        for name, size in (("input_std", input_dim), ("target_std", target_dim)):
            self.register_buffer(name, torch.ones(size))

    @property
    def members(self) -> int:
        return self.config.members

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised (mean, logvar), each (E, B, target_dim), of raw `inputs` (E, B, input_dim)."""
        hidden = (inputs - self.input_mean) / self.input_std
        for layer in self.hidden_layers:
            hidden = F.silu(layer(hidden))  # swish
        mean, logvar = self.output_layer(hidden).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def predict(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Raw-unit (mean, variance) of the targets, each (E, B, target_dim)."""
        mean, logvar = self(inputs)
        return mean * self.target_std + self.target_mean, logvar.exp() * self.target_std**2

    def sample(self, inputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(E, B, target_dim) raw-unit targets drawn from each member's Gaussian."""
        mean, logvar = self(inputs)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return (mean + (0.5 * logvar).exp() * noise) * self.target_std + self.target_mean

    def loss(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Gaussian NLL (eq. 2, summed over members, up to a constant) plus the bound regulariser;
        `inputs` (E, B, input_dim) and raw `targets` (E, B, target_dim)."""
        mean, logvar = self(inputs)
        normalised = (targets - self.target_mean) / self.target_std
        nll = ((mean - normalised) ** 2 * (-logvar).exp() + logvar).sum(-1).mean(-1).sum()
        return nll + self.config.bound_weight * (self.max_logvar.sum() - self.min_logvar.sum())

    @torch.no_grad()
    def mse(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """(E,) mean squared error of each member's normalised mean on shared `inputs` (B, input_dim)."""
        mean, _ = self(inputs.expand(self.members, *inputs.shape))
        return ((mean - (targets - self.target_mean) / self.target_std) ** 2).mean((1, 2))

    def set_normaliser(self, inputs: Tensor, targets: Tensor) -> None:
        """Normalise with the mean and std of these (B, dim) data; a constant column keeps std 1."""
        for prefix, values in (("input", inputs), ("target", targets)):
            std = values.std(0, correction=0)
            getattr(self, f"{prefix}_mean").copy_(values.mean(0))
            getattr(self, f"{prefix}_std").copy_(torch.where(std < 1e-6, torch.ones_like(std), std))

    def fit(self, inputs: Tensor, targets: Tensor, epochs: int, generator: torch.Generator, optimizer: torch.optim.Optimizer) -> dict:
        """Train on (N, input_dim) inputs and (N, target_dim) raw targets for up to `epochs` epochs,
        each member on its own bootstrap, in minibatches of `batch_size` per member. With a holdout
        share, stop after `patience` epochs without gain and keep each member's best weights.
        Returns steps taken, the last epoch's mean training loss, and the holdout MSE if any (the
        members' mean, and each member's as `member_holdout_mse` (E,))."""
        self.set_normaliser(inputs, targets)
        order = torch.randperm(len(inputs), generator=generator)
        held = int(self.config.holdout * len(inputs))
        held_in, held_out = order[held:], order[:held]
        bootstrap = held_in[torch.randint(len(held_in), (self.members, len(held_in)), generator=generator)]  # (E, N)
        best_mse, best_state, stale, steps, epoch_loss = None, None, 0, 0, float("nan")
        if held:
            best_mse, best_state = self.mse(inputs[held_out], targets[held_out]), self._member_state()
        for _ in range(epochs):
            shuffled = bootstrap.gather(1, torch.argsort(torch.rand(bootstrap.shape, generator=generator), dim=1))
            losses = []
            for start in range(0, shuffled.shape[1], self.config.batch_size):
                batch = shuffled[:, start : start + self.config.batch_size]  # (E, batch) row indices
                loss = self.loss(inputs[batch], targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                steps += 1
            epoch_loss = float(np.mean(losses))
            if held:
                mse = self.mse(inputs[held_out], targets[held_out])
                improved = (best_mse - mse) / best_mse.clamp_min(1e-12) > 0.01  # (E,)
                if improved.any():
                    best_mse = torch.where(improved, mse, best_mse)
                    best_state = self._member_state(improved, best_state)
                    stale = 0
                else:
                    stale += 1
                    if stale >= self.config.patience:
                        break
        if held:
            self._load_member_state(best_state)
        return {
            "steps": steps, "loss": epoch_loss, "holdout_mse": None if best_mse is None else best_mse.mean().item(),
            "member_holdout_mse": best_mse,
        }

    def _member_state(self, take: Tensor | None = None, previous: dict | None = None) -> dict:
        """Copies of the per-member weights; with `take` (E,) bool, only those members replace `previous`."""
        state = {}
        for name, value in self.named_parameters():
            if value.shape[0] != self.members or value.ndim != 3:
                continue
            value = value.detach().clone()
            if take is not None:
                value = torch.where(take.view(-1, 1, 1), value, previous[name])
            state[name] = value
        return state

    @torch.no_grad()
    def _load_member_state(self, state: dict) -> None:
        for name, value in self.named_parameters():
            if name in state:
                value.copy_(state[name])
