"""The ST-ViViT video tokenizer of Genie ([18] Bruce et al. 2024, Sec. 2.1, "Video Tokenizer"): a
VQ-VAE whose encoder and decoder are ST-transformers (`reverie.tokenizers.st_transformer`), causal
in time, mapping T frames to T frames of discrete tokens and back,

    z_{1:T} = VQ(E(x_{1:T})),    x^_{1:T} = D(z_{1:T}),    x_t in [0, 1]^{H x W x 3},  z_t in [K]^{H/p x W/p},

where each z_t depends on frames x_{1:t} only (Genie: "each discretized latent z_t contains
information from all previously seen frames"), and so does each decoded frame on z_{1:t}.

Encoder: each frame is cut into p x p patches (`patch_size`; no patching in time), each patch
linearly embedded, then an ST-transformer and a linear projection to the code dimension D
(`latent_dim`), then the VQ bottleneck (`reverie.nn.quantizers`, "vq": nearest of K codes,
straight-through, EMA codebook, commitment term). Decoder: a linear projection of the quantized
latents to its width, an ST-transformer, a linear map of each token to its p x p x 3 patch, and a
sigmoid (Genie's inputs are in [0, 1] and its decoder's outputs go through a sigmoid, Appendix).
The compression is thus 1 in time and p in space.

Loss, Genie's "standard VQ-VAE objective" over the whole clip (VQ-VAE eq. 3, with the codebook term
replaced by the quantizer's moving averages):

    L = mse_weight |x^ - x|^2 + l1_weight |x^ - x|_1 + beta |E(x) - sg[z]|^2    (means over values)

through `reverie.tokenizers.objective`, which also adds an LPIPS term (`perceptual`) and a patch-GAN
term (`adversarial`) when they are switched on; Genie's tokenizer trains without them.

Sizes. From the paper (Appendix, video tokenizer hyperparameters): encoder 12 layers of width 512
with 8 heads, decoder 20 layers of width 1024 with 16 heads (key/query size 64 both), 1024 codes
of dimension 32, patch size 4; `configs/tokenizers/genie_st_vivit.yaml`. Not from the paper: the
MLP ratio (4, the transformer default), the position encoding (3D RoPE), the LayerNorm epsilon.
The paper reports the tokenizer at about 200M parameters; these sizes with a 4x MLP give about
386M here (the attention layers alone are about 193M), and the paper does not say which part of
its count differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.nn.quantizers import Quantized, build_quantizer
from reverie.tokenizers.causal_video_autoencoder import TokenizerConfigError
from reverie.tokenizers.clip_shape import FrameShapeError, check_clip_size, clip_size
from reverie.tokenizers.objective import TokenizerObjective
from reverie.tokenizers.st_transformer import STBlock, STTransformer


@dataclass
class STViViTConfig:
    patch_size: int = 4  # p: Genie's, p x p pixels of one frame per token
    image_channels: int = 3
    encoder_width: int = 512  # Genie's encoder: 12 layers of 512, 8 heads
    encoder_depth: int = 12
    encoder_heads: int = 8
    decoder_width: int = 1024  # Genie's decoder: 20 layers of 1024, 16 heads
    decoder_depth: int = 20
    decoder_heads: int = 16
    mlp_ratio: float = 4.0  # MLP hidden width / width; not in the paper
    norm_eps: float = 1e-5
    latent_dim: int = 32  # D, the width of a code; Genie's 32
    codebook_size: int = 1024  # K; Genie's 1024
    quantizer: dict = field(default_factory=dict)  # further options of the "vq" quantizer (VQConfig), e.g. dead_code_threshold
    mse_weight: float = 1.0
    l1_weight: float = 0.0
    adversarial: dict = field(default_factory=dict)  # AdversarialConfig: a patch-GAN term with weight > 0 (off by default)
    perceptual: dict = field(default_factory=dict)  # PerceptualConfig: LPIPS from a local lpips_weights file (off by default)

    def __post_init__(self):
        if self.patch_size < 1:
            raise TokenizerConfigError(f"patch_size must be >= 1, got {self.patch_size}")
        if "codebook_size" in self.quantizer:
            raise TokenizerConfigError("quantizer.codebook_size: set the tokenizer's codebook_size instead")


@MODELS.register("st_vivit_tokenizer")
class STViViTTokenizer(nn.Module):
    registry_name = "st_vivit_tokenizer"
    config_class = STViViTConfig
    checkpoint_blocks = (STBlock,)  # what FSDP wraps and activation checkpointing recomputes

    def __init__(self, config: STViViTConfig):
        super().__init__()
        self.config = config
        patch_values = config.patch_size**2 * config.image_channels
        self.patch_embedding = nn.Linear(patch_values, config.encoder_width)
        self.encoder = STTransformer(config.encoder_width, config.encoder_depth, config.encoder_heads, config.mlp_ratio, config.norm_eps)
        self.to_latent = nn.Linear(config.encoder_width, config.latent_dim)
        self.quantizer = build_quantizer("vq", config.latent_dim, codebook_size=config.codebook_size, **config.quantizer)
        self.from_latent = nn.Linear(config.latent_dim, config.decoder_width)
        self.decoder = STTransformer(config.decoder_width, config.decoder_depth, config.decoder_heads, config.mlp_ratio, config.norm_eps)
        self.to_patch = nn.Linear(config.decoder_width, patch_values)
        self.objective = TokenizerObjective(config.l1_weight, config.mse_weight, config.adversarial, config.perceptual, config.image_channels)

    @property
    def compression(self) -> tuple[int, int, int]:
        """(s_T, s_H, s_W): one token frame per frame, one token per p x p pixels."""
        return 1, self.config.patch_size, self.config.patch_size

    @property
    def latent_channels(self) -> int:
        return self.config.latent_dim

    @property
    def discrete(self) -> bool:
        return True

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(D, T, h, w) of the latents of one clip of `frames` frames of height x width."""
        patch = self.config.patch_size
        check_clip_size(frames, height, width, patch, "patch size")
        return self.latent_channels, frames, height // patch, width // patch

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> the encoder's latents before quantization, (B, D, T, h, w)."""
        clip_size(frames, self.config.image_channels, self.config.patch_size, "patch size")
        patches = rearrange(frames, "b t c (h p1) (w p2) -> b t h w (p1 p2 c)", p1=self.config.patch_size, p2=self.config.patch_size)
        tokens = self.encoder(self.patch_embedding(patches))
        return rearrange(self.to_latent(tokens), "b t h w d -> b d t h w")

    def quantize(self, frames: torch.Tensor) -> Quantized:
        """Frames (B, T, 3, H, W) in [0, 1] -> latents (B, D, T, h, w), codes (B, T, h, w) and the VQ's loss terms."""
        return self.quantizer(self.features(frames))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> quantized latents (B, D, T, h, w)."""
        return self.quantize(frames).latents

    def tokenize(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> codes (B, T, h, w) int64 in [0, codebook_size)."""
        return self.quantize(frames).indices

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, D, T, h, w) -> frames (B, T, 3, h p, w p) in [0, 1]."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise FrameShapeError(f"latents of shape {tuple(latents.shape)}: expected (B, {self.latent_channels}, T, h, w)")
        tokens = self.decoder(self.from_latent(rearrange(latents, "b d t h w -> b t h w d")))
        patches = torch.sigmoid(self.to_patch(tokens))
        return rearrange(patches, "b t h w (p1 p2 c) -> b t c (h p1) (w p2)", p1=self.config.patch_size, p2=self.config.patch_size)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, h, w) -> frames (B, T, 3, h p, w p) in [0, 1]."""
        return self.decode(self.quantizer.indices_to_latents(indices))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [0, 1] -> their reconstruction through the codes, the same shape."""
        return self.decode(self.encode(frames))

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss terms on a loader batch (`frames` (B, T, 3, H, W) in [0, 1]); `loss` is what is minimised."""
        frames = batch["frames"]
        quantized = self.quantize(frames)
        reconstruction = self.decode(quantized.latents)
        terms = self.objective(frames, reconstruction, self.to_patch.weight)
        return terms | {"loss": terms["loss"] + sum(quantized.losses.values(), 0.0)} | quantized.losses

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.objective.set_step(step)
