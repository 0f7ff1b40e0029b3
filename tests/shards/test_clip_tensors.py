"""`decode_sample` on samples made here: a good clip, and each way a member can be corrupt or lie
about its size. A member larger than its JSON says is refused before it is decoded whole."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from reverie.shards.clip_tensors import BadSampleError, decode_sample
from reverie.shards.payloads import encode_mp4

FRAMES, HEIGHT, WIDTH = 8, 16, 16


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def raw_sample(key: str = "clip", frames: np.ndarray | None = None, meta: dict | None = None, **members) -> dict:
    """A raw sample as the loader reads it: member extension -> bytes."""
    frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8) if frames is None else frames
    meta = {"key": key, "frames": FRAMES, "height": HEIGHT, "width": WIDTH, "fps": 8.0} if meta is None else meta
    raw = {"__key__": key, "__url__": "shards/000007.tar", "json": json.dumps(meta).encode(), "npy": npy_bytes(frames)}
    return raw | {name: value if isinstance(value, bytes) else npy_bytes(value) for name, value in members.items()}


def mp4_sample(mp4: bytes, **meta_changes) -> dict:
    raw = raw_sample()
    del raw["npy"]
    meta = json.loads(raw["json"]) | meta_changes
    return raw | {"mp4": mp4, "json": json.dumps({k: v for k, v in meta.items() if v is not None}).encode()}


def unindexed_mp4(frame_count: int) -> bytes:
    """A fragmented mp4: its header does not state its frame count, it is found by decoding."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(8))
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        stream.options = {"g": "4"}
        for index in range(frame_count):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), index % 256, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.fixture
def decoded_frames(monkeypatch) -> list[int]:
    """Counts the frames that PyAV decodes (one entry per decoded frame)."""
    counted, real_open = [], av.open

    class CountingContainer:
        def __init__(self, container):
            self.container = container

        def __getattr__(self, name):
            return getattr(self.container, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.container.__exit__(*exc)

        def decode(self, *args, **kwargs):
            for frame in self.container.decode(*args, **kwargs):
                counted.append(1)
                yield frame

    monkeypatch.setattr(av, "open", lambda *args, **kwargs: CountingContainer(real_open(*args, **kwargs)))
    return counted


def refusal(raw: dict) -> str:
    with pytest.raises(BadSampleError) as refused:
        decode_sample(raw, None, np.random.default_rng(0))
    assert str(refused.value).startswith(f"shards/000007.tar: sample {raw['__key__']}: ")
    assert "\n" not in str(refused.value)
    return refused.value.reason


def test_a_good_mp4_clip_decodes_to_its_stated_shape(decoded_frames):
    sample = decode_sample(mp4_sample(encode_mp4(np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8), 8.0)), 5, np.random.default_rng(0))
    assert sample["frames"].shape == (5, 3, HEIGHT, WIDTH) and len(decoded_frames) == FRAMES


def test_an_mp4_declaring_more_frames_than_its_json_is_refused_before_decoding(decoded_frames):
    reason = refusal(mp4_sample(encode_mp4(np.zeros((400, HEIGHT, WIDTH, 3), np.uint8), 8.0)))
    assert reason == f"mp4 declares 400 frames, its json says {FRAMES}" and decoded_frames == []


def test_an_mp4_of_another_frame_size_is_refused_before_decoding(decoded_frames):
    reason = refusal(mp4_sample(encode_mp4(np.zeros((FRAMES, 2 * HEIGHT, 4 * WIDTH, 3), np.uint8), 8.0)))
    assert reason == f"mp4 frames are {4 * WIDTH}x{2 * HEIGHT}, its json says {WIDTH}x{HEIGHT}" and decoded_frames == []


def test_a_stream_that_does_not_state_its_length_stops_one_frame_past_the_json(decoded_frames):
    reason = refusal(mp4_sample(unindexed_mp4(400)))
    assert reason == f"mp4 holds more than the {FRAMES} frames its json says" and len(decoded_frames) == FRAMES + 1


def test_a_truncated_mp4_is_refused():
    fragmented = unindexed_mp4(40)  # plays until it breaks off; a plain mp4 cut short has lost its index
    assert refusal(mp4_sample(fragmented[: len(fragmented) // 3], frames=40)).startswith("mp4 breaks off after ")
    cut = encode_mp4(np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8), 8.0)
    assert refusal(mp4_sample(cut[: len(cut) // 2])) == "mp4 has no video stream"
    assert refusal(mp4_sample(cut[:100])).startswith("mp4 does not open: ")


@pytest.mark.parametrize("missing", ["frames", "height", "width"])
def test_an_mp4_whose_json_does_not_state_its_size_is_refused(missing):
    mp4 = encode_mp4(np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8), 8.0)
    assert refusal(mp4_sample(mp4, **{missing: None})) == f"json has no {missing}: an mp4 is decoded only up to the size its json states"


def test_json_values_that_are_not_sizes_are_refused():
    assert refusal(raw_sample(meta={"frames": "8", "height": HEIGHT, "width": WIDTH})) == "json frames is '8', not a positive integer"
    assert refusal(raw_sample(meta=[1, 2])) == "json is a list, not an object"
    assert refusal(raw_sample() | {"json": b"{not json"}).startswith("json does not parse: ")


def test_npy_frames_are_checked_against_the_json():
    assert refusal(raw_sample(frames=np.zeros((FRAMES, HEIGHT, WIDTH + 1, 3), np.uint8))) == (
        f"npy frames are {(FRAMES, HEIGHT, WIDTH + 1, 3)}, its json says {FRAMES} x {HEIGHT} x {WIDTH}"
    )
    assert refusal(raw_sample(frames=np.zeros((FRAMES, HEIGHT, WIDTH), np.uint8))).startswith("npy frames are uint8 (8, 16, 16)")
    loose = decode_sample(raw_sample(meta={}), None, np.random.default_rng(0))  # a hand-made shard: its bytes bound it
    assert loose["frames"].shape == (FRAMES, 3, HEIGHT, WIDTH)


def test_an_npy_whose_header_declares_more_than_it_holds_is_refused():
    payload = npy_bytes(np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8))
    lying = payload.replace(b"(8, 16, 16, 3), }   ", b"(8000, 16, 16, 3), }")  # the header keeps its length
    assert refusal(raw_sample() | {"npy": lying}) == "npy declares uint8 (8000, 16, 16, 3), 6144000 bytes, but holds 6144"


def test_aligned_arrays_of_the_wrong_shape_or_type_are_refused():
    assert refusal(raw_sample(**{"rewards.npy": np.zeros((FRAMES, 2), np.float32)})) == "rewards.npy is (8, 2), not (T,)"
    assert refusal(raw_sample(**{"actions.npy": np.zeros(FRAMES + 1, np.int64)})).startswith("arrays are not aligned in time")
    assert refusal(raw_sample(**{"actions.npy": np.array(["left"] * FRAMES)})) == "actions.npy holds <U4, not numbers or booleans"
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}] * FRAMES, dtype=object), allow_pickle=True)
    assert refusal(raw_sample(**{"actions.npy": pickled.getvalue()})) == "actions.npy holds Python objects (pickles are refused)"


def test_aligned_arrays_come_out_as_tensors():
    sample = decode_sample(raw_sample(**{"actions.npy": np.arange(FRAMES)}), 4, np.random.default_rng(0))
    assert sample["actions"].dtype == torch.int64 and torch.equal(sample["actions"], torch.arange(4) + sample["window_start"])
