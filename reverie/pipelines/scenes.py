"""Content-based shot-change detection on the resampled frame stream.

Like PySceneDetect's content detector, a frame starts a new shot when the mean absolute change of
its hue, saturation and value from the previous frame is large. A cut also has to stand out from
the recent motion of the shot (`ratio` times the running mean of the last `window` changes), so
fast camera motion is not mistaken for a cut, and shots shorter than `min_scene_frames` are merged.
The frames are subsampled to about 64 pixels a side first: a cut changes the whole picture.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


def hsv(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) float32 HSV, each channel on 0..255."""
    # Contiguous colour planes: NumPy reduces over a length-3 last axis slowly, and this runs per frame.
    red, green, blue = np.moveaxis(frame, -1, 0).astype(np.float32, order="C")
    value = np.maximum(np.maximum(red, green), blue)
    chroma = value - np.minimum(np.minimum(red, green), blue)
    saturation = 255.0 * chroma / np.maximum(value, 1.0)  # value is 0 only where chroma is
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(
        value == red,
        (green - blue) / safe,
        np.where(value == green, 2.0 + (blue - red) / safe, 4.0 + (red - green) / safe),
    )
    hue = np.where(chroma > 0, (hue / 6.0) % 1.0, 0.0) * 255.0
    return np.stack([hue, saturation, value], axis=-1)


def thumbnail(frame: np.ndarray, side: int = 64) -> np.ndarray:
    step = max(1, min(frame.shape[0], frame.shape[1]) // side)
    return frame[::step, ::step]


@dataclass
class CutDetector:
    """Feed frames in order; `update` returns the frame's change score and whether it starts a shot."""

    threshold: float = 27.0
    ratio: float = 3.0
    window: int = 8
    min_scene_frames: int = 4
    _previous: np.ndarray | None = field(default=None, repr=False)
    _recent: deque = field(default_factory=deque, repr=False)
    _since_cut: int = 0

    def update(self, frame: np.ndarray) -> tuple[float, bool]:
        current = hsv(thumbnail(frame))
        previous, self._previous = self._previous, current
        self._since_cut += 1
        if previous is None:
            return 0.0, False
        score = float(np.abs(current - previous).mean())
        baseline = float(np.mean(self._recent)) if self._recent else 0.0
        self._recent.append(score)
        if len(self._recent) > self.window:
            self._recent.popleft()
        is_cut = score >= self.threshold and score >= self.ratio * baseline and self._since_cut >= self.min_scene_frames
        if is_cut:
            self._since_cut = 0
            self._recent.clear()
        return score, is_cut
