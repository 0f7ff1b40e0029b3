import numpy as np
import pytest

from reverie.shards.payloads import decode_mp4, encode_clip


def test_mp4_round_trip_is_close():
    ramp = np.linspace(0, 255, 64, dtype=np.float32)
    frames = np.stack([np.stack([np.add.outer(ramp, ramp * 0 + t * 8) % 256] * 3, -1) for t in range(8)]).astype(np.uint8)
    decoded = decode_mp4(encode_clip(frames, 8.0, "mp4"))
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 3


def test_npy_payload_is_the_frames_and_unknown_format_is_refused():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    assert encode_clip(frames, 8.0, "npy") is not None
    with pytest.raises(ValueError, match="unknown clip format 'gif'"):
        encode_clip(frames, 8.0, "gif")
