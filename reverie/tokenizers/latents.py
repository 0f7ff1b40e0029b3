"""Latent shards: clips in the shard format with their frames replaced by a video tokenizer's
latents or codes (written by `reverie tokenize`, `reverie.tokenizers.latent_shards`), and `decode`,
which turns them back into frames.

Members of a clip (T = the clip's frames, T' = its latent frames, C x h x w = one latent frame):

    KEY.latents.npy   (T', C, h, w) float16: a continuous tokenizer's latents (ae: the encoder's
                      output; vae: its mean)
    KEY.tokens.npy    (T', h, w): a discrete tokenizer's codes, in the smallest unsigned integer
                      dtype that holds codebook_size - 1 (`token_dtype`: uint8 up to 256 codes,
                      uint16 up to 65,536, uint32 beyond); the loader hands them out as int64
    KEY.actions.npy, KEY.rewards.npy, KEY.terminated.npy, KEY.truncated.npy, KEY.states.npy, and
                      any other member of the clip but its frames (`KEY.mp4` | `KEY.npy`; an extra
                      camera of a LeRobot clip too): the clip's bytes, unchanged
    KEY.json          the clip's JSON, unchanged, plus `tokenizer`:
        name            the model's registry name (causal_video_autoencoder, st_vivit_tokenizer)
        model_id        "sha256:..." of the model folder's config.json and model.safetensors
                        (`model_identity`): what a consumer compares, so a shard of another
                        tokenizer, or of other weights, is refused (`ClipDataset(tokenizer=...)`)
        model_folder    where the folder was when the shard was written, for people to read
        payload         "latents" or "tokens": which member holds them
        dtype           that member's dtype
        latent_shape    that member's shape: [T', C, h, w] or [T', h, w]
        latent_channels C (a discrete tokenizer's code width)
        codebook_size   the number of codes; null for a continuous tokenizer
        compression     [s_T, s_H, s_W]
        frames          T, the clip's own frame count: the length of every per-frame array
        fitted_frames   1 + (T' - 1) s_T: the frames the tokenizer encoded (see below)
        source_shard, source_key   the frame shard and the key the clip was read from

Time. A causal tokenizer (the causal video autoencoder, s_T > 1) encodes 1 + k s_T frames into
1 + k latent frames: latent frame 0 encodes frame 0 alone, latent frame j >= 1 frames
(j - 1) s_T + 1 .. j s_T (and depends on every frame before them). Actions, rewards, episode ends
and states stay per original frame, unchanged (T entries each; nothing is averaged, dropped or
repeated); `compression` tells a consumer how to group them. Latent frame j stands for frame
j s_T, the last frame it encodes: the state that goes with it is `states[j * s_T]`, and the actions
that lead from latent frame j to j + 1 are `actions[j * s_T : (j + 1) * s_T]` (frame t is the
observation before action t). So w latent frames from j come with the per-frame entries
j s_T .. (j + w - 1) s_T, 1 + (w - 1) s_T of them, the same rule again: that is the window the
loader cuts (`reverie.shards.clip_tensors.cut_window`). With s_T = 1 (ST-ViViT) latent frame t is
frame t and everything lines up one to one.

A clip whose frame count T is not 1 + k s_T is padded by the tokenizer, which repeats its last frame
up to fitted_frames = 1 + ceil((T - 1) / s_T) s_T (so T' = 1 + ceil((T - 1) / s_T) and no frame is
dropped); the last latent frame then also encodes fitted_frames - T copies of frame T - 1. The JSON
records both counts; the per-frame arrays are not padded (the last latent frame's action group is
short by the padding), and a loader window never reaches past frame T - 1. `decode` returns the
fitted_frames frames the latents hold; `decode(..., frames=T)` cuts them back to the clip's.

A video tokenizer is a model with `encode` (B, T, 3, H, W) -> (B, C, T', h, w), `decode`,
`compression`, `latent_shape`, `latent_channels`, `discrete`, `codebook_size` (and `tokenize`,
`decode_indices` when discrete). The per-frame `frame_autoencoder` is not one
(`NotAVideoTokenizerError`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn

from reverie.nn.model_folder import FILES, load_model_folder

VIDEO_TOKENIZER_API = ("encode", "decode", "compression", "latent_shape", "latent_channels", "discrete", "codebook_size")
DISCRETE_API = ("tokenize", "decode_indices")
VIDEO_TOKENIZERS = ("causal_video_autoencoder", "st_vivit_tokenizer", "discrete_frame_autoencoder")
PAYLOADS = ("latents", "tokens")
LATENT_DTYPE = np.float16


class NotAVideoTokenizerError(ValueError):
    """A model (folder) that is not a video tokenizer; names it and what it lacks."""


class LatentShapeError(ValueError):
    """Latents or codes of a shape or kind a tokenizer cannot decode; names the shapes."""


def video_tokenizer(model_or_folder: nn.Module | str | Path) -> nn.Module:
    """The video tokenizer a model folder holds (loaded, in eval mode), or `model` itself once
    checked; `NotAVideoTokenizerError` naming the folder or model otherwise."""
    is_folder = isinstance(model_or_folder, (str, Path))
    model = load_model_folder(model_or_folder) if is_folder else model_or_folder
    required = VIDEO_TOKENIZER_API + (DISCRETE_API if getattr(model, "discrete", False) else ())
    missing = [name for name in required if not hasattr(model, name)]
    if missing:
        name = getattr(model, "registry_name", type(model).__name__)
        where = f"{model_or_folder}: model {name!r}" if is_folder else f"model {name!r}"
        raise NotAVideoTokenizerError(
            f"{where} is not a video tokenizer (it has no {', '.join(missing)}; a per-frame autoencoder maps each frame "
            f"alone, with latents (B, T, c, h, w)); use one of {', '.join(VIDEO_TOKENIZERS)}"
        )
    return model


def model_identity(folder: str | Path) -> str:
    """"sha256:<hex>" of a model folder's config.json and model.safetensors bytes: equal for equal
    models, whatever the folder is called or where it lies."""
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0")
        with open(Path(folder) / name, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def token_dtype(codebook_size: int) -> np.dtype:
    """The smallest unsigned integer dtype that holds the codes 0 .. codebook_size - 1."""
    return np.min_scalar_type(max(int(codebook_size) - 1, 0))


def tokenizer_fields(model: nn.Module, model_id: str, model_folder: str | Path, frames: int, height: int, width: int) -> dict:
    """The JSON `tokenizer` entry (without its source) of a clip of `frames` frames of height x width;
    the tokenizer's `FrameShapeError` when it cannot take that size."""
    channels, latent_frames, latent_height, latent_width = model.latent_shape(frames, height, width)
    payload = "tokens" if model.discrete else "latents"
    shape = [latent_frames, latent_height, latent_width] if model.discrete else [latent_frames, channels, latent_height, latent_width]
    dtype = token_dtype(model.codebook_size) if model.discrete else np.dtype(LATENT_DTYPE)
    temporal = model.compression[0]
    return {
        "name": getattr(model, "registry_name", type(model).__name__),
        "model_id": model_id,
        "model_folder": str(Path(model_folder).resolve()),
        "payload": payload,
        "dtype": dtype.name,
        "latent_shape": shape,
        "latent_channels": channels,
        "codebook_size": model.codebook_size if model.discrete else None,
        "compression": list(model.compression),
        "frames": frames,
        "fitted_frames": 1 + (latent_frames - 1) * temporal,
    }


@torch.inference_mode()
def encode_frames(model: nn.Module, frames: torch.Tensor) -> np.ndarray:
    """Frames (B, T, 3, H, W) in [0, 1] -> what a latent shard stores per clip, stacked:
    latents (B, T', C, h, w) float16, or codes (B, T', h, w) in `token_dtype`."""
    if model.discrete:
        return model.tokenize(frames).cpu().numpy().astype(token_dtype(model.codebook_size))
    latents = model.encode(frames).float().cpu().numpy()
    return rearrange(latents, "b c t h w -> b t c h w").astype(LATENT_DTYPE)


@torch.inference_mode()
def decode(model_or_folder: nn.Module | str | Path, latents_or_tokens, frames: int | None = None) -> torch.Tensor:
    """Latents (T', C, h, w) float or codes (T', h, w) integer, as the loader yields them, or a
    batch of them (B, ...) -> frames (T, 3, H, W) in [0, 1] (batched: (B, T, 3, H, W)), on the
    model's device. T = 1 + (T' - 1) s_T, or the first `frames` of them (the clip's `frames`, to
    drop what the tokenizer padded). `model_or_folder`: a video tokenizer or its model folder."""
    model = video_tokenizer(model_or_folder)
    codes = torch.as_tensor(latents_or_tokens)
    is_tokens = not (codes.is_floating_point() or codes.is_complex())
    unbatched = codes.ndim == (3 if is_tokens else 4)
    batch = codes[None] if unbatched else codes
    device = next(model.parameters()).device
    if is_tokens:
        check_tokens(model, batch, tuple(codes.shape))
        decoded = model.decode_indices(batch.to(device, torch.int64))
    else:
        check_latents(model, batch, tuple(codes.shape))
        decoded = model.decode(rearrange(batch.to(device, torch.float32), "b t c h w -> b c t h w"))
    decoded = decoded[:, :frames] if frames is not None else decoded
    return decoded[0] if unbatched else decoded


def check_tokens(model: nn.Module, tokens: torch.Tensor, given: tuple[int, ...]) -> None:
    """`tokens` (B, T', h, w), as `given`: codes of this discrete tokenizer's codebook."""
    if not model.discrete:
        raise LatentShapeError(f"decode: integer codes {given} for a continuous tokenizer; it decodes float latents (T', C, h, w)")
    if tokens.ndim != 4:
        raise LatentShapeError(f"decode: codes of shape {given}: expected (T', h, w) or (B, T', h, w)")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= model.codebook_size):
        low, high = int(tokens.min()), int(tokens.max())
        raise LatentShapeError(f"decode: codes in {low}..{high}, outside the codebook 0..{model.codebook_size - 1} (frames, not codes?)")


def check_latents(model: nn.Module, latents: torch.Tensor, given: tuple[int, ...]) -> None:
    """`latents` (B, T', C, h, w), as `given`: C must be the tokenizer's latent channels."""
    if latents.ndim != 5 or latents.shape[2] != model.latent_channels:
        raise LatentShapeError(
            f"decode: latents of shape {given}: expected (T', {model.latent_channels}, h, w) "
            f"or (B, T', {model.latent_channels}, h, w) (frames, not latents?)"
        )
