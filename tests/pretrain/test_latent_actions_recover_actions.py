"""Genie's claim for its latent action model [18], small: on video whose only change is what an
unseen action did, the LAM's codes come to name the actions. Each clip shows a square that every
action moves 4 px up, down, left or right; the LAM trains on the frames alone, and the NMI of its
codes with the withheld actions on held-out clips must pass a bar that chance (about 0.01 on this
many transitions) and a collapsed codebook (0) do not reach. Slow: about 2 minutes on one core."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from reverie.pretrain.latent_action_metrics import normalized_mutual_information, shuffled_nmi
from reverie.pretrain.latent_actions import LatentActionModel, LatentActionModelConfig

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "genie"
MOVES = torch.tensor([[0, 4], [0, -4], [4, 0], [-4, 0]])  # (row, column) steps of the 4 actions
SIZE, SIDE, FRAMES = 32, 8, 4


def moved_squares(clips: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames (N, T, 3, 32, 32) in [0, 1], actions (N, T) int64): a square of a random colour that
    action t moves from frame t to frame t + 1, held inside the frame."""
    generator = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, len(MOVES), (clips, FRAMES), generator=generator)
    corners = torch.randint(0, SIZE - SIDE, (clips, 2), generator=generator)
    colours = torch.rand(clips, 3, generator=generator) * 0.7 + 0.3
    frames = torch.zeros(clips, FRAMES, 3, SIZE, SIZE)
    for time in range(FRAMES):
        for clip, (row, column) in enumerate(corners.tolist()):
            frames[clip, time, :, row : row + SIDE, column : column + SIDE] = colours[clip, :, None, None]
        corners = (corners + MOVES[actions[:, time]]).clamp(0, SIZE - SIDE)
    return frames, actions


def test_the_lams_codes_come_to_name_actions_it_never_saw():
    fields = OmegaConf.to_container(OmegaConf.load(CONFIGS / "lam_tiny.yaml").model)
    fields.pop("name")
    torch.manual_seed(0)
    model = LatentActionModel(LatentActionModelConfig(**fields)).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    for step in range(1500):
        frames, _ = moved_squares(16, seed=step)
        loss = model.training_losses({"frames": frames})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out, actions = moved_squares(256, seed=10_000)
    codes = model.infer_actions(held_out).flatten()
    true = actions[:, : FRAMES - 1].flatten()
    nmi, chance = normalized_mutual_information(codes, true), shuffled_nmi(codes, true, torch.Generator().manual_seed(0))
    assert nmi > 0.3 and nmi > 10 * chance, (nmi, chance)
