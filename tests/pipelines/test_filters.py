import subprocess

import imagehash
import numpy as np
from PIL import Image

from reverie.pipelines.decoders import DECODERS
from reverie.pipelines.filters import HASH_BITS, DedupIndex, clip_hash, frame_phash, motion_score
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import probe
from reverie.pipelines.synthetic import make_video


def first_clip(path, size=128, frames=16):
    info = probe(path)
    geometry = FrameGeometry.fit(info.width, info.height, size)
    decoded = [frame for _, frame in DECODERS.get("pyav")().frames(info, 8.0, geometry)]
    return np.stack(decoded[:frames])


def test_motion_score_is_zero_for_a_still_and_grows_with_change():
    still = np.full((8, 16, 16, 3), 77, np.uint8)
    assert motion_score(still) == 0.0
    ramp = np.stack([np.full((16, 16, 3), 10 * t, np.uint8) for t in range(8)])
    assert abs(motion_score(ramp) - 10 / 255) < 1e-6


def test_frame_phash_is_imagehash_phash():
    rng = np.random.default_rng(0)
    ramp = np.broadcast_to(np.linspace(0, 255, 96, dtype=np.uint8)[None, :, None], (64, 96, 3))
    frames = [rng.integers(0, 256, (72, 128, 3), dtype=np.uint8) for _ in range(20)]
    frames += [np.full((32, 32, 3), value, np.uint8) for value in (0, 90, 255)] + [np.ascontiguousarray(ramp)]
    assert [frame_phash(frame) for frame in frames] == [str(imagehash.phash(Image.fromarray(frame))) for frame in frames]


def test_same_footage_reencoded_is_a_near_duplicate(tmp_path, needs_ffmpeg):
    source = make_video(tmp_path / "a.mp4", seconds=2.5, size=(640, 360))
    smaller = tmp_path / "b.webm"
    transcode = ["ffmpeg", "-loglevel", "error", "-i", str(source), "-vf", "scale=320:180", "-c:v", "libvpx-vp9", str(smaller)]
    subprocess.run(transcode, check=True)
    original, reencoded = first_clip(source), first_clip(smaller)
    other = first_clip(make_video(tmp_path / "c.mp4", source="mandelbrot", seconds=2.5, size=(640, 360)))
    index = DedupIndex()
    assert index.nearest(clip_hash(original)) == HASH_BITS + 1
    index.add(clip_hash(original))
    assert index.nearest(clip_hash(reencoded)) <= 8
    assert index.nearest(clip_hash(other)) > 40


def test_dedup_index_returns_the_smallest_distance():
    index = DedupIndex()
    index.add("0" * 64)
    index.add("f" * 64)
    assert index.nearest("0" * 63 + "7") == 3
    assert index.nearest("f" * 62 + "00") == 8
    assert len(index) == 2
