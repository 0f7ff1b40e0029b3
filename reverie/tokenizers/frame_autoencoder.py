"""A convolutional frame autoencoder: each frame to a (c, H/2^k, W/2^k) latent map and back.

The smallest real model of the stack: the training core's test model, and the per-frame spatial
autoencoder that latent world models start from. It follows the vision model V of World Models
([7] Ha and Schmidhuber 2018), stride-2 convolutions (kernel 4) down and transposed convolutions
up, with two deviations: it is deterministic (no KL term and no sampling; V is a VAE) and its
latent stays a spatial map instead of being flattened to one vector per frame, as the spatial
autoencoder of Oasis ([24] Decart & Etched 2024) keeps it. Encoder: k stride-2 convolutions with
GroupNorm and SiLU, then a 1x1 convolution to c channels; decoder: the mirror with transposed
convolutions; loss: mean squared error of the reconstruction, optionally plus an L1 term. Frames
come in as (B, T, C, H, W) floats in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn
import torch.nn.functional as F

from reverie.nn.model_folder import MODELS


@dataclass
class FrameAutoencoderConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # one stride-2 stage each
    latent_channels: int = 8
    image_channels: int = 3
    l1_weight: float = 0.0


class DownBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.conv = nn.Conv2d(fan_in, fan_out, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(min(8, fan_out), fan_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.norm(self.conv(x)))


class UpBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(fan_in, fan_out, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(min(8, fan_out), fan_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.norm(self.conv(x)))


@MODELS.register("frame_autoencoder")
class FrameAutoencoder(nn.Module):
    registry_name = "frame_autoencoder"
    config_class = FrameAutoencoderConfig
    checkpoint_blocks = (DownBlock, UpBlock)  # what activation checkpointing wraps

    def __init__(self, config: FrameAutoencoderConfig):
        super().__init__()
        self.config = config
        widths = [config.image_channels, *config.channels]
        self.encoder = nn.Sequential(
            *[DownBlock(a, b) for a, b in zip(widths[:-1], widths[1:])], nn.Conv2d(widths[-1], config.latent_channels, 1)
        )
        reversed_widths = widths[::-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(config.latent_channels, reversed_widths[0], 1),
            *[UpBlock(a, b) for a, b in zip(reversed_widths[:-2], reversed_widths[1:-1])],
            nn.ConvTranspose2d(reversed_widths[-2], config.image_channels, 4, stride=2, padding=1),
        )

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) in [0, 1] -> latents (B, T, c, h, w)."""
        batch = frames.shape[0]
        latents = self.encoder(rearrange(frames, "b t c h w -> (b t) c h w") * 2 - 1)
        return rearrange(latents, "(b t) c h w -> b t c h w", b=batch)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, T, c, h, w) -> frames (B, T, C, H, W) in [0, 1]."""
        batch = latents.shape[0]
        frames = (self.decoder(rearrange(latents, "b t c h w -> (b t) c h w")) + 1) / 2
        return rearrange(frames, "(b t) c h w -> b t c h w", b=batch)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(frames))

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss terms on a loader batch; `loss` is what is minimised."""
        frames = batch["frames"]
        reconstruction = self(frames)
        mse = F.mse_loss(reconstruction, frames)
        terms = {"mse": mse}
        if self.config.l1_weight:
            terms["l1"] = F.l1_loss(reconstruction, frames)
        terms["loss"] = mse + self.config.l1_weight * terms.get("l1", 0.0)
        return terms
