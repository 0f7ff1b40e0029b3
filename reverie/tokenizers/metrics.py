"""What a video tokenizer is measured by: reconstruction quality (PSNR, SSIM), how much it keeps
(latent values per pixel, bits per pixel), how it uses its codebook, and how fast it runs.

Quality is measured per frame, on RGB frames (..., 3, H, W) in [0, 1], and averaged over frames:

    PSNR = 10 log10(1 / MSE)  dB,  MSE over the frame's 3 H W values (peak value 1),

capped at `PSNR_CAP_DB`: a frame reconstructed exactly reads 100 dB, not inf, so that means over
frames stay finite and the report stays valid JSON (one value of a 224 x 224 frame one uint8 level
off, the least error such a frame can have, reads 99.9 dB). SSIM is that of
Wang et al. 2004 (IEEE TIP 13(4), eq. 13): an 11 x 11 Gaussian window of sigma 1.5, K1 = 0.01,
K2 = 0.03, data range 1, per channel, averaged over the frame; both are torchmetrics' functional
ones.

Size, for one clip of T frames of H x W pixels whose latents are (C, T', h, w) (T counts the clip's
own frames, not the ones a tokenizer pads it with, so padding costs what it costs):

    latent values per pixel = C T' h w / (T H W)      (per pixel of each frame; RGB holds 3)
    compression ratio       = 3 T H W / (C T' h w)    (input values per latent value)
    bits per pixel          = log2(K) T' h w / (T H W)   (discrete codes: K codes, T' h w tokens)

Codebook usage, over every token of every clip evaluated (`reverie.nn.quantizers.usage`): the
fraction of the K codes hit at least once, and the perplexity exp(H(p)) of the codes' empirical
distribution p (K when all are used equally, 1 when one code is used for everything).

Speed: `timed` runs a call under `torch.inference_mode` and returns its wall time, waiting for the
device to finish (CUDA kernels run asynchronously); clips per second = clips / total seconds.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch
from einops import rearrange
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from reverie.nn.quantizers import usage

PSNR_CAP_DB = 100.0
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # Wang et al. 2004, Sec. III-C


def as_images(frames: Tensor) -> Tensor:
    """(..., 3, H, W) -> (N, 3, H, W), N the product of the leading axes."""
    return rearrange(frames, "... c h w -> (...) c h w")


def check_pair(reconstruction: Tensor, frames: Tensor) -> None:
    if reconstruction.shape != frames.shape or frames.ndim < 3:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and frames {tuple(frames.shape)}: need one shape (..., C, H, W)")


def psnr(reconstruction: Tensor, frames: Tensor) -> Tensor:
    """Per-frame PSNR in dB (capped at `PSNR_CAP_DB`) of frames (..., 3, H, W) in [0, 1]; shape (...)."""
    check_pair(reconstruction, frames)
    images = as_images(frames.float())
    decibels = peak_signal_noise_ratio(as_images(reconstruction.float()), images, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return decibels.clamp(max=PSNR_CAP_DB).reshape(frames.shape[:-3])


def ssim(reconstruction: Tensor, frames: Tensor) -> Tensor:
    """Per-frame SSIM (Wang et al. 2004, Gaussian window) of frames (..., 3, H, W) in [0, 1]; shape (...)."""
    check_pair(reconstruction, frames)
    similarity = structural_similarity_index_measure(
        as_images(reconstruction.float()),
        as_images(frames.float()),
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        kernel_size=SSIM_WINDOW,
        data_range=1.0,
        k1=SSIM_K1,
        k2=SSIM_K2,
        reduction="none",
    )
    return similarity.reshape(frames.shape[:-3])


def latent_values_per_pixel(latent_shape: Sequence[int], frames: int, height: int, width: int) -> float:
    """C T' h w / (T H W): latent values per pixel of each frame, for latents (C, T', h, w) of a clip."""
    return math.prod(latent_shape) / (frames * height * width)


def compression_ratio(latent_shape: Sequence[int], frames: int, height: int, width: int, image_channels: int = 3) -> float:
    """3 T H W / (C T' h w): the clip's values per latent value."""
    return image_channels / latent_values_per_pixel(latent_shape, frames, height, width)


def bits_per_pixel(tokens: int, codebook_size: int, frames: int, height: int, width: int) -> float:
    """log2(K) tokens / (T H W): the bits of a clip's `tokens` codes per pixel of each frame."""
    return math.log2(codebook_size) * tokens / (frames * height * width)


def codebook_usage(indices: Sequence[Tensor] | Tensor, codebook_size: int) -> tuple[float, float]:
    """(fraction of the codes hit, perplexity) over all `indices` (tensors of any shapes) together."""
    if isinstance(indices, Tensor):
        indices = [indices]
    flat = torch.cat([rearrange(codes.long().cpu(), "... -> (...)") for codes in indices])
    fraction_hit, perplexity = usage(flat, codebook_size)
    return float(fraction_hit), float(perplexity)


def synchronize(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], Tensor], device: torch.device | str) -> tuple[Tensor, float]:
    """(call(), its wall time in seconds) under `torch.inference_mode`, the device's queue drained before and after."""
    with torch.inference_mode():
        synchronize(device)
        started = time.perf_counter()
        result = call()
        synchronize(device)
    return result, time.perf_counter() - started
