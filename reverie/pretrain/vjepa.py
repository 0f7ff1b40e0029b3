"""V-JEPA: video representations learned by predicting features of masked tubes.

V-JEPA 2 ([26] Assran et al. 2025, "V-JEPA 2: Self-Supervised Video Models Enable Understanding,
Prediction and Planning"), the pretraining recipe of V-JEPA 1 (Bardes et al. 2024, "Revisiting
Feature Prediction for Learning Visual Representations from Video") at scale. An encoder E sees
the context x_c of a clip (the tokens a multi-block 3D mask leaves, `reverie.pretrain.masks`); a
narrow predictor P gets E's context features plus a mask token at every target position and
predicts the target encoder's features there. The target encoder is an exponential moving average of E, updated after every optimizer
step with a momentum m that rises from 0.998 to 1.0 over training:

    loss = mean over mask sets | P(E(x_c), positions_y) - sg(LN(E_target(x))_y) |_1
    E_target <- m E_target + (1 - m) E

The targets come from the full, unmasked clip x through E_target, layer-normed over the feature
dimension, then restricted to the target positions y. Every clip is trained with both of V-JEPA's
mask sets (short-range and long-range), each with its own encoder pass.

`encode_frames` gives per-frame features from the target encoder, each frame repeated to fill one
tubelet and encoded alone, as V-JEPA 2-AC reads its frozen encoder.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.nn.transformer import TransformerBlock
from reverie.pretrain.hf_backbone import HFVideoEncoder
from reverie.pretrain.masks import LONG_RANGE, SHORT_RANGE, MaskSpec, sample_masks
from reverie.pretrain.video_vit import FeatureNorm, Predictor, TubeletEmbedding, VideoViT, gather_tokens, token_grid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VJEPAConfig:
    # the encoder (defaults: ViT-L/16 on 16 frames of 256 px, tubelets of 2 frames)
    backbone: str = "vit"  # vit: reverie's VideoViT | hf: the encoder of a local VJEPA2Model folder
    hf_folder: str | None = None  # with backbone: hf, a transformers save_pretrained folder
    frames: int = 16
    image_size: int = 256
    patch_size: int = 16
    tubelet_size: int = 2
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    positions: str = "rope"  # rope: 3D RoPE (V-JEPA 2) | learned: a learned position table
    # the predictor: narrower and shallower than the encoder
    predictor_dim: int = 384
    predictor_depth: int = 12
    predictor_heads: int = 12
    # training
    mask_sets: list[dict] = field(default_factory=lambda: [dict(SHORT_RANGE), dict(LONG_RANGE)])
    ema_momentum: list[float] = field(default_factory=lambda: [0.998, 1.0])  # start, end of training


def build_encoder(config: VJEPAConfig) -> nn.Module:
    if config.backbone == "hf":
        if not config.hf_folder:
            raise ValueError("backbone: hf needs hf_folder, a local VJEPA2Model folder")
        return HFVideoEncoder(config.hf_folder)
    if config.backbone != "vit":
        raise ValueError(f"backbone must be vit or hf, not {config.backbone!r}")
    return VideoViT(
        config.embed_dim,
        config.depth,
        config.num_heads,
        config.patch_size,
        config.tubelet_size,
        positions=config.positions,
        position_grid=position_grid(config, config.patch_size, config.tubelet_size),
        mlp_ratio=config.mlp_ratio,
    )


def position_grid(config: VJEPAConfig, patch_size: int, tubelet_size: int) -> tuple[int, int, int]:
    side = config.image_size // patch_size
    return (config.frames // tubelet_size, side, side)


@MODELS.register("vjepa")
class VJEPA(nn.Module):
    registry_name = "vjepa"
    config_class = VJEPAConfig
    # what the trainer wraps (sharding units, activation checkpointing). Every encoder parameter is
    # in one of these, so a wrapper splits the online and target encoders alike and the EMA update
    # still pairs their parameters one to one (tests/pretrain/test_vjepa.py checks it sharded).
    checkpoint_blocks = (TransformerBlock, TubeletEmbedding, FeatureNorm, HFVideoEncoder)

    def __init__(self, config: VJEPAConfig):
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.patch_size, self.tubelet_size = self.encoder.patch_size, self.encoder.tubelet_size
        self.mask_specs = [MaskSpec.from_dict(entry) for entry in config.mask_sets]
        self.predictor = Predictor(
            self.encoder.embed_dim,
            config.predictor_dim,
            config.predictor_depth,
            config.predictor_heads,
            num_mask_tokens=len(self.mask_specs),
            positions=config.positions,
            position_grid=position_grid(config, self.patch_size, self.tubelet_size),
            mlp_ratio=config.mlp_ratio,
        )
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        """D, the width of the encoder's features."""
        return self.encoder.embed_dim

    def tokens_per_frame(self, height: int, width: int) -> int:
        """N, the tokens `encode_frames` gives per frame of `height` x `width` px."""
        return (height // self.patch_size) * (width // self.patch_size)

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [0, 1] -> ImageNet-normalised pixels, as V-JEPA's encoders expect."""
        return (frames - self.pixel_mean) / self.pixel_std

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Target-encoder features of whole clips: (B, T, 3, H, W) in [0, 1] -> (B, N, D)."""
        return self.target_encoder(self.normalize(frames))

    def encode_frames(self, frames: torch.Tensor, normalize_features: bool = True) -> torch.Tensor:
        """Per-frame patch features from the target encoder, every frame encoded on its own.

        frames (B, T, 3, H, W) in [0, 1] -> (B, T, N, D), N = tokens_per_frame(H, W),
        D = feature_dim. Each frame is repeated `tubelet_size` times to fill one tubelet.
        With `normalize_features`, each feature vector is layer-normed (no affine), as the
        V-JEPA targets and V-JEPA 2-AC's representations are.
        """
        batch = frames.shape[0]
        singles = repeat(frames, "b t c h w -> (b t) tubelet c h w", tubelet=self.tubelet_size)
        features = self.target_encoder(self.normalize(singles))  # ((B T), N, D)
        if normalize_features:
            features = F.layer_norm(features, (features.shape[-1],))
        return rearrange(features, "(b t) n d -> b t n d", b=batch)

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss above on a loader batch (`frames`: (B, T, 3, H, W) in [0, 1]); `loss` is minimised."""
        clip = self.normalize(batch["frames"])
        grid = token_grid(clip.shape, self.patch_size, self.tubelet_size)
        with torch.no_grad():
            targets = self.target_encoder(clip)
            targets = F.layer_norm(targets, (targets.shape[-1],))
        terms = {}
        for mask_set, spec in enumerate(self.mask_specs):
            masks = sample_masks(spec, len(clip), grid)
            context_index, target_index = masks.context.to(clip.device), masks.target.to(clip.device)
            context = self.encoder(clip, context_index)
            predictions = self.predictor(context, context_index, target_index, grid, mask_set)
            terms[f"l1_mask{mask_set}"] = F.l1_loss(predictions, gather_tokens(targets, target_index))
        terms["loss"] = torch.stack(list(terms.values())).mean()
        return terms

    def momentum(self, step: int, total_steps: int) -> float:
        """The EMA momentum after `step` of `total_steps`, linear from start to end."""
        start, end = self.config.ema_momentum
        return start + (end - start) * min(1.0, step / max(1, total_steps))

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """E_target <- m E_target + (1 - m) E, parameter by parameter (both encoders are built
        alike, so their parameter lists pair one to one)."""
        m = self.momentum(step, total_steps)
        targets = list(self.target_encoder.parameters())
        online = [parameter.detach() for parameter in self.encoder.parameters()]
        torch._foreach_mul_(targets, m)
        torch._foreach_add_(targets, online, alpha=1 - m)
