"""A trained latent action model inside Genie's dynamics model ([18] Bruce et al. 2024, Sec. 2.1,
"Training"): the LAM labels each training window of unlabeled video with its inferred latent
actions, a_t = LAM(x_1 .. x_{t+1}), and the dynamics model learns p(z_{t+1} | z_{<=t}, a_{<=t}) on
those labels. The video's own actions, where it has any, are never read.

Genie trains the tokenizer first and then the LAM and the dynamics model together; reverie trains
them one after another (tokenizer, LAM, dynamics), each through `reverie train`, so the dynamics
model reads a finished LAM's codes. A dynamics model is built with `latent_action_model: PATH`, a
LAM's model folder. As with the frozen tokenizer (`reverie.pretrain.frozen_tokenizer`), building
records the LAM (registry name, config, `model_id`) in place of the path, and its weights become
part of the dynamics model's state dict, so the dynamics model's folder is whole: evaluation reads
the latent actions of real clips from it (`reverie.pretrain.genie_evaluation`). At play time the
LAM is not used; the player picks the latent action.

The LAM is frozen: no gradients, always in eval mode, its codebook never moves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from reverie.nn.model_folder import MODELS, load_model_folder
from reverie.pretrain.latent_actions import LatentActionModel
from reverie.tokenizers.latents import model_identity


class LatentActionChoiceError(ValueError):
    """A folder or record that is not a latent action model, or a batch it cannot label; names it."""


class FrozenLatentActions(nn.Module):
    def __init__(self, source: str | Path | dict):
        """source: a latent action model's folder, or the `record` of one (as a dynamics model's config holds it)."""
        super().__init__()
        if isinstance(source, (str, Path)):
            model = load_model_folder(source)
            if not isinstance(model, LatentActionModel):
                raise LatentActionChoiceError(f"{source}: holds a {model.registry_name}, not a latent_action_model (train one with configs/genie/lam_*.yaml)")
            self.record = {"model": model.registry_name, "config": dataclasses.asdict(model.config), "model_id": model_identity(source)}
        else:
            missing = [field for field in ("model", "config", "model_id") if field not in source]
            if missing or source.get("model") != LatentActionModel.registry_name:
                raise LatentActionChoiceError(
                    f"latent action record of {source.get('model')!r} lacks {', '.join(missing) or 'nothing'}; give a latent_action_model's folder"
                )
            model = MODELS.get(source["model"])(LatentActionModel.config_class(**source["config"]))
            self.record = dict(source)
        self.model = model.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> FrozenLatentActions:
        """Frozen: the LAM stays in eval mode whatever the dynamics model around it does."""
        super().train(mode)
        self.model.eval()
        return self

    @property
    def num_actions(self) -> int:
        return self.model.config.num_actions

    @torch.no_grad()
    def infer(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W) in [0, 1] -> the latent action of each transition (B, T - 1) int64."""
        return self.model.infer_actions(frames)

    @torch.no_grad()
    def latents(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W) in [0, 1] -> the continuous latent actions a~ (B, T - 1, D), before the VQ."""
        return self.model.encode(self.model.frame_inputs({"frames": frames}))

    def actions_of(self, batch: dict) -> torch.Tensor:
        """A loader batch's latent actions (B, T - 1), from its frames; LatentActionChoiceError
        naming a batch without frames (a token shard: train the dynamics model on the frames)."""
        if "frames" not in batch:
            raise LatentActionChoiceError(
                f"a batch of {', '.join(sorted(batch))}: the latent action model labels frames; train the dynamics model on frame shards"
            )
        return self.infer(batch["frames"])
