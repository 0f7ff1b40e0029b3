"""Tiny video tokenizers and clip shards for the tokenizer evaluation tests: the causal video
autoencoder of `configs/tokenizers/causal_video_ae_tiny.yaml` (4x8x8, 4 latent channels),
untrained, saved as a model folder, and shards of npy clips of a coloured square sliding over a
gradient, written as `reverie ingest` writes them (`KEY.npy` + `KEY.json`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import MODELS, save_model_folder
from reverie.shards.writer import TarWriter

TINY_YAML = Path(__file__).resolve().parents[1] / "configs" / "tokenizers" / "causal_video_ae_tiny.yaml"
FSQ = dict(bottleneck="fsq", quantizer={"levels": [5, 5, 5]})  # 125 codes
REPORT_FIELDS = {  # every field of `evaluate_tokenizer`'s report
    "model", "discrete", "model_dir", "shards", "clip_frames", "batch_size", "device", "clips", "frame_size", "compression",
    "latent_shape", "latent_values_per_pixel", "compression_ratio", "codebook_size", "token_shape", "bits_per_pixel",
    "codebook_usage", "perplexity", "psnr", "ssim", "encode_clips_per_second", "decode_clips_per_second", "skipped",
}  # fmt: skip


def tiny_tokenizer(folder: Path, **fields) -> Path:
    """The tiny causal video autoencoder, with `fields` over its YAML's, saved to `folder`."""
    config = OmegaConf.to_container(OmegaConf.load(TINY_YAML).model)
    model_class = MODELS.get(config.pop("name"))
    torch.manual_seed(0)
    return save_model_folder(model_class(model_class.config_class(**config | fields)), folder)


def sliding_square(index: int, frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a square of colour and path set by `index` over a horizontal gradient."""
    rng = np.random.default_rng(index)
    clip = np.empty((frames, height, width, 3), np.uint8)
    clip[:] = np.linspace(40, 200, width, dtype=np.uint8)[None, None, :, None]
    side, colour = max(2, min(height, width) // 4), rng.integers(0, 256, 3)
    top, left = rng.integers(0, height - side), rng.integers(0, width - side)
    for t in range(frames):
        y, x = (top + t) % (height - side), (left + 2 * t) % (width - side)
        clip[t, y : y + side, x : x + side] = colour
    return clip


def clip_sample(key: str, clip: np.ndarray) -> dict:
    frames, height, width, _ = clip.shape
    return {"__key__": key, "npy": clip, "json": {"key": key, "fps": 8.0, "frames": frames, "height": height, "width": width}}


def write_shard(path: Path, samples: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with TarWriter(path) as tar:
        for sample in samples:
            tar.write(sample)
    return path


def clip_shard(path: Path, clips: int, frames: int = 5, size: tuple[int, int] = (32, 32), first: int = 0) -> Path:
    """A shard of `clips` sliding-square clips, keys clip{first:04d} on."""
    samples = [clip_sample(f"clip{index:04d}", sliding_square(index, frames, *size)) for index in range(first, first + clips)]
    return write_shard(path, samples)


PER_FRAME = dict(  # a causal video autoencoder that does not compress time: 32 px frames -> 4 x 4 codes
    name="causal_video_autoencoder", temporal_compression=1, spatial_compression=8, patcher="none",
    channels=8, channel_multipliers=[1, 2, 2, 2], num_res_blocks=1, mid_attention=False, latent_channels=4,
)  # fmt: skip


def per_frame_tokenizer(folder: Path, **fields) -> Path:
    """A tiny, untrained per-frame tokenizer (temporal compression 1, 8x in space) saved to `folder`,
    as the world models take one: continuous (ae) by default, or with `bottleneck="fsq",
    quantizer={"levels": [...]}` etc. over it."""
    config = dict(PER_FRAME)
    model_class = MODELS.get(config.pop("name"))
    torch.manual_seed(0)
    return save_model_folder(model_class(model_class.config_class(**config | fields)), folder)
