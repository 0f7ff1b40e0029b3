"""transformers' `VJEPA2Model` encoder as a V-JEPA backbone, so that released V-JEPA 2 weights
([26] Assran et al. 2025) can be trained on or used as features.

The folder is a local `save_pretrained` folder (config.json + model.safetensors); it is never looked
up on the Hub, and its weights are read from safetensors only: a pickled `pytorch_model.bin` is
refused, so a folder from someone else is data, not code. Only the encoder is kept: reverie's own
predictor is trained beside it. The adapter has the interface of `reverie.pretrain.video_vit.VideoViT`:
`forward(clip, keep)` with clip (B, T, C, H, W) normalised pixels and keep (B, K) token indices,
returning (B, K, D). The HF encoder numbers tokens as reverie does and its 3D RoPE reads positions
from those indices, on the square grid of `crop_size / patch_size` its config was built for; clips
must have that size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from reverie.pretrain.video_vit import all_tokens, gather_tokens, token_grid


def load_vjepa2_encoder(folder: str | Path) -> nn.Module:
    """The `VJEPA2Encoder` of the `VJEPA2Model` saved in `folder` (safetensors weights only)."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: no config.json; hf_folder must be a local VJEPA2Model save_pretrained folder")
    if not any((folder / name).exists() for name in ("model.safetensors", "model.safetensors.index.json")):
        raise FileNotFoundError(f"{folder}: no model.safetensors; the hf backbone reads safetensors weights only, not pickled ones")
    try:
        from transformers import VJEPA2Model
    except ImportError as error:
        raise ImportError(f"backbone: hf needs transformers with VJEPA2Model (pip install 'transformers>=4.53'): {error}") from error
    return VJEPA2Model.from_pretrained(str(folder), local_files_only=True, use_safetensors=True).encoder


class HFVideoEncoder(nn.Module):
    def __init__(self, folder: str | Path):
        super().__init__()
        self.encoder = load_vjepa2_encoder(folder)
        config = self.encoder.config
        self.embed_dim, self.patch_size, self.tubelet_size = config.hidden_size, config.patch_size, config.tubelet_size
        self.grid_side = config.crop_size // config.patch_size

    def forward(self, clip: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        grid = token_grid(clip.shape, self.patch_size, self.tubelet_size)
        if grid[1:] != (self.grid_side, self.grid_side):
            side = self.grid_side * self.patch_size
            raise ValueError(f"the VJEPA2Model backbone was built for {side}x{side} px frames, not {clip.shape[-2]}x{clip.shape[-1]}")
        tokens = self.encoder.embeddings(clip)  # (B, N, D); it takes (B, T, C, H, W)
        if keep is not None:
            tokens = gather_tokens(tokens, keep)
        position = keep if keep is not None else all_tokens(len(clip), grid, clip.device)
        for layer in self.encoder.layer:
            tokens = layer(tokens, position)[0]
        return self.encoder.layernorm(tokens)
