import numpy as np
import pytest

from reverie.pipelines.decoders import DECODERS, available_decoders
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import probe
from reverie.pipelines.synthetic import make_video

BACKENDS = available_decoders()


def decode(name, path, fps=8.0, size=64, keep_aspect=False):
    info = probe(path)
    geometry = FrameGeometry.fit(info.width, info.height, size, keep_aspect)
    pairs = list(DECODERS.get(name)().frames(info, fps, geometry))
    return np.array([time for time, _ in pairs]), np.stack([frame for _, frame in pairs])


def test_all_three_backends_are_installed():
    assert set(BACKENDS) == {"pyav", "decord", "torchcodec"}


@pytest.mark.parametrize("name", BACKENDS)
def test_every_codec_and_container(name, sample_videos):
    for video in sample_videos:
        times, frames = decode(name, video)
        assert frames.shape == (48, 64, 64, 3) and frames.dtype == np.uint8, video.name
        np.testing.assert_allclose(times, np.arange(48) / 8.0, atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_odd_source_size_and_keep_aspect(name, tmp_path_factory, needs_ffmpeg):
    video = make_video(tmp_path_factory.mktemp(name) / "odd.mkv", seconds=2.0, size=(333, 201), fps=25, pix_fmt="yuv444p")
    _, cropped = decode(name, video, size=64)
    _, kept = decode(name, video, size=64, keep_aspect=True)
    assert cropped.shape[1:] == (64, 64, 3)
    assert kept.shape[1:] == (64, 106, 3)


@pytest.mark.parametrize("name", BACKENDS)
def test_variable_frame_rate_is_resampled_by_timestamp(name, vfr_video):
    times, frames = decode(name, vfr_video, fps=10.0)
    assert len(frames) == 40
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-6)


def test_backends_agree_on_content(sample_videos):
    reference = decode("pyav", sample_videos[0])[1].astype(np.float32)
    for name in BACKENDS:
        frames = decode(name, sample_videos[0])[1].astype(np.float32)
        # Different resize kernels; the same frames at the same instants.
        assert np.abs(frames - reference).mean() < 12.0, name
