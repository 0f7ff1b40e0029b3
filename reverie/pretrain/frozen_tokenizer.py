"""The video tokenizer inside a world model that predicts its codes or latents ([14] IRIS and [18]
Genie over discrete tokens, [24] Oasis and [19] Genie 2 over continuous latents).

A world model is trained with `tokenizer: PATH`, a model folder of a video tokenizer
(`reverie.tokenizers.latents.video_tokenizer`). Building it loads that folder and records what it
holds (the tokenizer's registry name, config and `model_id`) in place of the path, and the
tokenizer's weights become part of the world model's state dict: the world model's own folder is
then whole, and loading it rebuilds the tokenizer from the record without the original folder.

The tokenizer is frozen: no gradients, always in eval mode. World models step one frame at a time,
so it must not compress time (s_T = 1: ST-ViViT, or the causal video autoencoder at temporal
compression 1); frame t's codes are latent frame t. A batch may bring its codes already encoded
(latent shards of `reverie tokenize` from this very tokenizer: `tokens` or `latents`) or bring
frames, which are encoded here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.shards.clip_tensors import PayloadMismatchError
from reverie.tokenizers.latents import model_identity, video_tokenizer


class TokenizerChoiceError(ValueError):
    """A tokenizer a world model cannot use, or a record of one it cannot rebuild; names it."""


class FrozenTokenizer(nn.Module):
    def __init__(self, source: str | Path | dict):
        """source: a tokenizer's model folder, or the `record` of one (as a world model's config holds it)."""
        super().__init__()
        if isinstance(source, (str, Path)):
            model = video_tokenizer(source)
            self.record = {"model": model.registry_name, "config": dataclasses.asdict(model.config), "model_id": model_identity(source)}
            where = str(source)
        else:
            missing = [field for field in ("model", "config", "model_id") if field not in source]
            if missing:
                raise TokenizerChoiceError(f"tokenizer record lacks {', '.join(missing)}; give a tokenizer's model folder or a world model's recorded tokenizer")
            model_class = MODELS.get(source["model"])
            model = video_tokenizer(model_class(model_class.config_class(**source["config"])))
            self.record, where = dict(source), f"recorded tokenizer {source['model']}"
        if model.compression[0] != 1:
            raise TokenizerChoiceError(
                f"{where}: compresses time {model.compression[0]}x; a world model steps one frame at a time and needs "
                "a per-frame tokenizer (temporal compression 1: st_vivit_tokenizer, or causal_video_autoencoder with temporal_compression 1)"
            )
        self.model = model.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> FrozenTokenizer:
        """Frozen: the tokenizer stays in eval mode whatever the world model around it does."""
        super().train(mode)
        self.model.eval()
        return self

    @property
    def discrete(self) -> bool:
        return self.model.discrete

    @property
    def codebook_size(self) -> int | None:
        return self.model.codebook_size

    @property
    def latent_channels(self) -> int:
        return self.model.latent_channels

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w): the code grid of one height x width frame."""
        _, _, grid_height, grid_width = self.model.latent_shape(1, height, width)
        return grid_height, grid_width

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> codes (B, T, h, w) int64, or latents (B, T, C, h, w)."""
        if self.discrete:
            return self.model.tokenize(frames)
        return rearrange(self.model.encode(frames), "b c t h w -> b t c h w")

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, h, w) or latents (B, T, C, h, w) -> frames (B, T, 3, H, W) in [0, 1]."""
        if self.discrete:
            return self.model.decode_indices(codes)
        return self.model.decode(rearrange(codes, "b t c h w -> b c t h w"))

    @torch.no_grad()
    def decode_last(self, codes: torch.Tensor) -> torch.Tensor:
        """The last frame (B, 3, H, W) of a window's codes (B, T, h, w) or latents (B, T, C, h, w): a
        tokenizer that maps each frame alone (`per_frame`) decodes the last frame's codes only, a
        causal one the whole window."""
        return self.decode(codes[:, -1:] if getattr(self.model, "per_frame", False) else codes)[:, -1]

    def codes_of(self, batch: dict) -> torch.Tensor:
        """A loader batch's codes (B, T, h, w) or latents (B, T, C, h, w): its own, when it is a latent
        shard's of this tokenizer, else its frames encoded; PayloadMismatchError naming a shard of
        another tokenizer or of the other kind."""
        payload = "tokens" if self.discrete else "latents"
        wanted = f"{payload} of {self.record['model']} {self.record['model_id']}"
        for index, meta in enumerate(batch.get("meta") or []):
            made_by = (meta or {}).get("tokenizer") or {}
            if made_by and (made_by.get("model_id") != self.record["model_id"] or made_by.get("payload") != payload):
                shard = batch["shard"][index] if "shard" in batch else "?"
                raise PayloadMismatchError(
                    f"{shard}: holds {made_by.get('payload')} of {made_by.get('name')!r} {made_by.get('model_id')}, but this world model "
                    f"predicts {wanted}; tokenize the frames with that model, or train on the frames"
                )
        if payload in batch:
            return batch[payload]
        if "frames" not in batch:
            raise PayloadMismatchError(f"a batch of {', '.join(sorted(batch))}: neither frames nor {wanted}")
        return self.encode(batch["frames"])


def frozen_tokenizer(source: str | Path | dict, discrete: bool, why: str) -> FrozenTokenizer:
    """The FrozenTokenizer of `source`, or TokenizerChoiceError when its latents are not the kind
    (discrete codes or continuous latents) that the model, for the reason `why`, needs."""
    tokenizer = FrozenTokenizer(source)
    if tokenizer.discrete != discrete:
        held = "discrete codes" if tokenizer.discrete else "continuous latents"
        needed = "a discrete bottleneck (fsq, vq, lfq)" if discrete else "a continuous bottleneck (ae, vae)"
        raise TokenizerChoiceError(f"tokenizer {tokenizer.record['model']} {tokenizer.record['model_id']}: {held}; {why}: it needs {needed}")
    return tokenizer
