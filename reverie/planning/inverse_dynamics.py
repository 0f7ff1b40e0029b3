"""The inverse dynamics model of UniPi ([22] Du et al. 2023, Sec. 3.3, "Action Prediction"): a
small network that reads the action taken between two consecutive frames,

    a_t = argmax_a p(a | x_t, x_{t+1}),

trained by cross-entropy on real transitions (frames with their recorded actions) and then run on
the frames of a generated video plan to turn it into actions. Discrete action spaces. The network
is `reverie.nn.frame_pair_cnn` over the frame and the change to the next one, stacked in channels,
then an MLP to the action logits (UniPi uses a small CNN too; its layers are not given).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reverie.nn.frame_pair_cnn import GRID, frame_pair_cnn


class InverseDynamicsModel(nn.Module):
    """(x_t, x_{t+1}), each (B, 3, H, W) in [0, 1] -> logits (B, actions)."""

    def __init__(self, actions: int, width: int = 32):
        super().__init__()
        self.actions = actions
        self.features = frame_pair_cnn(width)
        self.head = nn.Sequential(nn.Linear(GRID * GRID * width, 4 * width), nn.SiLU(), nn.Linear(4 * width, actions))

    def forward(self, frames: Tensor, next_frames: Tensor) -> Tensor:
        return self.head(self.features(torch.cat([frames, next_frames - frames], dim=1)))

    @torch.no_grad()
    def infer(self, video: Tensor) -> Tensor:
        """A video (B, T + 1, 3, H, W) in [0, 1] -> the action between each pair of frames, (B, T) int64."""
        batch, steps = video.shape[0], video.shape[1] - 1
        logits = self(video[:, :-1].flatten(0, 1), video[:, 1:].flatten(0, 1))
        return logits.argmax(-1).reshape(batch, steps)


def fit_inverse_dynamics(model: InverseDynamicsModel, frames: Tensor, next_frames: Tensor, actions: Tensor, steps: int,
                         batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> list[float]:  # fmt: skip
    """Train on transitions (N, 3, H, W) x 2 and actions (N,) int64 by Adam; the loss per step."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, len(actions), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(frames[rows], next_frames[rows]), actions[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def inverse_dynamics_accuracy(model: InverseDynamicsModel, frames: Tensor, next_frames: Tensor, actions: Tensor) -> float:
    """The share of transitions whose action the model reads right."""
    model.eval()
    return float((model(frames, next_frames).argmax(-1) == actions).double().mean())
