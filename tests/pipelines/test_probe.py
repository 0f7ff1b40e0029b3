import pickle
import random

import pytest

from reverie.pipelines.errors import VideoDecodeError
from reverie.pipelines.probe import VideoInfo, probe

CODECS = {".mp4": ("h264", "mp4"), ".avi": ("mpeg4", "avi"), ".webm": ("vp9", "webm"), ".mkv": ("h264", "matroska")}


def test_sample_videos_probe_to_their_known_stream(sample_videos):
    for video in sample_videos:
        info = probe(video)
        codec, container = CODECS[video.suffix]
        assert (info.path, info.width, info.height, info.codec) == (str(video), 320, 180, codec)
        assert container in info.container
        assert info.duration == pytest.approx(6.0, abs=0.05)
        assert info.fps == pytest.approx(24.0)
        assert info.num_frames in (0, 144), "the container's frame count, or 0 when it does not state one"


def test_variable_frame_rate_video_probes(vfr_video):
    info = probe(vfr_video)
    assert (info.width, info.height, info.codec) == (320, 240, "h264")
    assert info.duration == pytest.approx(4.0, abs=0.05)
    assert info.fps > 0


def test_info_round_trips_through_a_dict(sample_videos):
    info = probe(sample_videos[0])
    assert VideoInfo(**info.to_dict()) == info


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("empty", "empty file (0 bytes)"),
        ("truncated", "mp4/mov file that cannot be opened: truncated or corrupt"),
        ("corrupt", "mp4/mov file that cannot be opened: truncated or corrupt"),
        ("audio_only", "no video stream (only audio streams)"),
        ("text", "a text file, not a video"),
    ],
)
def test_damaged_files_raise_naming_the_file_and_why(kind, reason, damaged_files):
    path = damaged_files[kind]
    with pytest.raises(VideoDecodeError) as error:
        probe(path)
    assert error.value.path == str(path)
    assert error.value.reason.startswith(reason)
    assert str(error.value).startswith(f"{path.name}: {reason}")


def test_random_bytes_are_not_a_media_file(tmp_path):
    # Seeded: a few in a thousand os.urandom blobs parse as some stream, so the damaged_files fixture's
    # random.mkv cannot carry an exact expectation.
    path = tmp_path / "random.mkv"
    path.write_bytes(random.Random(0).randbytes(200_000))
    with pytest.raises(VideoDecodeError, match=r"^random\.mkv: not a media file: unknown format"):
        probe(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(VideoDecodeError, match=r"^gone\.mp4: no such file$"):
        probe(tmp_path / "gone.mp4")


def test_text_starting_with_g_is_a_text_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("Generated notes, not a video\n" * 100)
    with pytest.raises(VideoDecodeError, match="a text file, not a video"):
        probe(path)


def test_decode_error_survives_pickling_between_processes(damaged_files):
    with pytest.raises(VideoDecodeError) as raised:
        probe(damaged_files["audio_only"])
    copy = pickle.loads(pickle.dumps(raised.value))
    assert type(copy) is VideoDecodeError
    assert (copy.path, copy.reason, str(copy)) == (raised.value.path, raised.value.reason, str(raised.value))
