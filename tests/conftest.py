"""Shared generated data: every test makes its own videos with the ffmpeg command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reverie.pipelines.synthetic import make_damaged_files, make_sample_set, make_variable_frame_rate


def pytest_collection_modifyitems(config, items):
    if shutil.which("ffmpeg") is None:
        skip = pytest.mark.skip(reason="the ffmpeg command line is not installed (make test installs it)")
        for item in items:
            if "needs_ffmpeg" in item.fixturenames:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def needs_ffmpeg():
    return shutil.which("ffmpeg")


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory, needs_ffmpeg) -> list[Path]:
    """Four 6 s videos of two 3 s shots each (cut at 3.0 s): mp4/h264, avi/mpeg4, webm/vp9, mkv/h264."""
    return make_sample_set(tmp_path_factory.mktemp("samples"), count=4, seconds=6.0, size=(320, 180))


@pytest.fixture(scope="session")
def vfr_video(tmp_path_factory, needs_ffmpeg) -> Path:
    return make_variable_frame_rate(tmp_path_factory.mktemp("vfr") / "vfr.mkv", seconds=4.0)


@pytest.fixture(scope="session")
def damaged_files(tmp_path_factory, sample_videos) -> dict[str, Path]:
    return make_damaged_files(tmp_path_factory.mktemp("damaged"), sample_videos[0])
