"""The plain multilayer perceptron the small agents' networks are made of: actors, critics, value
functions and one-network dynamics models."""

from __future__ import annotations

from torch import nn


def mlp(inputs: int, outputs: int, hidden: int, layers: int, activation: type[nn.Module]) -> nn.Sequential:
    """(..., inputs) -> (..., outputs) through `layers` hidden layers of `hidden` units, each a
    Linear then `activation`, and a final Linear with no activation.

    The Linear layers are created input first, so a network built under a fixed torch seed has the
    same weights every time; as an `nn.Sequential`, its parameters are named `0.weight`, `0.bias`,
    `2.weight`, ... (every other index, the activations holding none)."""
    widths = [inputs] + [hidden] * layers
    blocks = [module for fan_in, fan_out in zip(widths[:-1], widths[1:]) for module in (nn.Linear(fan_in, fan_out), activation())]
    return nn.Sequential(*blocks, nn.Linear(widths[-1], outputs))
