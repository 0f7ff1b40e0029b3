"""The discrete autoencoder of [14] IRIS (Micheli et al. 2023, "Transformers are Sample Efficient
World Models", Sec. 2.1 and Appendix A): each frame alone to a grid of codes from a learned
vocabulary, and back.

    z = E(x)                       a frame (3, H, W) -> (D, H / 2^k, W / 2^k), k stride-2 stages
    z_q = VQ(z)                    each position's nearest code of K (`reverie.nn.quantizers.vq`)
    x^ = D(z_q)
    L = |x - x^|_1 + beta |z - sg[z_q]|^2

IRIS's Atari tokenizer turns a 64 x 64 frame into 4 x 4 = 16 tokens of a 512-code vocabulary
(four stride-2 stages, codes 512 wide). Its encoder and decoder are VQGAN's residual networks
with attention; these are the stride-2 convolutional stages of `reverie.tokenizers.
frame_autoencoder` (GroupNorm, SiLU), a deviation in depth, and the codebook follows the encoder
by moving averages, with dead-code restarts, where IRIS learns it by its codebook loss. IRIS also
adds a perceptual (LPIPS) term, which needs weights this library cannot download; it is off here.

It is a video tokenizer of `reverie.tokenizers.latents` that compresses space only (s_T = 1) and
treats the frames of a clip independently, so it is what a world model that steps one frame at a
time needs (`reverie.pretrain.frozen_tokenizer`): frames (B, T, 3, H, W) in [0, 1], latents
(B, D, T, h, w), codes (B, T, h, w).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.nn.quantizers import build_quantizer
from reverie.tokenizers.clip_shape import check_clip_size
from reverie.tokenizers.frame_autoencoder import DownBlock, UpBlock


@dataclass
class DiscreteFrameAutoencoderConfig:
    channels: list[int] = field(default_factory=lambda: [64, 64, 128, 128])  # one stride-2 stage each; IRIS: 4 stages (64 -> 4 x 4)
    latent_channels: int = 256  # D, the width of a code; IRIS: 512
    codebook_size: int = 512  # K; IRIS: 512
    commitment_weight: float = 0.25  # beta
    dead_code_threshold: float = 1.0  # restart codes used less than this per batch on average; 0: never
    image_channels: int = 3


@MODELS.register("discrete_frame_autoencoder")
class DiscreteFrameAutoencoder(nn.Module):
    registry_name = "discrete_frame_autoencoder"
    config_class = DiscreteFrameAutoencoderConfig
    discrete = True
    per_frame = True  # each frame's codes depend on that frame alone

    def __init__(self, config: DiscreteFrameAutoencoderConfig):
        super().__init__()
        self.config = config
        widths = [config.image_channels, *config.channels]
        self.encoder = nn.Sequential(*[DownBlock(a, b) for a, b in zip(widths[:-1], widths[1:])], nn.Conv2d(widths[-1], config.latent_channels, 1))
        self.quantizer = build_quantizer(
            "vq", config.latent_channels, codebook_size=config.codebook_size, commitment_weight=config.commitment_weight,
            dead_code_threshold=config.dead_code_threshold,
        )  # fmt: skip
        back = widths[::-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(config.latent_channels, back[0], 1),
            *[UpBlock(a, b) for a, b in zip(back[:-2], back[1:-1])],
            nn.ConvTranspose2d(back[-2], config.image_channels, 4, stride=2, padding=1),
        )

    @property
    def compression(self) -> tuple[int, int, int]:
        stride = 2 ** len(self.config.channels)
        return 1, stride, stride

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(D, T, h, w) of the latents of one clip of `frames` frames of height x width."""
        stride = self.compression[1]
        check_clip_size(frames, height, width, stride, "spatial compression")
        return self.latent_channels, frames, height // stride, width // stride

    def quantized(self, frames: torch.Tensor):
        """Frames (B, T, 3, H, W) in [0, 1] -> the quantizer's output on the (B T) frames."""
        check_clip_size(frames.shape[1], frames.shape[-2], frames.shape[-1], self.compression[1], "spatial compression")
        return self.quantizer(self.encoder(rearrange(frames, "b t c h w -> (b t) c h w") * 2 - 1))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> quantized latents (B, D, T, h, w)."""
        return rearrange(self.quantized(frames).latents, "(b t) d h w -> b d t h w", b=frames.shape[0])

    def tokenize(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> codes (B, T, h, w) int64."""
        return rearrange(self.quantized(frames).indices, "(b t) h w -> b t h w", b=frames.shape[0])

    def pixels(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, D, T, h, w) -> frames (B, T, 3, H, W), about [0, 1] but not clamped."""
        frames = (self.decoder(rearrange(latents, "b d t h w -> (b t) d h w")) + 1) / 2
        return rearrange(frames, "(b t) c h w -> b t c h w", b=latents.shape[0])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, D, T, h, w) -> frames (B, T, 3, H, W) in [0, 1]."""
        return self.pixels(latents).clamp(0, 1)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, h, w) -> frames (B, T, 3, H, W) in [0, 1]."""
        latents = self.quantizer.indices_to_latents(rearrange(indices, "b t h w -> (b t) h w"))
        return self.decode(rearrange(latents, "(b t) d h w -> b d t h w", b=indices.shape[0]))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> their reconstruction through the codes."""
        return self.decode(self.encode(frames))

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """L1 of the reconstruction plus the commitment term, on `frames` (B, T, 3, H, W) in [0, 1]."""
        frames = batch["frames"]
        quantized = self.quantized(frames)
        reconstruction = self.pixels(rearrange(quantized.latents, "(b t) d h w -> b d t h w", b=frames.shape[0]))
        terms = {"l1": F.l1_loss(reconstruction, frames), **quantized.losses}
        return terms | {"loss": sum(terms.values())}
