"""The small CNN that reads a transition from two frames stacked in channels, shared by UniPi's
inverse dynamics model ([22], `reverie.planning.inverse_dynamics`) and the reward and termination
model beside a world model ([16] DIAMOND, `reverie.pretrain.reward_model`).

    (B, 6, H, W) -> conv3x3 -> SiLU -> conv3x3 stride 2 -> SiLU -> conv3x3 stride 2 -> SiLU
                 -> max over a 4 x 4 grid of regions -> (B, 16 width)

The max (not the mean) over regions keeps the response of a small object that moved, wherever in
the frame it is; frames of any size work.
"""

from __future__ import annotations

from torch import nn

GRID = 4  # regions a side of the final max-pool


def frame_pair_cnn(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(6, width, 3, padding=1), nn.SiLU(),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
        nn.AdaptiveMaxPool2d(GRID), nn.Flatten(),
    )  # fmt: skip
