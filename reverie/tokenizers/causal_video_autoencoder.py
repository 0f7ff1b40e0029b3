"""The causal video autoencoder of the Cosmos tokenizers ([25] NVIDIA 2025, Sec. 4, "Tokenizer"),
continuous (Cosmos-Tokenizer CV, a plain AE or a VAE) or discrete (DV, through a quantizer).

A clip of 1 + T frames is encoded into 1 + T' latent frames and decoded back,

    z_{0:T'} = E(x_{0:T}),    x^_{0:T} = D(z_{0:T'}),    T' = T / s_T,  H' = H / s_HW,  W' = W / s_HW,

temporally causal throughout: latent frame j depends on frames 0 .. j s_T only, so the latents of a
prefix of a clip are the prefix of its latents, and latent frame 0 encodes the first frame alone
(an image is a one-frame video, T = 0).

The encoder is Cosmos's factorised one: the 3D Haar patcher (`reverie.tokenizers.haar`, p =
`patch_size`, which already compresses by p in time and space), a factorised causal conv, one
stage of causal residual blocks per entry m of `channel_multipliers` (width `channels` * m), a
hybrid downsampler after each of the first stages (the first log2(s_HW / p) halve height and
width, the first log2(s_T / p) halve time), a middle block (residual, space-time attention,
residual), then FrameNorm, SiLU and a conv to the latent channels. A config thus reaches the
compressions p 2^n for n < len(channel_multipliers); any other is a `TokenizerConfigError` that
lists those it reaches. The decoder mirrors the encoder (one more residual block per stage, as in
Cosmos) and ends with the inverse patcher. The blocks are in `reverie.tokenizers.causal_video_blocks`;
every norm is per frame and every conv pads only the past, which is what keeps the model causal.
Cosmos's configs can also put attention inside the stages (`attn_resolutions`); here it is in the
middle blocks only.

Bottlenecks (`bottleneck`):
- `ae`: the latents are the encoder's output (Cosmos's CV formulation);
- `vae`: the encoder gives a mean and a log-variance per latent value; training samples
  z = mu + sigma eps and adds kl_weight * KL, with KL(q(z|x) || N(0, I)) =
  0.5 mean(mu^2 + sigma^2 - 1 - log sigma^2) averaged over latent values; outside training z = mu;
- `fsq`, `vq`, `lfq`: `reverie.nn.quantizers.build_quantizer(bottleneck, latent_channels,
  **quantizer)` quantizes the latents (straight-through); its loss terms come weighted already.
  Cosmos's DV tokenizers use FSQ.

Loss (`reverie.tokenizers.objective`): l1_weight |x^ - x|_1 + mse_weight |x^ - x|^2 (means over
pixels) plus the bottleneck's terms, and, when switched on, the LPIPS term (`perceptual`, from a
local weights file) and the patch-GAN term with VQGAN's adaptive weight (`adversarial`), as Cosmos
fine-tunes with. Cosmos's optical-flow and Gram-matrix losses are not here.

Frames come in as (B, N, 3, H, W) floats in [0, 1]; H and W must divide by s_HW (`FrameShapeError`
naming the sizes otherwise). A count N that is not 1 + k s_T is padded by repeating the last frame
up to the next one, 1 + ceil((N - 1) / s_T) s_T, so that no frame is dropped: `encode` returns
1 + ceil((N - 1) / s_T) latent frames (the padding touches the last one only), `forward` and the
loss cut the reconstruction back to the N input frames, and `decode` of N' latent frames returns
1 + (N' - 1) s_T frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from reverie.nn.causal_conv3d import factorized_causal_conv3d
from reverie.nn.model_folder import MODELS
from reverie.tokenizers import haar
from reverie.tokenizers.causal_video_blocks import CausalDownsample, CausalResBlock, CausalUpsample, FrameNorm, SpaceTimeAttention
from reverie.tokenizers.clip_shape import FrameShapeError, check_clip_size, clip_size
from reverie.tokenizers.objective import TokenizerObjective

PATCHERS = ("none", "haar")
CONTINUOUS = ("ae", "vae")
DISCRETE = ("fsq", "vq", "lfq")


@dataclass
class CausalVideoAutoencoderConfig:
    temporal_compression: int = 8  # s_T: 1 + k s_T frames -> 1 + k latent frames
    spatial_compression: int = 8  # s_HW: H x W frames -> H / s_HW x W / s_HW latents
    patcher: str = "haar"  # none | haar
    patch_size: int = 4  # the Haar patcher's p, in time and space alike; unused with patcher none
    channels: int = 128  # width after the first conv
    channel_multipliers: list[int] = field(default_factory=lambda: [2, 4, 4])  # a stage each, width channels * m
    num_res_blocks: int = 2  # per encoder stage; the decoder has one more
    mid_attention: bool = True  # space-time attention in the middle blocks
    latent_channels: int = 16  # C of the latents; for a quantizer, its dimension
    image_channels: int = 3
    bottleneck: str = "ae"  # ae | vae | fsq | vq | lfq
    kl_weight: float = 1e-4  # vae only: weight of the per-value mean KL
    quantizer: dict = field(default_factory=dict)  # fsq | vq | lfq: options for build_quantizer
    l1_weight: float = 1.0
    mse_weight: float = 0.0
    adversarial: dict = field(default_factory=dict)  # AdversarialConfig: a patch-GAN term with weight > 0 (off by default)
    perceptual: dict = field(default_factory=dict)  # PerceptualConfig: LPIPS from a local lpips_weights file (off by default)


class TokenizerConfigError(ValueError):
    """A causal video autoencoder config that cannot be built or used so; names the field."""


@dataclass
class Encoded:
    latents: torch.Tensor  # (B, C, T', H', W'): what the decoder reads
    indices: torch.Tensor | None  # (B, T', H', W') int64 codes of a discrete bottleneck
    terms: dict[str, torch.Tensor]  # the bottleneck's loss terms, as logged
    penalty: torch.Tensor | float  # what they add to the loss


def downsampling_stages(config: CausalVideoAutoencoderConfig) -> tuple[int, int]:
    """(temporal, spatial): how many encoder stage boundaries halve time and space after the
    patcher; TokenizerConfigError naming the compressions this config can reach otherwise."""
    if config.patcher not in PATCHERS:
        raise TokenizerConfigError(f"patcher {config.patcher!r}: not one of {', '.join(PATCHERS)}")
    patch = config.patch_size if config.patcher == "haar" else 1
    haar.levels_of(patch)
    boundaries = len(config.channel_multipliers) - 1
    reachable = [patch * 2**stages for stages in range(boundaries + 1)]
    counts = []
    for name, factor in (("temporal_compression", config.temporal_compression), ("spatial_compression", config.spatial_compression)):
        if factor not in reachable:
            how = f"patcher {config.patcher}" + (f" with patch_size {patch}" if config.patcher == "haar" else "")
            stages = f"{len(config.channel_multipliers)} channel_multipliers (room for {boundaries} downsamplers)"
            raise TokenizerConfigError(f"{name} {factor}: {how} and {stages} reach {', '.join(map(str, reachable))}")
        counts.append(int(math.log2(factor // patch)))
    return counts[0], counts[1]


def middle(width: int, attention: bool) -> list[nn.Module]:
    return [CausalResBlock(width, width), *([SpaceTimeAttention(width)] if attention else []), CausalResBlock(width, width)]


def build_encoder(config: CausalVideoAutoencoderConfig, temporal: int, spatial: int, fan_in: int, fan_out: int) -> nn.Sequential:
    """Patched video (B, fan_in, 1 + k s_T / p, H / p, W / p) -> (B, fan_out, 1 + k, H / s_HW, W / s_HW)."""
    width, layers = config.channels, [factorized_causal_conv3d(fan_in, config.channels)]
    for stage, multiplier in enumerate(config.channel_multipliers):
        for _ in range(config.num_res_blocks):
            layers.append(CausalResBlock(width, config.channels * multiplier))
            width = config.channels * multiplier
        if stage < max(temporal, spatial):
            layers.append(CausalDownsample(width, spatial=stage < spatial, temporal=stage < temporal))
    layers += [*middle(width, config.mid_attention), FrameNorm(width), nn.SiLU(), factorized_causal_conv3d(width, fan_out)]
    return nn.Sequential(*layers)


def build_decoder(config: CausalVideoAutoencoderConfig, temporal: int, spatial: int, fan_in: int, fan_out: int) -> nn.Sequential:
    """Latents (B, fan_in, 1 + k, H', W') -> patched video (B, fan_out, 1 + k s_T / p, H / p, W / p): the encoder's mirror."""
    widths = [config.channels * multiplier for multiplier in config.channel_multipliers]
    width = widths[-1]
    layers = [factorized_causal_conv3d(fan_in, width), *middle(width, config.mid_attention)]
    for stage in reversed(range(len(widths))):
        for _ in range(config.num_res_blocks + 1):
            layers.append(CausalResBlock(width, widths[stage]))
            width = widths[stage]
        if 0 < stage <= max(temporal, spatial):  # mirrors the encoder's downsampler after stage - 1
            layers.append(CausalUpsample(width, spatial=stage <= spatial, temporal=stage <= temporal))
    layers += [FrameNorm(width), nn.SiLU(), factorized_causal_conv3d(width, fan_out)]
    return nn.Sequential(*layers)


@MODELS.register("causal_video_autoencoder")
class CausalVideoAutoencoder(nn.Module):
    registry_name = "causal_video_autoencoder"
    config_class = CausalVideoAutoencoderConfig
    checkpoint_blocks = (CausalResBlock, SpaceTimeAttention)  # what FSDP wraps and activation checkpointing recomputes

    def __init__(self, config: CausalVideoAutoencoderConfig):
        super().__init__()
        if config.bottleneck not in CONTINUOUS + DISCRETE:
            raise TokenizerConfigError(f"bottleneck {config.bottleneck!r}: not one of {', '.join(CONTINUOUS + DISCRETE)}")
        self.config = config
        temporal, spatial = downsampling_stages(config)
        self.patch_size = config.patch_size if config.patcher == "haar" else 1  # a patch size of 1 is no transform
        patched = config.image_channels * self.patch_size**3
        encoded = 2 * config.latent_channels if config.bottleneck == "vae" else config.latent_channels  # vae: mean, log-variance
        self.encoder = build_encoder(config, temporal, spatial, patched, encoded)
        self.decoder = build_decoder(config, temporal, spatial, config.latent_channels, patched)
        self.quantizer = self.build_quantizer() if config.bottleneck in DISCRETE else None
        self.objective = TokenizerObjective(config.l1_weight, config.mse_weight, config.adversarial, config.perceptual, config.image_channels)

    def build_quantizer(self) -> nn.Module:
        from reverie.nn.quantizers import build_quantizer  # written beside this model; only discrete bottlenecks need it

        return build_quantizer(self.config.bottleneck, self.config.latent_channels, **self.config.quantizer)

    @property
    def compression(self) -> tuple[int, int, int]:
        """(s_T, s_H, s_W)."""
        return self.config.temporal_compression, self.config.spatial_compression, self.config.spatial_compression

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def discrete(self) -> bool:
        return self.quantizer is not None

    @property
    def codebook_size(self) -> int | None:
        return self.quantizer.codebook_size if self.discrete else None

    def fitted_frames(self, frames: int) -> int:
        """The frame count a clip of `frames` is padded to: the least 1 + k s_T >= frames."""
        return 1 + math.ceil((frames - 1) / self.config.temporal_compression) * self.config.temporal_compression

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, T', H', W') of the latents of one clip of `frames` frames of height x width."""
        temporal, spatial, _ = self.compression
        check_clip_size(frames, height, width, spatial, "spatial compression")
        return self.latent_channels, 1 + (self.fitted_frames(frames) - 1) // temporal, height // spatial, width // spatial

    def video(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> video (B, 3, 1 + k s_T, H, W) in [-1, 1], the last frame repeated to fit."""
        count, _, _ = clip_size(frames, self.config.image_channels, self.config.spatial_compression, "spatial compression")
        padding = frames[:, -1:].expand(-1, self.fitted_frames(count) - count, -1, -1, -1)
        return rearrange(torch.cat([frames, padding], dim=1) * 2 - 1, "b t c h w -> b c t h w")

    def encode_all(self, frames: torch.Tensor) -> Encoded:
        """Frames (B, T, 3, H, W) in [0, 1] -> the latents, codes and loss terms of the bottleneck."""
        features = self.encoder(haar.patch(self.video(frames), self.patch_size))
        if self.config.bottleneck == "ae":
            return Encoded(features, None, {}, 0.0)
        if self.config.bottleneck == "vae":
            mean, log_variance = features.chunk(2, dim=1)
            log_variance = log_variance.clamp(-30.0, 20.0)
            kl = 0.5 * (mean**2 + log_variance.exp() - 1 - log_variance).mean()
            latents = mean + (0.5 * log_variance).exp() * torch.randn_like(mean) if self.training else mean
            return Encoded(latents, None, {"kl": kl}, self.config.kl_weight * kl)
        quantized = self.quantizer(features)
        return Encoded(quantized.latents, quantized.indices, dict(quantized.losses), sum(quantized.losses.values(), 0.0))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> latents (B, C, T', H', W'); vae: the mean outside training."""
        return self.encode_all(frames).latents

    def tokenize(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> codes (B, T', H', W') int64; discrete bottlenecks only."""
        self.require_discrete("tokenize")
        return self.encode_all(frames).indices

    def pixels(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, T', H', W') -> frames (B, 1 + (T' - 1) s_T, 3, H, W), about [0, 1] but not clamped."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise FrameShapeError(f"latents of shape {tuple(latents.shape)}: expected (B, {self.latent_channels}, T', H', W')")
        video = haar.unpatch(self.decoder(latents), self.patch_size)
        return (rearrange(video, "b c t h w -> b t c h w") + 1) / 2

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, T', H', W') -> frames (B, 1 + (T' - 1) s_T, 3, H, W) in [0, 1]."""
        return self.pixels(latents).clamp(0, 1)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes (B, T', H', W') -> frames (B, 1 + (T' - 1) s_T, 3, H, W) in [0, 1]; discrete bottlenecks only."""
        self.require_discrete("decode_indices")
        return self.decode(self.quantizer.indices_to_latents(indices))

    def require_discrete(self, method: str) -> None:
        if not self.discrete:
            raise TokenizerConfigError(f"{method}: bottleneck {self.config.bottleneck!r} is continuous; codes need one of {', '.join(DISCRETE)}")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> their reconstruction, the same shape, in [0, 1]."""
        return self.decode(self.encode(frames))[:, : frames.shape[1]]

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss terms on a loader batch (`frames` (B, T, 3, H, W) in [0, 1]); `loss` is what is minimised."""
        frames = batch["frames"]
        encoded = self.encode_all(frames)
        reconstruction = self.pixels(encoded.latents)[:, : frames.shape[1]]
        terms = self.objective(frames, reconstruction, self.decoder[-1][-1].conv.weight)  # the last factorized conv's time conv
        return terms | {"loss": terms["loss"] + encoded.penalty} | encoded.terms

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.objective.set_step(step)
