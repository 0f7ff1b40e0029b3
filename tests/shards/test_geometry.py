import subprocess

import pytest

from reverie.shards.geometry import FrameGeometry


@pytest.mark.parametrize("source", [(320, 180), (180, 320), (1920, 1080), (321, 241), (32, 24), (640, 640)])
@pytest.mark.parametrize("size", [64, 256])
def test_short_side_becomes_size_and_the_crop_is_centred(source, size):
    geometry = FrameGeometry.fit(*source, size)
    assert (geometry.width, geometry.height) == (size, size)
    assert min(geometry.scaled_width, geometry.scaled_height) == size
    assert geometry.scaled_width % 2 == 0 and geometry.scaled_height % 2 == 0
    assert 2 * geometry.crop_x + size == geometry.scaled_width
    assert 2 * geometry.crop_y + size == geometry.scaled_height
    assert geometry.scaled_width / geometry.scaled_height == pytest.approx(source[0] / source[1], rel=0.02)


def test_landscape_and_portrait_crop_along_the_long_side():
    assert FrameGeometry.fit(320, 180, 64) == FrameGeometry(114, 64, 64, 64, 25, 0)
    assert FrameGeometry.fit(180, 320, 64) == FrameGeometry(64, 114, 64, 64, 0, 25)


@pytest.mark.parametrize("source", [(320, 180), (180, 320), (321, 241), (1000, 3)])
def test_keep_aspect_keeps_the_whole_frame_with_even_sides(source):
    geometry = FrameGeometry.fit(*source, 64, keep_aspect=True)
    assert (geometry.width, geometry.height) == (geometry.scaled_width, geometry.scaled_height)
    assert (geometry.crop_x, geometry.crop_y) == (0, 0)
    assert geometry.width % 2 == 0 and geometry.height % 2 == 0
    assert min(geometry.width, geometry.height) == 64


@pytest.mark.parametrize("size", [63, 1, 255])
def test_odd_size_is_refused_naming_the_flag(size):
    with pytest.raises(ValueError, match=rf"--size must be even .* got {size}"):
        FrameGeometry.fit(320, 180, size)


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_ffmpeg_filter_produces_frames_of_the_planned_size(keep_aspect, sample_videos):
    geometry = FrameGeometry.fit(320, 180, 64, keep_aspect=keep_aspect)
    command = ["ffmpeg", "-loglevel", "error", "-i", str(sample_videos[0]), "-vf", geometry.ffmpeg_filter(4.0)]
    command += ["-frames:v", "1", "-f", "rawvideo", "-"]
    frame = subprocess.run(command, capture_output=True, check=True).stdout
    assert len(frame) == geometry.width * geometry.height * 3
