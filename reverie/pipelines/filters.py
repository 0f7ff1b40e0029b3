"""Clip filters and their scores: motion (near-static clips) and perceptual hashes (near-duplicates).

The motion score is the mean absolute grey-level change between consecutive frames, on 0..1.
The clip hash is the 64-bit DCT perceptual hash of `HASH_FRAMES` evenly spaced frames,
concatenated; two clips are near-duplicates when the Hamming distance of their hashes is at most a
threshold, so the same footage re-encoded, resized or re-uploaded matches while different moments of
one shot do not. `frame_phash` gives the bits of `imagehash.phash` (grey 32 x 32 Lanczos thumbnail,
the 8 x 8 lowest frequencies of its DCT-II, each above or below their median) with the DCT as two
small matrix products: imagehash's scipy import would cost each worker process 0.2 s.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_FRAMES = 4
HASH_BITS = 64 * HASH_FRAMES
HASH_SIDE, THUMBNAIL_SIDE = 8, 32


def _dct_basis(frequencies: int, samples: int) -> np.ndarray:
    """(frequencies, samples) rows of the unnormalised DCT-II, `scipy.fftpack.dct`'s default."""
    k, n = np.arange(frequencies)[:, None], np.arange(samples)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * samples))


DCT_BASIS = _dct_basis(HASH_SIDE, THUMBNAIL_SIDE)


def motion_score(clip_frames: np.ndarray) -> float:
    """(T, H, W, 3) uint8 -> mean |grey(t+1) - grey(t)| / 255."""
    if len(clip_frames) < 2:
        return 0.0
    red, green, blue = np.moveaxis(clip_frames[:, ::2, ::2], -1, 0).astype(np.int16)
    grey_sum = red + green + blue  # 3 x grey, exact in int16 and quicker than a mean over channels
    return float(np.abs(np.diff(grey_sum, axis=0)).mean() / (3 * 255.0))


def frame_phash(frame: np.ndarray) -> str:
    """(H, W, 3) uint8 RGB -> 16 hex digits, the same as `str(imagehash.phash(Image.fromarray(frame)))`."""
    thumbnail = Image.fromarray(frame).convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    low = DCT_BASIS @ np.asarray(thumbnail, dtype=np.float64) @ DCT_BASIS.T
    low = low.round(6)  # a flat frame's zero frequencies must compare equal, not by rounding noise
    return np.packbits(low > np.median(low)).tobytes().hex()


def clip_hash(clip_frames: np.ndarray) -> str:
    """Hex string of HASH_BITS bits: the pHash of HASH_FRAMES evenly spaced frames."""
    picks = np.linspace(0, len(clip_frames) - 1, HASH_FRAMES).round().astype(int)
    return "".join(frame_phash(clip_frames[i]) for i in picks)


# Hashes are stored by rows of this many in fixed (WORDS, CHUNK_ROWS) arrays: 2 MB each.
CHUNK_ROWS = 1 << 16
WORDS = HASH_BITS // 64


def _words(hex_hash: str) -> np.ndarray:
    """A hex hash as its WORDS 64-bit words, most significant first."""
    return np.frombuffer(bytes.fromhex(hex_hash), dtype=">u8").astype(np.uint64)


class DedupIndex:
    """The hashes of the clips kept so far; `nearest` is the smallest Hamming distance to them.

    The search is exhaustive, since `nearest` is stored as each clip's `dup_distance` score. Hashes
    fill fixed chunks of `chunk_rows` rows in place, word by word ((WORDS, chunk_rows) uint64, so
    that each word of all rows is contiguous): adding never copies what is stored, and a lookup
    scans chunk by chunk through scratch arrays of one chunk's size, allocated once.
    """

    def __init__(self, chunk_rows: int = CHUNK_ROWS) -> None:
        self.chunk_rows = chunk_rows
        self._chunks: list[np.ndarray] = []  # each (WORDS, chunk_rows) uint64; the last one filling
        self._size = 0
        self._differing = np.empty((WORDS, chunk_rows), dtype=np.uint64)
        self._bit_counts = np.empty((WORDS, chunk_rows), dtype=np.uint8)
        self._distances = np.empty(chunk_rows, dtype=np.uint16)

    def __len__(self) -> int:
        return self._size

    def add(self, hex_hash: str) -> None:
        row = self._size % self.chunk_rows
        if row == 0:
            self._chunks.append(np.empty((WORDS, self.chunk_rows), dtype=np.uint64))
        self._chunks[-1][:, row] = _words(hex_hash)
        self._size += 1

    def nearest(self, hex_hash: str) -> int:
        """Hamming distance to the closest kept clip (HASH_BITS + 1 when the index is empty)."""
        if not self._size:
            return HASH_BITS + 1
        query = _words(hex_hash)[:, None]
        best = HASH_BITS
        for index, chunk in enumerate(self._chunks):
            rows = min(self.chunk_rows, self._size - index * self.chunk_rows)
            differing, bit_counts, distances = self._differing[:, :rows], self._bit_counts[:, :rows], self._distances[:rows]
            np.bitwise_xor(chunk[:, :rows], query, out=differing)
            np.bitwise_count(differing, out=bit_counts)
            np.add.reduce(bit_counts, axis=0, dtype=np.uint16, out=distances)
            best = min(best, int(distances.min()))
        return best
