import subprocess
import tracemalloc

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


def random_hashes(count: int, seed: int = 0) -> list[str]:
    """`count` hashes of HASH_BITS random bits, every fourth a copy of an earlier one with a few bits flipped."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (count, HASH_BITS // 8), dtype=np.uint8)
    for index in range(4, count, 4):
        rows[index] = rows[rng.integers(index)] ^ (rng.random(HASH_BITS // 8) < 0.02).astype(np.uint8)
    return [row.tobytes().hex() for row in rows]


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_dedup_index_equals_a_brute_force_search_across_its_chunks():
    index, kept = DedupIndex(chunk_rows=8), []
    for hex_hash in random_hashes(60):
        assert index.nearest(hex_hash) == min((hamming(hex_hash, other) for other in kept), default=HASH_BITS + 1)
        index.add(hex_hash)
        kept.append(hex_hash)
    assert len(index) == 60


def test_an_add_and_a_lookup_do_not_copy_the_table():
    """Ingestion alternates lookups and adds, clip after clip: one step must cost no copy of the
    hashes stored so far (at 100k hashes, 3.2 MB)."""
    hashes = random_hashes(100_001)
    index = DedupIndex()
    for hex_hash in hashes[:-1]:
        index.add(hex_hash)
    index.nearest(hashes[-1])
    tracemalloc.start()
    index.add(hashes[-1])
    index.nearest(hashes[0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100_000 * HASH_BITS // 8 // 10
