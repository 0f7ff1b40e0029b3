"""Standardise features with running statistics of all the data seen in training.

Each of the `shape`'s entries gets its own mean and variance, accumulated over every training batch
with Chan et al.'s parallel update (exact, not an exponential average), and features are mapped to
(x - mean) / sqrt(var + eps) with the statistics as they stand after the batch. Unlike batch norm,
training and evaluation normalise with the same running statistics, and the statistics stop
moving once training stops, so a saved model encodes exactly as it did at the end of training.
"""

from __future__ import annotations

import torch
from torch import nn


class RunningStandardizer(nn.Module):
    def __init__(self, shape: tuple[int, ...], eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("sum_squares", torch.zeros(shape, dtype=torch.float64))  # of deviations from the mean

    @torch.no_grad()
    def update(self, values: torch.Tensor) -> None:
        """Fold in `values` (..., *shape): every leading index is one observation."""
        values = values.detach().reshape(-1, *self.mean.shape).double()
        count = values.shape[0]
        mean = values.mean(0)
        delta = mean - self.mean
        total = self.count + count
        self.sum_squares += ((values - mean) ** 2).sum(0) + delta**2 * self.count * count / total
        self.mean += delta * count / total
        self.count.fill_(total)

    @property
    def std(self) -> torch.Tensor:
        return (self.sum_squares / self.count.clamp(min=1) + self.eps).sqrt()

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """(..., *shape) standardised; in training mode the statistics first take in `values`."""
        if self.training:
            self.update(values)
        if not self.count:
            raise RuntimeError("RunningStandardizer has seen no data: run it in training mode first")
        return ((values - self.mean.to(values)) / self.std.to(values)).to(values.dtype)
