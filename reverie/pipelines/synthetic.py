"""Generated test videos with known content, made with the `ffmpeg` command line's lavfi sources.

Tests, benchmarks and `make quickstart` use them: shots with known cut times, several codecs and
containers, odd frame sizes, variable frame rate, and damaged files of every kind ingestion must
survive.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

# Moving sources of clearly different content: a cut between two of them is a shot change.
SHOT_SOURCES = ("testsrc2", "mandelbrot", "gradients=speed=0.2", "life=mold=10:ratio=0.2:death_color=#c83232:life_color=#00ff00")


def require_ffmpeg() -> str:
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise RuntimeError("the ffmpeg command line is needed to generate test videos (apt-get install ffmpeg)")
    return binary


def _run(arguments: list[str]) -> None:
    subprocess.run([require_ffmpeg(), "-loglevel", "error", "-y", *arguments], check=True)


def make_shots(
    path: str | Path,
    shots: list[tuple[str, float]],
    size: tuple[int, int] = (320, 240),
    fps: float = 24,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = False,
) -> Path:
    """A video of consecutive shots `(lavfi source, seconds)`: the cuts fall at the running sums."""
    width, height = size
    arguments: list[str] = []
    for source, seconds in shots:
        arguments += ["-f", "lavfi", "-t", str(seconds), "-i", _source(source, width, height, fps)]
    chain = "".join(f"[{i}:v]setsar=1[v{i}];" for i in range(len(shots)))
    chain += "".join(f"[v{i}]" for i in range(len(shots))) + f"concat=n={len(shots)}:v=1:a=0[out]"
    arguments += ["-filter_complex", chain, "-map", "[out]"]
    if audio:
        arguments += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={sum(s for _, s in shots)}", "-map", f"{len(shots)}:a"]
    arguments += ["-c:v", codec, "-pix_fmt", pix_fmt, str(path)]
    _run(arguments)
    return Path(path)


def _source(source: str, width: int, height: int, fps: float) -> str:
    name, _, options = source.partition("=")
    options = f"{options}:" if options else ""
    return f"{name}={options}size={width}x{height}:rate={fps}"


def make_video(path: str | Path, source: str = "testsrc2", seconds: float = 4.0, **kwargs) -> Path:
    """One shot of one source."""
    return make_shots(path, [(source, seconds)], **kwargs)


def make_variable_frame_rate(path: str | Path, seconds: float = 4.0, size: tuple[int, int] = (320, 240)) -> Path:
    """An mkv whose frame durations alternate between 1/60 s and 1/30 s (40 fps on average)."""
    width, height = size
    _run(
        [
            "-f", "lavfi", "-t", str(seconds), "-i", _source("testsrc2", width, height, 60),
            "-vf", "select='not(eq(mod(n\\,3)\\,2))'",
            "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
        ]
    )  # fmt: skip
    return Path(path)


def make_damaged_files(folder: str | Path, good_video: str | Path) -> dict[str, Path]:
    """Every kind of bad input, by name: empty, truncated, corrupt, random bytes, audio-only, text."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = Path(good_video).read_bytes()
    files = {
        "empty": folder / "empty.mp4",
        "truncated": folder / "truncated.mp4",
        "corrupt": folder / "corrupt.mp4",
        "random": folder / "random.mkv",
        "audio_only": folder / "audio_only.m4a",
        "text": folder / "notes.mp4",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(payload[: len(payload) // 3])
    files["corrupt"].write_bytes(payload[:64] + random.Random(1).randbytes(len(payload) - 64))
    files["random"].write_bytes(random.Random(0).randbytes(200_000))
    files["text"].write_text("this is not a video\n" * 100)
    _run(["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(files["audio_only"])])
    return files


def make_sample_set(folder: str | Path, count: int = 6, seconds: float = 6.0, size: tuple[int, int] = (480, 270)) -> list[Path]:
    """A small mixed set: multi-shot videos, several codecs and containers."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    formats = [("libx264", "mp4"), ("mpeg4", "avi"), ("libvpx-vp9", "webm"), ("libx264", "mkv")]
    made = []
    for index in range(count):
        codec, extension = formats[index % len(formats)]
        first, second = SHOT_SOURCES[index % len(SHOT_SOURCES)], SHOT_SOURCES[(index + 1) % len(SHOT_SOURCES)]
        shots = [(first, seconds / 2), (second, seconds / 2)]
        made.append(make_shots(folder / f"sample_{index:02d}.{extension}", shots, size=size, codec=codec))
    return made
