"""Measure a video tokenizer on held-out clips: `evaluate_tokenizer`, behind `reverie evaluate tokenizer`.

The tokenizer is a model folder (`reverie.nn.model_folder`) of a registered model with the video
tokenizer interface (`reverie.tokenizers.latents.video_tokenizer`: `encode` frames (B, T, 3, H, W) in [0, 1] to latents
(B, C, T', h, w), `decode` back, `compression` (s_T, s_H, s_W), `latent_shape`, `discrete`; a
discrete one also `tokenize` to codes and `decode_indices`), e.g. `causal_video_autoencoder` or
`st_vivit_tokenizer`. The clips are the first `clip_frames` frames of each sample of the shards
(ingested or recorded frame shards, `KEY.mp4` or `KEY.npy`), read in the order given, shard by
shard, up to `max_clips`: the same clips every run. A clip of a frame count the tokenizer does not
take as it is (a causal autoencoder's 1 + k s_T) is padded by the tokenizer, as its docstring
states; the reconstruction is cut back to the clip's frames, and the size figures count the clip's
own frames, so the padding costs what it costs.

A continuous tokenizer is run as decode(encode(frames)), a discrete one as
decode_indices(tokenize(frames)), the path its codes take when they are stored. The figures (see
`reverie.tokenizers.metrics` for their definitions) are means over every frame of every clip,
codebook usage is over every token of every clip, and the speeds are clips per second of wall time
on `device` with the batch size given; the first batch is run once untimed before, so one-off costs
(allocation, cuDNN's algorithm search) are not counted.

A folder whose model is not a video tokenizer is a `NotAVideoTokenizerError` naming it. Other bad
input stops the run with a `TokenizerEvaluationError` naming the file and the reason: a shard that is not there or cannot be read, shards with no
clips, a clip with fewer frames than `clip_frames`, a sample that holds latents instead of frames,
frames the tokenizer cannot take (a size its spatial compression does not divide) or of another
size than the clips before. A sample whose members cannot be decoded is skipped with a warning and
listed under `skipped` in the report, as the loader skips it in training.
"""

from __future__ import annotations

import math
import tarfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reverie.nn.model_folder import load_model_folder
from reverie.shards.clip_tensors import BadSampleError, decode_sample
from reverie.shards.sample_order import count_samples, list_shards, raw_samples
from reverie.tokenizers import metrics
from reverie.tokenizers.latents import video_tokenizer

DEFAULT_CLIP_FRAMES = 17  # 1 + 16: takes temporal compressions 1, 2, 4, 8 and 16 without padding


class TokenizerEvaluationError(ValueError):
    """Input that a tokenizer cannot be evaluated on; the message names the file and the reason."""


class SkippedSampleWarning(UserWarning):
    """A sample left out of the evaluation because it cannot be decoded; names its shard and key."""


@dataclass
class HeldOutClip:
    shard: str
    key: str
    frames: torch.Tensor  # (T, 3, H, W) float32 in [0, 1]


def shard_files(shard_paths: Sequence[str | Path]) -> list[str]:
    """The shard files that `shard_paths` name (files, folders of `*.tar`, globs), in order."""
    shards = []
    for path in shard_paths:
        try:
            found = list_shards(str(path))
        except FileNotFoundError as error:
            raise TokenizerEvaluationError(str(error)) from error
        missing = next((shard for shard in found if is_local(shard) and not Path(shard).is_file()), None)
        if missing:
            raise TokenizerEvaluationError(f"{missing}: no such shard file")
        shards += found
    if not shards:
        raise TokenizerEvaluationError("no shards given")
    return shards


def is_local(shard: str) -> bool:
    return "://" not in shard and not shard.startswith("pipe:")


def unreadable(shard: str, error: Exception) -> TokenizerEvaluationError:
    reason = " ".join(str(error.args[0] if error.args else error).split())  # tarfile's span lines
    return TokenizerEvaluationError(f"{shard}: cannot be read as a tar shard ({reason})")


def samples_of(shard: str) -> Iterator[dict]:
    """The raw samples of one shard; TokenizerEvaluationError naming it if it is not a readable tar."""

    def stop(error: Exception) -> bool:
        raise unreadable(shard, error) from error

    yield from raw_samples([shard], stop)


def frame_samples(shards: Sequence[str], frames: int, max_samples: int | None, skipped: list[str], use: str, needed: str) -> Iterator[tuple[str, dict]]:
    """(shard, decoded sample) for each sample of at least `frames` frames, shard by shard, up to
    `max_samples`; a sample that cannot be decoded is warned about and appended to `skipped`. A
    sample of latents or tokens, or of fewer frames, is a TokenizerEvaluationError naming it, with
    `use` (what to do instead) and `needed` (what the frames were needed for) in its message."""
    count = 0
    for shard in shards:
        for raw in samples_of(shard):
            if max_samples is not None and count >= max_samples:
                return
            try:
                sample = decode_sample(raw, None, None)
            except BadSampleError as error:
                warnings.warn(f"skipping a sample: {error}", SkippedSampleWarning)
                skipped.append(str(error))
                continue
            where = f"{shard}: sample {sample['key']}"
            if "frames" not in sample:
                raise TokenizerEvaluationError(f"{where}: holds latents or tokens, not frames; {use}")
            if len(sample["frames"]) < frames:
                raise TokenizerEvaluationError(f"{where}: has {len(sample['frames'])} frames, fewer than the {frames} {needed}")
            yield shard, sample
            count += 1


def held_out_clips(shards: Sequence[str], clip_frames: int, max_clips: int | None, skipped: list[str]) -> Iterator[HeldOutClip]:
    """The first `clip_frames` frames of each sample, shard by shard, up to `max_clips` clips (see `frame_samples`)."""
    for shard, sample in frame_samples(shards, clip_frames, max_clips, skipped, "evaluate a tokenizer on frame shards", "asked for"):
        yield HeldOutClip(shard, sample["key"], sample["frames"][:clip_frames])


def batched(clips: Iterator[HeldOutClip], batch_size: int) -> Iterator[list[HeldOutClip]]:
    """Lists of up to `batch_size` clips, all of the first clip's frame size."""
    batch, size = [], None
    for clip in clips:
        size = size or tuple(clip.frames.shape[-2:])
        if tuple(clip.frames.shape[-2:]) != size:
            height, width = clip.frames.shape[-2:]
            raise TokenizerEvaluationError(
                f"{clip.shard}: sample {clip.key}: frames of {height}x{width}, the clips before are {size[0]}x{size[1]}; "
                "evaluate one frame size at a time"
            )
        batch.append(clip)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def round_trip(model: torch.nn.Module, frames: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """(codes or latents, reconstruction (B, T, 3, H, W), encode seconds, decode seconds) of frames (B, T, 3, H, W)."""
    if model.discrete:
        codes, encode_seconds = metrics.timed(lambda: model.tokenize(frames), device)
        decoded, decode_seconds = metrics.timed(lambda: model.decode_indices(codes), device)
    else:
        codes, encode_seconds = metrics.timed(lambda: model.encode(frames), device)
        decoded, decode_seconds = metrics.timed(lambda: model.decode(codes), device)
    return codes, decoded[:, : frames.shape[1]].clamp(0, 1), encode_seconds, decode_seconds


def check_first(model: torch.nn.Module, clip: HeldOutClip, clip_frames: int) -> tuple[int, ...]:
    """The latent shape (C, T', h, w) of the first clip; TokenizerEvaluationError naming it if the
    tokenizer cannot take its frames."""
    height, width = clip.frames.shape[-2:]
    try:
        return tuple(model.latent_shape(clip_frames, height, width))
    except ValueError as error:
        raise TokenizerEvaluationError(f"{clip.shard}: sample {clip.key}: {error}") from error


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def progress_bar(enabled: bool) -> Progress:
    columns = [TextColumn("[bold]evaluate tokenizer"), BarColumn(), MofNCompleteColumn(), TextColumn("clips"), TimeElapsedColumn()]
    return Progress(*columns, disable=not enabled, transient=True)


def expected_clips(shards: Sequence[str], max_clips: int | None) -> int | None:
    """The clips the run will see, for the progress bar, when the shards are local files."""
    if not all(map(is_local, shards)):
        return max_clips
    available = 0
    for shard in shards:
        try:
            available += count_samples(shard)
        except tarfile.TarError as error:
            raise unreadable(shard, error) from error
    return available if max_clips is None else min(available, max_clips)


@dataclass
class Tally:
    """Sums over the clips evaluated so far, and what the first batch showed."""

    clips: int = 0
    frames: int = 0
    psnr: float = 0.0  # dB, summed over frames
    ssim: float = 0.0
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    codes: list[torch.Tensor] = field(default_factory=list)  # (B, T', h, w) per batch, discrete only
    latent_shape: tuple[int, ...] = ()
    frame_size: tuple[int, int] = (0, 0)

    def add(self, frames: torch.Tensor, reconstruction: torch.Tensor, codes: torch.Tensor | None, seconds: tuple[float, float]) -> None:
        self.psnr += float(metrics.psnr(reconstruction, frames).sum())
        self.ssim += float(metrics.ssim(reconstruction, frames).sum())
        self.clips += frames.shape[0]
        self.frames += frames.shape[0] * frames.shape[1]
        self.encode_seconds += seconds[0]
        self.decode_seconds += seconds[1]
        if codes is not None:
            self.codes.append(codes.cpu())


def evaluate_tokenizer(
    model_dir: str | Path,
    shard_paths: Sequence[str | Path],
    clip_frames: int = DEFAULT_CLIP_FRAMES,
    max_clips: int | None = None,
    batch_size: int = 4,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """The tokenizer in `model_dir` measured on the clips of `shard_paths`, as `report` lays it
    out; see the module docstring. device: default CUDA when there is one, else the CPU."""
    if clip_frames < 1 or batch_size < 1 or (max_clips is not None and max_clips < 1):
        raise TokenizerEvaluationError(f"clip_frames {clip_frames}, batch_size {batch_size}, max_clips {max_clips}: each must be at least 1")
    device = device or default_device()
    model = video_tokenizer(model_dir).to(device)
    shards = shard_files(shard_paths)
    tally, skipped, total = Tally(), [], expected_clips(shards, max_clips)
    with progress_bar(progress) as bar:
        task = bar.add_task("clips", total=total)
        for batch in batched(held_out_clips(shards, clip_frames, max_clips, skipped), batch_size):
            frames = torch.stack([clip.frames for clip in batch]).to(device)  # (B, T, 3, H, W)
            if not tally.latent_shape:
                tally.latent_shape, tally.frame_size = check_first(model, batch[0], clip_frames), tuple(frames.shape[-2:])
                round_trip(model, frames, device)  # untimed warm-up
            codes, reconstruction, *seconds = round_trip(model, frames, device)
            tally.add(frames, reconstruction, codes if model.discrete else None, tuple(seconds))
            bar.update(task, advance=len(batch))
    if tally.clips == 0:
        undecodable = f" ({len(skipped)} samples could not be decoded)" if skipped else ""
        raise TokenizerEvaluationError(f"{', '.join(shards)}: no clips{undecodable}")
    setup = {"model_dir": str(model_dir), "shards": shards, "clip_frames": clip_frames, "batch_size": batch_size, "device": str(device)}
    return report(model, tally, setup) | {"skipped": skipped}


def report(model: torch.nn.Module, tally: Tally, setup: dict) -> dict:
    """The figures of `tally` and the setup, as the JSON report holds them (None where a figure
    is for discrete tokenizers only)."""
    latent_shape, clip_frames, (height, width) = tally.latent_shape, setup["clip_frames"], tally.frame_size
    discrete = dict.fromkeys(("codebook_size", "token_shape", "bits_per_pixel", "codebook_usage", "perplexity"))
    if model.discrete:
        token_shape = list(tally.codes[0].shape[1:])
        fraction_hit, perplexity = metrics.codebook_usage(tally.codes, model.codebook_size)
        discrete = {
            "codebook_size": model.codebook_size,
            "token_shape": token_shape,
            "bits_per_pixel": metrics.bits_per_pixel(math.prod(token_shape), model.codebook_size, clip_frames, height, width),
            "codebook_usage": fraction_hit,
            "perplexity": perplexity,
        }
    return {
        "model": model.registry_name,
        "discrete": bool(model.discrete),
        **setup,
        "clips": tally.clips,
        "frame_size": [height, width],
        "compression": list(model.compression),
        "latent_shape": list(latent_shape),
        "latent_values_per_pixel": metrics.latent_values_per_pixel(latent_shape, clip_frames, height, width),
        "compression_ratio": metrics.compression_ratio(latent_shape, clip_frames, height, width),
        **discrete,
        "psnr": tally.psnr / tally.frames,
        "ssim": tally.ssim / tally.frames,
        "encode_clips_per_second": tally.clips / max(tally.encode_seconds, 1e-12),
        "decode_clips_per_second": tally.clips / max(tally.decode_seconds, 1e-12),
    }
