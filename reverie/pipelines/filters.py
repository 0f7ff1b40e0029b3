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


def _words(hex_hash: str) -> np.ndarray:
    return np.array([int(hex_hash[i : i + 16], 16) for i in range(0, len(hex_hash), 16)], dtype=np.uint64)


class DedupIndex:
    """The hashes of the clips kept so far; `nearest` is the smallest Hamming distance to them."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._table = np.zeros((0, HASH_FRAMES), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._table) + len(self._rows)

    def add(self, hex_hash: str) -> None:
        self._rows.append(_words(hex_hash))

    def nearest(self, hex_hash: str) -> int:
        """Hamming distance to the closest kept clip (HASH_BITS + 1 when the index is empty)."""
        if self._rows:
            self._table = np.concatenate([self._table, np.stack(self._rows)])
            self._rows = []
        if not len(self._table):
            return HASH_BITS + 1
        differing = np.bitwise_xor(self._table, _words(hex_hash)[None, :])
        return int(np.bitwise_count(differing).sum(axis=1).min())
