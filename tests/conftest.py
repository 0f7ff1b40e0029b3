"""Shared generated data: every test makes its own videos with the ffmpeg command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# MuJoCo picks its GL backend when it is first imported, and the machines that run the tests have
# no display: render off-screen with EGL, before any test module imports mujoco.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
from pathlib import Path

import pytest

from reverie.pipelines.clips import ClipSpec
from reverie.pipelines.ingest import IngestConfig, run_ingest
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


@pytest.fixture(scope="session")
def clip_shards(tmp_path_factory, sample_videos) -> Path:
    """Shards of the sample videos, ingested at 32 px, 8 frames per clip, npy: for training tests."""
    out = tmp_path_factory.mktemp("clips")
    spec = ClipSpec(clip_frames=8, fps=8.0, size=32, clip_format="npy", min_motion=0)
    run_ingest(IngestConfig(inputs=[str(v) for v in sample_videos], out=out, spec=spec, workers=2, shard_max_count=4, progress=False))
    return out / "shards"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`):
    tiny models run op by op on small tensors, where OpenMP threads only wait on each other; on a
    busy machine that made them 20-40x slower than one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


HOLD = "import sys, time; from reverie.shards.folder_lock import FolderLock; FolderLock(*sys.argv[1:]).acquire(); print('held', flush=True); time.sleep(60)"


@pytest.fixture
def hold_lock():
    """`hold(folder, name=".lock")`: start a process that holds that lock of `folder` (as a running
    command would) and return it once it does; every such process is killed when the test ends."""
    processes = []

    def hold(folder: Path, name: str = ".lock") -> subprocess.Popen:
        processes.append(subprocess.Popen([sys.executable, "-c", HOLD, str(folder), name], stdout=subprocess.PIPE, text=True))
        assert processes[-1].stdout.readline().strip() == "held"
        return processes[-1]

    yield hold
    for process in processes:
        process.kill()
        process.wait()
