"""decord backend: decode with resize inside decord, frames picked by presentation time."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from reverie.pipelines.decoders.base import DECODERS, crop, sample_times
from reverie.pipelines.errors import VideoDecodeError
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import VideoInfo

BATCH = 32


@DECODERS.register("decord")
class DecordDecoder:
    module = "decord"

    def frames(self, info: VideoInfo, fps: float, geometry: FrameGeometry) -> Iterator[tuple[float, np.ndarray]]:
        import decord

        try:
            reader = decord.VideoReader(info.path, width=geometry.scaled_width, height=geometry.scaled_height)
            starts = reader.get_frame_timestamp(range(len(reader)))[:, 0]
        except decord.DECORDError as error:
            raise VideoDecodeError(info.path, f"decord cannot read ({str(error).splitlines()[0]})") from None
        times = sample_times(float(starts[-1]) + 1.0 / max(info.fps, 1e-3), fps)
        # The frame shown at instant t is the last one that started at or before t.
        indices = np.clip(np.searchsorted(starts, times + 1e-6, side="right") - 1, 0, len(reader) - 1)
        for begin in range(0, len(indices), BATCH):
            chunk = indices[begin : begin + BATCH]
            try:
                batch = reader.get_batch(chunk.tolist()).asnumpy()
            except decord.DECORDError as error:
                raise VideoDecodeError(info.path, f"decode error ({str(error).splitlines()[0]})") from None
            for time, frame in zip(times[begin : begin + BATCH], crop(batch, geometry)):
                yield float(time), np.ascontiguousarray(frame)
