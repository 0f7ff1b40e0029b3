"""The scheduling matrices of diffusion forcing (Chen et al. 2024, "Diffusion Forcing: Next-token
Prediction Meets Full-Sequence Diffusion", Sec. 3.3 and Alg. 2, with the pyramid schedule of its
appendix), by which latent diffusion-forcing world models such as [24] Oasis and [19] Genie 2 sample
a window of frames that each carry their own noise level.

A matrix K of shape (rows, frames) says, at sampling iteration m, how many of the `steps` denoising
steps are still to go for frame j: K[m, j] = steps is pure noise, 0 is clean. Row 0 is all `steps`,
the last row all 0, and no entry rises from a row to the next. The three kinds differ in how far
frame j lags behind frame j - 1, and are one formula with that lag:

    K[m, j] = clip(steps + lag j - m, 0, steps),    rows = steps + lag (frames - 1) + 1

- "full_sequence", lag 0: all frames denoised together, as a video diffusion model does;
- "pyramid", lag 1: each frame one step noisier than the one before it, so a frame is refined while
  the frames after it are still rough, and information flows forward (the paper's pyramid);
- "autoregressive", lag steps: a frame starts only once the one before it is clean, next-frame
  prediction with a fully denoised history.

`step_levels` maps an entry to the DDPM level of `VPredictionSchedule` (0 -> CLEAN, steps -> T - 1,
evenly spaced between, as diffusers' "trailing" timestep spacing), so a sampler moves frame j from
levels[K[m, j]] to levels[K[m + 1, j]] with one `ddim_step` per row; a frame whose entry stays put
keeps its value.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reverie.nn.diffusion.ddpm import CLEAN

KINDS = ("full_sequence", "pyramid", "autoregressive")


def scheduling_matrix(frames: int, steps: int, kind: str) -> Tensor:
    """-> (rows, frames) int64 in [0, steps]: the denoising steps left per frame at each iteration."""
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"scheduling_matrix: frames must be an int >= 1, got {frames!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"scheduling_matrix: steps must be an int >= 1, got {steps!r}")
    lags = {"full_sequence": 0, "pyramid": 1, "autoregressive": steps}
    if kind not in lags:
        raise ValueError(f"scheduling_matrix: kind must be one of {KINDS}, got {kind!r}")
    lag = lags[kind]
    rows = steps + lag * (frames - 1) + 1
    iteration = torch.arange(rows)[:, None]  # (rows, 1)
    frame = torch.arange(frames)[None, :]  # (1, frames)
    return (steps + lag * frame - iteration).clip(0, steps)


def step_levels(steps: int, train_levels: int) -> Tensor:
    """-> (steps + 1,) int64, strictly increasing: the DDPM level of each entry value 0 ... steps."""
    if not isinstance(train_levels, int) or train_levels < 1:
        raise ValueError(f"step_levels: train_levels must be an int >= 1, got {train_levels!r}")
    if not isinstance(steps, int) or not 1 <= steps <= train_levels:
        raise ValueError(f"step_levels: steps must be an int in [1, train_levels = {train_levels}], got {steps!r}")
    # trailing spacing: entry i is level round(i T / steps) - 1, so entry 0 is CLEAN = -1; computed
    # exactly, where diffusers' float arange can round a tie (i T / steps = k + 1/2) the other way
    ends = (torch.arange(steps + 1, dtype=torch.float64) * train_levels / steps).round().long()
    return ends + CLEAN
