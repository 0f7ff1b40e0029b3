"""What play writes: the session's frames as an mp4 (`--record`) and its report as JSON (`--json`).

The video is H.264, yuv420p, crf 18, preset ultrafast (the settings of `reverie.shards.payloads`'
clips), one frame per frame of the session (the start frame, then one per step) at `fps` frames a
second, at the model's frame size; yuv420p needs even sides, so a frame of an odd side gets one
more row or column, a copy of its last. Frames are encoded as they come, into a temporary file
beside the target, which is renamed into place when the session ends well and removed when it
does not, so the target is a whole video or what it was before. The JSON is written whole too.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from reverie.shards.writer import write_text_atomically

DEFAULT_VIDEO_FPS = 15.0  # without --fps: about what the tiny models run at on a CPU


class VideoRecorder:
    """Encodes (H, W, 3) uint8 frames to `path` as they come; `close` puts the video in place."""

    def __init__(self, path: str | Path, fps: float, frame_size: tuple[int, int]):
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.partial), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.height, self.stream.width = (side + side % 2 for side in frame_size)
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "18", "preset": "ultrafast"}
        self.frames = 0

    def __call__(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        even = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="rgb24")))
        self.frames += 1

    def close(self) -> Path:
        self.container.mux(self.stream.encode(None))
        self.container.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.container.close()
        finally:
            self.partial.unlink(missing_ok=True)


def write_report(path: str | Path, report: dict) -> Path:
    return write_text_atomically(Path(path), json.dumps(report, indent=2) + "\n")
