"""torchcodec backend: frames played at each sample instant, resized with antialiased bilinear."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from reverie.pipelines.decoders.base import DECODERS, crop, sample_times
from reverie.pipelines.errors import VideoDecodeError
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import VideoInfo

BATCH = 32


@DECODERS.register("torchcodec")
class TorchCodecDecoder:
    module = "torchcodec"

    def frames(self, info: VideoInfo, fps: float, geometry: FrameGeometry) -> Iterator[tuple[float, np.ndarray]]:
        import torch  # imported here: the other backends and the CLI start faster without torch
        import torch.nn.functional as F
        from torchcodec.decoders import VideoDecoder

        try:
            decoder = VideoDecoder(info.path, dimension_order="NCHW", seek_mode="approximate")
        except (RuntimeError, ValueError) as error:
            raise VideoDecodeError(info.path, f"torchcodec cannot read ({str(error).splitlines()[0]})") from None
        meta = decoder.metadata
        begin_s = meta.begin_stream_seconds or 0.0
        end_s = meta.end_stream_seconds or info.duration
        times = sample_times(end_s - begin_s, fps)
        for start in range(0, len(times), BATCH):
            chunk = times[start : start + BATCH]
            try:
                batch = decoder.get_frames_played_at(seconds=(chunk + begin_s).tolist()).data
            except (RuntimeError, IndexError) as error:
                raise VideoDecodeError(info.path, f"decode error ({str(error).splitlines()[0]})") from None
            resized = F.interpolate(
                batch.float(), size=(geometry.scaled_height, geometry.scaled_width), mode="bilinear", antialias=True
            )
            frames = resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for time, frame in zip(chunk, crop(frames, geometry)):
                yield float(time), np.ascontiguousarray(frame)
