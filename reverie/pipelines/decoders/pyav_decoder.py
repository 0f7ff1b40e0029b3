"""PyAV backend: libavcodec decode, then libavfilter's fps, scale and crop inside FFmpeg.

The filter chain is the one the `ffmpeg` command line would run (`FrameGeometry.ffmpeg_filter`),
so frames never leave C at full resolution.
"""

from __future__ import annotations

from typing import Iterator

import av
import numpy as np

from reverie.pipelines.decoders.base import DECODERS
from reverie.pipelines.errors import VideoDecodeError
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import VideoInfo


def _filter_graph(stream: av.video.stream.VideoStream, fps: float, geometry: FrameGeometry) -> av.filter.Graph:
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(template=stream)]
    for step in geometry.ffmpeg_filter(fps).split(","):
        name, _, args = step.partition("=")
        nodes.append(graph.add(name, args))
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


def _drain(graph: av.filter.Graph) -> Iterator[av.VideoFrame]:
    while True:
        try:
            yield graph.vpull()
        except (av.BlockingIOError, av.EOFError):
            return


@DECODERS.register("pyav")
class PyAVDecoder:
    module = "av"

    def __init__(self, threads: int = 0):
        self.threads = threads  # 0: FFmpeg picks

    def frames(self, info: VideoInfo, fps: float, geometry: FrameGeometry) -> Iterator[tuple[float, np.ndarray]]:
        try:
            container = av.open(info.path)
        except av.FFmpegError as error:
            raise VideoDecodeError(info.path, f"cannot open ({error.strerror or error})") from None
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = self.threads
            graph = _filter_graph(stream, fps, geometry)
            try:
                for frame in container.decode(stream):
                    graph.vpush(frame)
                    for out in _drain(graph):
                        yield float(out.time), out.to_ndarray()
            except av.FFmpegError as error:
                raise VideoDecodeError(info.path, f"decode error ({error.strerror or error})") from None
            graph.vpush(None)
            for out in _drain(graph):
                yield float(out.time), out.to_ndarray()
