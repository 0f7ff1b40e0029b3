"""A small MLP policy over low-dimensional observations, saved as a model folder.

Used to record episodes with a learned behaviour (`reverie record ENV --policy FOLDER`); the agents
of `reverie.agents` export their actors in this form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from reverie.nn.model_folder import MODELS


@dataclass
class MLPPolicyConfig:
    observation_dim: int
    action_space: dict  # reverie.shards.episodes.describe_space
    hidden: list[int] = field(default_factory=lambda: [64, 64])


@MODELS.register("mlp_policy")
class MLPPolicy(nn.Module):
    """Discrete spaces: argmax over logits. Box spaces: tanh, scaled to the bounds."""

    registry_name = "mlp_policy"
    config_class = MLPPolicyConfig

    def __init__(self, config: MLPPolicyConfig):
        super().__init__()
        self.config = config
        space = config.action_space
        outputs = space["n"] if space["type"] == "discrete" else int(np.prod(space["shape"]))
        sizes = [config.observation_dim, *config.hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], outputs))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.net(observation)

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> np.ndarray | int:
        output = self(torch.as_tensor(observation, dtype=torch.float32).reshape(1, -1))[0]
        space = self.config.action_space
        if space["type"] == "discrete":
            return int(output.argmax()) + space.get("start", 0)
        low, high = np.asarray(space["low"], np.float32), np.asarray(space["high"], np.float32)
        unit = torch.tanh(output).numpy().reshape(space["shape"])
        return low + (unit + 1.0) * 0.5 * (high - low)
