"""The figure of benchmarks/world_models.py: rollout PSNR per step for each model (GameNGen's
variants, DIAMOND's samplers, the families side by side), and one held-out rollout as a strip of
frames per model beside the real frames."""

from __future__ import annotations

import os
from pathlib import Path

import torch

SHOWN_STEPS = (1, 5, 10, 25, 50)
PANELS = {  # title -> the curves it shows (names in the results)
    "GameNGen Fig. 4: noise in the context": ("DIAMOND EDM, 3 steps", "DIAMOND EDM + context noise, 3 steps", "DiT diffusion forcing, 10 steps"),
    "DIAMOND: EDM against DDPM": ("DIAMOND EDM, 3 steps", "DIAMOND EDM, 1 step", "DIAMOND DDPM, 3 steps", "DIAMOND DDPM, 1 step"),
    "the three families": ("IRIS GPT", "DIAMOND EDM, 3 steps", "DiT diffusion forcing, 10 steps"),
}


def psnr_figure(path: Path, curves: dict[str, list[float]], strips: dict[str, torch.Tensor]) -> None:
    """curves: name -> PSNR per rollout step; strips: name -> (steps, 3, H, W) frames in [0, 1], "real" first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(strips)
    figure = plt.figure(figsize=(13, 3.2 + 1.1 * rows))
    grid = figure.add_gridspec(2, 1, height_ratios=[3.2, 1.1 * rows])
    panels = grid[0].subgridspec(1, len(PANELS))
    baseline = curves.get("last frame (baseline)")
    for column, (title, names) in enumerate(PANELS.items()):
        axis = figure.add_subplot(panels[column])
        for name in names:
            axis.plot(range(1, len(curves[name]) + 1), curves[name], label=name)
        if baseline is not None:
            axis.plot(range(1, len(baseline) + 1), baseline, "k--", label="last frame (baseline)")
        axis.set_title(title, fontsize=9), axis.set_xlabel("rollout step", fontsize=8), axis.set_ylabel("PSNR (dB)", fontsize=8)
        axis.legend(fontsize=6), axis.tick_params(labelsize=7)
    frames = grid[1].subgridspec(rows, len(SHOWN_STEPS))
    for row, (name, strip) in enumerate(strips.items()):
        for column, step in enumerate(SHOWN_STEPS):
            axis = figure.add_subplot(frames[row, column])
            axis.imshow(strip[step - 1].permute(1, 2, 0).clamp(0, 1).numpy())
            axis.set_xticks([]), axis.set_yticks([])
            if row == 0:
                axis.set_title(f"step {step}", fontsize=8)
            if column == 0:
                axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    figure.tight_layout()
    partial = path.with_name(path.name + ".tmp.png")
    figure.savefig(partial, dpi=100)
    plt.close(figure)
    os.replace(partial, path)
