"""The tiny sampling world model of the play tests: pixel diffusion on 16 x 16 frames with 3
actions, its zero-initialised layers perturbed so that the noise and the actions count."""

from __future__ import annotations

from pathlib import Path

import torch

from reverie.nn.model_folder import MODELS, save_model_folder

TINY_PIXEL = dict(frame_size=[16, 16], context_frames=2, action_space={"kind": "discrete", "n": 3}, channels=[8, 16], res_blocks=1,
                  attention=[False, False], cond_channels=32)  # fmt: skip


def pixel_model_folder(folder: Path, **fields) -> Path:
    model_class = MODELS.get("pixel_diffusion_world_model")
    torch.manual_seed(0)
    model = model_class(model_class.config_class(**TINY_PIXEL | fields))
    with torch.no_grad():  # DIAMOND zero-initialises output layers; perturbed, every input counts
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return save_model_folder(model, folder)
