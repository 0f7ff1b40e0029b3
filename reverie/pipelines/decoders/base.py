"""The decoder interface: a file in, frames resampled to a target rate and resized out."""

from __future__ import annotations

import importlib.util
from typing import Iterator, Protocol

import numpy as np

from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import VideoInfo
from reverie.registry import Registry

DECODERS: Registry[type["Decoder"]] = Registry("decoder")


class Decoder(Protocol):
    """Yields `(time, frame)`: `time` in seconds from the start, `frame` (H, W, 3) uint8 RGB.

    Frames come at `fps` (the frame shown at each instant k / fps), resized and cropped as
    `geometry` says. A decode error raises `VideoDecodeError` naming the file.
    """

    module: str  # the Python package the backend needs

    def frames(self, info: VideoInfo, fps: float, geometry: FrameGeometry) -> Iterator[tuple[float, np.ndarray]]: ...


def sample_times(duration: float, fps: float) -> np.ndarray:
    """The instants k / fps, k = 0, 1, ..., inside [0, duration)."""
    return np.arange(0.0, max(duration, 0.0) - 1e-6, 1.0 / fps)


def crop(frames: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """Keep the output window of already resized frames (..., H, W, C)."""
    y, x = geometry.crop_y, geometry.crop_x
    return frames[..., y : y + geometry.height, x : x + geometry.width, :]


def available_decoders() -> list[str]:
    """Registered backends whose Python package imports here."""
    return [name for name in DECODERS if importlib.util.find_spec(DECODERS.get(name).module) is not None]
