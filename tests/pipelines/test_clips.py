import os
import re

import numpy as np
import pytest

from reverie.pipelines.clips import ClipSpec, cut_clips, ingest_file
from reverie.pipelines.errors import SettingsError
from reverie.pipelines.synthetic import make_video


def stream(values, size=32):
    """A (time, frame) stream at 8 fps; each value fills a whole frame."""
    for index, value in enumerate(values):
        yield index / 8.0, np.full((size, size, 3), value, dtype=np.uint8)


def test_clips_are_consecutive_and_never_span_a_cut():
    # 20 dark frames, then a cut to 12 bright frames: the 4 leftover dark frames are dropped.
    values = [10 + i for i in range(20)] + [200 + i for i in range(12)]
    clips = list(cut_clips(stream(values), ClipSpec(clip_frames=8), frame_period=1 / 8))
    assert [(c.start_time, c.end_time, c.scene_index) for c in clips] == [(0.0, 1.0, 0), (1.0, 2.0, 0), (2.5, 3.5, 1)]
    for clip in clips:
        assert clip.frames.shape == (8, 32, 32, 3)
        assert len({int(v) // 100 for v in clip.frames[:, 0, 0, 0]}) == 1


def test_without_scene_cuts_clips_run_through_the_change():
    values = [10] * 12 + [200] * 4
    clips = list(cut_clips(stream(values), ClipSpec(clip_frames=8, scene_cuts=False), frame_period=1 / 8))
    assert len(clips) == 2 and clips[1].frames[:, 0, 0, 0].tolist() == [10] * 4 + [200] * 4


def test_ingest_file_spools_clips_with_metadata(sample_videos, tmp_path):
    record = ingest_file(str(sample_videos[0]), ClipSpec(size=64, clip_frames=8), str(tmp_path))
    assert record["status"] == "ok" and record["reason"] == ""
    assert (tmp_path / f"{record['key']}.tar").exists()
    # Two 3 s shots at 8 fps: 24 frames each, three 8-frame clips per shot.
    assert [meta["scene_index"] for meta in record["clips"]] == [0, 0, 0, 1, 1, 1]
    meta = record["clips"][3]
    assert meta["start_time"] == 3.0 and meta["end_time"] == 4.0
    assert (meta["width"], meta["height"], meta["frames"], meta["fps"]) == (64, 64, 8, 8.0)
    assert meta["source_codec"] == "h264" and len(meta["scores"]["phash"]) == 64


def test_static_clips_and_short_inputs_are_filtered(tmp_path, needs_ffmpeg):
    still = make_video(tmp_path / "still.mp4", source="smptebars", seconds=3.0)
    record = ingest_file(str(still), ClipSpec(size=64, min_motion=0.002), str(tmp_path))
    assert record["status"] == "skipped" and "near-static" in record["reason"]
    assert record["dropped"]["static"] == 1
    record = ingest_file(str(still), ClipSpec(size=64, min_duration=5.0), str(tmp_path))
    assert record["status"] == "skipped" and record["reason"] == "shorter than 5 s (3.00 s)"


def test_truncated_file_keeps_the_clips_before_the_break(sample_videos, tmp_path):
    source = sample_videos[3]  # matroska decodes up to where the bytes stop
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(source.read_bytes()[: int(source.stat().st_size * 0.7)])
    record = ingest_file(str(truncated), ClipSpec(size=64, clip_frames=8), str(tmp_path))
    assert record["status"] == "ok"
    assert "truncated" in record["reason"] and 1 <= len(record["clips"]) < 6


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("clip_frames", 0, "--clip-frames 0: must be at least 1"),
        ("fps", 0.0, "--fps 0: must be a positive, finite frame rate"),
        ("fps", float("nan"), "--fps nan: must be a positive, finite frame rate"),
        ("size", 255, "--size 255: must be even"),
        ("size", 0, "--size 0: must be at least 2"),
        ("cut_threshold", 300.0, "--cut-threshold 300: must be within 0..255"),
        ("min_duration", -1.0, "--min-duration -1: must be 0 (off) or more seconds"),
        ("min_motion", 2.0, "--min-motion 2: must be within 0..1"),
        ("clip_format", "gif", "--format gif: must be one of mp4, npy"),
        ("decoder", "ffplay", "--decoder ffplay: must be one of"),
    ],
)
def test_a_clip_setting_that_cannot_work_is_refused_naming_its_flag(setting, value, message):
    """Checked when the spec is made, before any input: a bad value must not fail every input one by one."""
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        ClipSpec(**{setting: value})
    assert error.value.flag == message.split()[0]


def test_the_spool_is_fsynced_with_its_folder(sample_videos, tmp_path, monkeypatch):
    """A spool left by a killed run is reused as it is: it must be whole after a power cut too."""
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (synced.append(os.fstat(descriptor).st_ino), fsync(descriptor)))
    record = ingest_file(str(sample_videos[0]), ClipSpec(size=64, clip_frames=8, clip_format="npy"), str(tmp_path))
    assert synced == [(tmp_path / f"{record['key']}.tar").stat().st_ino, tmp_path.stat().st_ino]
