"""Reference codecs to set a tokenizer's reconstructions beside: H.264 at a matched bit rate, and
bilinear down-and-up sampling at a matched number of values per pixel.

H.264 (`h264_roundtrip`). libx264 through PyAV (as `reverie.shards.payloads.encode_mp4`), two-pass
average bit rate at preset medium (x264's default), yuv420p, one thread (x264 is then
deterministic). The target rate is bpp H W fps bit/s (x264 takes it in whole kbit/s, at least 1),
which spends bpp T H W bits on the T frames; pass 1 writes the rate statistics, pass 2 spends the
bits where they count. The clip is coded as a raw H.264 stream, no container, and its achieved
bits per pixel are 8 (bytes of the stream, headers included) / (T H W), the figure to compare with
a tokenizer's log2(K) tokens / (T H W). A target under the lowest rate x264 can reach for the clip
(it says "bitrate is too low" on pass 2) is coded at that lowest rate, quantiser 51, instead: the
achieved bpp, above the target then, says so. The frames go through yuv420p as every H.264 player
sees them, so the reconstruction also loses half the chroma resolution.

Bilinear (`bilinear_roundtrip`). Each frame is resized to h x w with 3 h w / (H W) as close as the
integer sizes allow to the values per pixel asked (`bilinear_size`; the aspect ratio is kept),
antialiased (torch's `antialias=True`, a triangle filter as wide as the scale factor, like PIL's),
and resized back bilinearly. Time is not subsampled: frames stay frames.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

X264_PRESET = "medium"
LOWEST_QUALITY = {"qp": "51"}  # x264's coarsest quantiser: the fewest bits it spends on a clip


@contextlib.contextmanager
def libav_error_log():
    """Inside the block, a libav error carries libav's last error line in its message (PyAV keeps
    libav's log off by default); the line is captured, not printed."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture():
            yield
    finally:
        av.logging.set_level(level)


def check_frames(frames: np.ndarray, even: bool = False) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames {frames.dtype} {frames.shape}: expected uint8 (T, H, W, 3) RGB, T >= 1")
    if even and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(f"frames of {frames.shape[1]}x{frames.shape[2]}: yuv420p H.264 needs an even height and width")


def x264_encoder(height: int, width: int, fps: float, options: dict[str, str], bit_rate: int = 0) -> av.CodecContext:
    rate = Fraction(fps).limit_denominator(1001)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.framerate, encoder.time_base = rate, 1 / rate
    encoder.bit_rate = bit_rate
    encoder.thread_count = 1
    encoder.options = {"preset": X264_PRESET, **options}
    return encoder


def encode_h264(frames: np.ndarray, fps: float, options: dict[str, str], bit_rate: int = 0) -> bytes:
    """(T, H, W, 3) uint8 RGB -> a raw H.264 (Annex B) stream coded with these libx264 options."""
    encoder = x264_encoder(frames.shape[1], frames.shape[2], fps, options, bit_rate)
    stream = bytearray()
    for index, frame in enumerate(frames):
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        picture.pts = index
        stream += b"".join(bytes(packet) for packet in encoder.encode(picture))
    stream += b"".join(bytes(packet) for packet in encoder.encode(None))
    return bytes(stream)


def decode_h264(stream: bytes) -> np.ndarray:
    """A raw H.264 stream -> (T, H, W, 3) uint8 RGB."""
    decoder = av.CodecContext.create("h264", "r")
    pictures = []
    for packet in [*decoder.parse(stream), *decoder.parse(None)]:
        pictures += decoder.decode(packet)
    pictures += decoder.decode(None)
    return np.stack([picture.to_ndarray(format="rgb24") for picture in pictures])


def h264_roundtrip(frames: np.ndarray, target_bpp: float, fps: float) -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 RGB -> (the frames after H.264 at `target_bpp` bits per pixel, the bits
    per pixel its stream achieved); two-pass libx264, see the module docstring."""
    check_frames(frames, even=True)
    if target_bpp <= 0 or fps <= 0:
        raise ValueError(f"target_bpp {target_bpp} and fps {fps}: both must be positive")
    count, height, width, _ = frames.shape
    bit_rate = max(1000, round(target_bpp * height * width * fps))
    with tempfile.TemporaryDirectory(prefix="reverie-x264-") as folder:
        statistics = str(Path(folder) / "x264.stats")
        encode_h264(frames, fps, {"flags": "+pass1", "stats": statistics}, bit_rate)
        try:
            with libav_error_log():
                stream = encode_h264(frames, fps, {"flags": "+pass2", "stats": statistics}, bit_rate)
        except av.error.ExternalError as error:
            if "bitrate is too low" not in str(error):
                raise
            stream = encode_h264(frames, fps, LOWEST_QUALITY)
    decoded = decode_h264(stream)
    if decoded.shape != frames.shape:
        raise RuntimeError(f"H.264 round trip of {frames.shape} frames decoded to {decoded.shape}")
    return decoded, 8 * len(stream) / (count * height * width)


def bilinear_size(height: int, width: int, values_per_pixel: float) -> tuple[int, int]:
    """(h, w), the aspect ratio kept, with 3 h w / (H W) about `values_per_pixel` (in (0, 3])."""
    if not 0 < values_per_pixel <= 3:
        raise ValueError(f"values_per_pixel {values_per_pixel}: an RGB frame holds 3, so it must lie in (0, 3]")
    scale = math.sqrt(values_per_pixel / 3)
    return max(1, round(height * scale)), max(1, round(width * scale))


def bilinear_roundtrip(frames: np.ndarray, values_per_pixel: float) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> the same, resized to `bilinear_size` (antialiased) and back, bilinear."""
    check_frames(frames)
    height, width = frames.shape[1:3]
    images = rearrange(torch.from_numpy(frames).float(), "t h w c -> t c h w")
    small = F.interpolate(images, size=bilinear_size(height, width, values_per_pixel), mode="bilinear", antialias=True, align_corners=False)
    restored = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    return rearrange(restored.round().clamp(0, 255).to(torch.uint8), "t c h w -> t h w c").numpy()
