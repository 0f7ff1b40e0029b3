"""Probe a file's container: is there a video stream, how long, how large, at what rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import av

from reverie.pipelines.errors import VideoDecodeError


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration: float  # seconds
    fps: float  # the stream's stated average rate (a variable-rate file may state its peak rate)
    width: int
    height: int
    codec: str
    container: str
    num_frames: int  # as the container states it; 0 when unknown

    def to_dict(self) -> dict:
        return asdict(self)


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


CONTAINER_SIGNATURES = {
    "mp4/mov": lambda head: head[4:8] == b"ftyp",
    "matroska/webm": lambda head: head[:4] == b"\x1a\x45\xdf\xa3",
    "avi": lambda head: head[:4] == b"RIFF",
    "mpeg-ts": lambda head: len(head) > 376 and head[0] == head[188] == head[376] == 0x47,
}


def _why_unreadable(path: Path, error: av.FFmpegError) -> str:
    """Say what the file looks like, since FFmpeg's own message is usually 'Invalid data found'."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    detail = error.strerror or str(error)
    for container, matches in CONTAINER_SIGNATURES.items():
        if matches(head):
            return f"{container} file that cannot be opened: truncated or corrupt ({detail})"
    if head and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "a text file, not a video"
    return f"not a media file: unknown format ({detail})"


def probe(path: str | Path) -> VideoInfo:
    """Read the container header of `path`; raise `VideoDecodeError` saying why it is not a video."""
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise VideoDecodeError(path, _why_unreadable(path, error)) from None
    with container:
        if not container.streams.video:
            kinds = sorted({stream.type for stream in container.streams})
            found = f"only {', '.join(kinds)} streams" if kinds else "no streams"
            raise VideoDecodeError(path, f"no video stream ({found})")
        stream = container.streams.video[0]
        context = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not context.width or not context.height:
            raise VideoDecodeError(path, "video stream has no frame size")
        return VideoInfo(
            path=str(path),
            duration=_duration(container, stream),
            fps=float(rate) if rate else 0.0,
            width=context.width,
            height=context.height,
            codec=context.name,
            container=container.format.name,
            num_frames=stream.frames or 0,
        )
