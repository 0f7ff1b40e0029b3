"""One input file -> its clips: decode, resample, cut at shot changes, score, encode, spool.

This is the work a pool worker does for one input. Clips are `clip_frames` consecutive frames of
one shot at `fps`; a shot change drops the partial clip before it. Each kept clip is scored
(motion, perceptual hash), encoded, and written to a spool tar that is renamed into place only
when the whole input is done, so a finished spool survives a killed run.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from reverie.pipelines.decoders import DECODERS
from reverie.shards.payloads import CLIP_FORMATS, encode_clip
from reverie.pipelines.errors import VideoDecodeError, check_setting
from reverie.pipelines.filters import clip_hash, motion_score
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import VideoInfo, probe
from reverie.pipelines.scenes import CutDetector
from reverie.shards.writer import TarWriter, sync_rename


# Stated durations can be off by a little; a file that ends earlier than this is reported truncated.
TRUNCATION_SLACK_S = 1.0


# The `reverie ingest` flag of each ClipSpec field, for the errors that name them.
SPEC_FLAGS = {
    "clip_frames": "--clip-frames",
    "fps": "--fps",
    "size": "--size",
    "keep_aspect": "--keep-aspect",
    "scene_cuts": "--scene-cuts",
    "cut_threshold": "--cut-threshold",
    "min_duration": "--min-duration",
    "min_motion": "--min-motion",
    "clip_format": "--format",
    "decoder": "--decoder",
}


@dataclass(frozen=True)
class ClipSpec:
    """How every input is cut into clips (the `reverie ingest` flags).

    Made only with values that can work (else `SettingsError` naming the flag), so that a bad value
    stops the run before its first input instead of failing every input in the manifest.
    """

    clip_frames: int = 16
    fps: float = 8.0
    size: int = 256
    keep_aspect: bool = False
    scene_cuts: bool = True
    cut_threshold: float = 27.0
    min_duration: float = 0.0  # seconds; shorter inputs are skipped (0 turns the filter off)
    min_motion: float = 0.0  # clips with a lower motion score are dropped (0 turns the filter off)
    clip_format: str = "mp4"
    decoder: str = "pyav"

    def __post_init__(self) -> None:
        check_setting(self.clip_frames >= 1, "--clip-frames", self.clip_frames, "must be at least 1")
        check_setting(self.fps > 0 and math.isfinite(self.fps), "--fps", self.fps, "must be a positive, finite frame rate")
        check_setting(self.size >= 2, "--size", self.size, "must be at least 2")
        check_setting(self.size % 2 == 0, "--size", self.size, "must be even (frames are stored as yuv420p, whose sides are even)")
        check_setting(0 <= self.cut_threshold <= 255, "--cut-threshold", self.cut_threshold, "must be within 0..255 (an HSV change)")
        check_setting(0 <= self.min_duration < math.inf, "--min-duration", self.min_duration, "must be 0 (off) or more seconds")
        check_setting(0 <= self.min_motion <= 1, "--min-motion", self.min_motion, "must be within 0..1 (0: off)")
        check_setting(self.clip_format in CLIP_FORMATS, "--format", self.clip_format, f"must be one of {', '.join(CLIP_FORMATS)}")
        check_setting(self.decoder in DECODERS, "--decoder", self.decoder, f"must be one of {', '.join(DECODERS.names())}")


@dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8
    start_time: float
    end_time: float
    scene_index: int


def input_key(path: str | Path) -> str:
    """A stable id for an input: the first 16 hex digits of the SHA-1 of its absolute path."""
    return hashlib.sha1(str(Path(path).absolute()).encode()).hexdigest()[:16]


def clip_key(source_key: str, clip_index: int) -> str:
    return f"{source_key}_{clip_index:05d}"


def cut_clips(frames: Iterator[tuple[float, np.ndarray]], spec: ClipSpec, frame_period: float) -> Iterator[Clip]:
    """Group a (time, frame) stream into consecutive clips that never span a detected cut."""
    detector = CutDetector(threshold=spec.cut_threshold)
    pending: list[np.ndarray] = []
    start_time, scene_index = 0.0, 0
    for time_s, frame in frames:
        if spec.scene_cuts and detector.update(frame)[1]:
            pending, scene_index = [], scene_index + 1
        if not pending:
            start_time = time_s
        pending.append(frame)
        if len(pending) == spec.clip_frames:
            yield Clip(np.stack(pending), start_time, time_s + frame_period, scene_index)
            pending = []


def ingest_file(path: str, spec: ClipSpec, spool_dir: str, info: VideoInfo | None = None) -> dict:
    """Cut `path` into clips and spool them; return the input's record (status, reason, clip metadata).

    Raises `VideoDecodeError` when the file yields no frame at all. A decode error after some frames
    keeps the clips before it and says where decoding stopped in `reason`.
    """
    started = time.perf_counter()
    info = info or probe(path)
    source_key = input_key(path)
    record = {"path": path, "key": source_key, "info": info.to_dict(), "clips": [], "frames": 0, "dropped": {"static": 0}}
    if spec.min_duration and info.duration < spec.min_duration:
        return record | {"status": "skipped", "reason": f"shorter than {spec.min_duration:g} s ({info.duration:.2f} s)"}
    geometry = FrameGeometry.fit(info.width, info.height, spec.size, spec.keep_aspect)
    frames = DECODERS.get(spec.decoder)().frames(info, spec.fps, geometry)
    spool = Path(spool_dir) / f"{source_key}.tar"
    partial = spool.with_suffix(".tar.partial")
    reason = ""
    with TarWriter(partial) as sink:
        try:
            for index, clip in enumerate(cut_clips(_track(frames, record), spec, 1.0 / spec.fps)):
                motion = motion_score(clip.frames)
                if spec.min_motion and motion < spec.min_motion:
                    record["dropped"]["static"] += 1
                    continue
                meta = _clip_meta(record, info, spec, clip, clip_key(source_key, index), motion)
                sink.write({"__key__": meta["key"], spec.clip_format: encode_clip(clip.frames, spec.fps, spec.clip_format), "json": meta})
                record["clips"].append(meta)
        except VideoDecodeError as error:
            if not record["frames"]:
                partial.unlink(missing_ok=True)
                raise
            reason = f"decoding stopped at {record['last_time']:.2f} s: {error.reason}"
    sync_rename(partial, spool)  # a spool is reused as it is by the next run: whole, even after a power cut
    reason = reason or _truncation(record, info, spec)
    record.pop("last_time", None)
    if not record["frames"]:
        status, reason = "failed", "no frame could be decoded"
    elif record["clips"]:
        status = "ok"
    elif reason:
        status = "failed"
    else:
        status, reason = "skipped", _why_no_clips(record, spec)
    return record | {"status": status, "reason": reason, "seconds": time.perf_counter() - started}


def _truncation(record: dict, info: VideoInfo, spec: ClipSpec) -> str:
    """A file cut short often decodes cleanly up to where it stops: compare with the stated duration."""
    if not record["frames"]:
        return ""
    decoded_until = record["last_time"] + 1.0 / spec.fps
    if decoded_until < info.duration - TRUNCATION_SLACK_S:
        return f"decoding stopped at {decoded_until:.2f} s of {info.duration:.2f} s: truncated file"
    return ""


def _track(frames: Iterator[tuple[float, np.ndarray]], record: dict) -> Iterator[tuple[float, np.ndarray]]:
    for time_s, frame in frames:
        record["frames"] += 1
        record["last_time"] = time_s
        yield time_s, frame


def _why_no_clips(record: dict, spec: ClipSpec) -> str:
    if record["dropped"]["static"]:
        return f"all {record['dropped']['static']} clips near-static (motion < {spec.min_motion:g})"
    return f"no shot of {spec.clip_frames} frames at {spec.fps:g} fps ({record['frames']} frames decoded)"


def _clip_meta(record: dict, info: VideoInfo, spec: ClipSpec, clip: Clip, key: str, motion: float) -> dict:
    frames, height, width = clip.frames.shape[:3]
    return {
        "key": key,
        "source": record["path"],
        "source_key": record["key"],
        "start_time": round(clip.start_time, 6),
        "end_time": round(clip.end_time, 6),
        "scene_index": clip.scene_index,
        "frames": frames,
        "fps": spec.fps,
        "width": width,
        "height": height,
        "format": spec.clip_format,
        "source_fps": info.fps,
        "source_width": info.width,
        "source_height": info.height,
        "source_codec": info.codec,
        "scores": {"motion": round(motion, 6), "phash": clip_hash(clip.frames)},
        "decoder": spec.decoder,
    }
