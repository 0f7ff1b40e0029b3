"""Output frame geometry: scale the short side to S, then centre-crop to S x S (or keep the aspect)."""

from __future__ import annotations

from dataclasses import dataclass


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


@dataclass(frozen=True)
class FrameGeometry:
    """Where a source frame of (source_width, source_height) lands in the output.

    The frame is resized to (scaled_width, scaled_height), then the window of (width, height)
    starting at (crop_x, crop_y) is kept.
    """

    scaled_width: int
    scaled_height: int
    width: int
    height: int
    crop_x: int
    crop_y: int

    @classmethod
    def fit(cls, source_width: int, source_height: int, size: int, keep_aspect: bool = False) -> "FrameGeometry":
        if size % 2:
            raise ValueError(f"--size must be even for yuv420p video, got {size}")
        scale = size / min(source_width, source_height)
        scaled_width = _even(source_width * scale)
        scaled_height = _even(source_height * scale)
        if keep_aspect:
            return cls(scaled_width, scaled_height, scaled_width, scaled_height, 0, 0)
        return cls(
            scaled_width,
            scaled_height,
            size,
            size,
            (scaled_width - size) // 2,
            (scaled_height - size) // 2,
        )

    def ffmpeg_filter(self, fps: float) -> str:
        """The same resample + resize + crop as an ffmpeg filter chain (used by the PyAV backend and
        by the benchmark's ffmpeg command line, so both do the same work)."""
        return (
            f"fps={fps},scale={self.scaled_width}:{self.scaled_height}:flags=area,"
            f"crop={self.width}:{self.height}:{self.crop_x}:{self.crop_y},format=rgb24"
        )
