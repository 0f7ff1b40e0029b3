"""Clip filters and their scores: motion (near-static clips) and perceptual hashes (near-duplicates).

The motion score is the mean absolute grey-level change between consecutive frames, on 0..1.
The clip hash is the 64-bit DCT perceptual hash (`imagehash.phash`) of `HASH_FRAMES` evenly
spaced frames, concatenated; two clips are near-duplicates when the Hamming distance of their
hashes is at most a threshold, so the same footage re-encoded, resized or re-uploaded matches while
different moments of one shot do not.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

HASH_FRAMES = 4
HASH_BITS = 64 * HASH_FRAMES


def motion_score(clip_frames: np.ndarray) -> float:
    """(T, H, W, 3) uint8 -> mean |grey(t+1) - grey(t)| / 255."""
    if len(clip_frames) < 2:
        return 0.0
    grey = clip_frames[:, ::2, ::2].astype(np.float32).mean(axis=-1)
    return float(np.abs(np.diff(grey, axis=0)).mean() / 255.0)


def clip_hash(clip_frames: np.ndarray) -> str:
    """Hex string of HASH_BITS bits: the pHash of HASH_FRAMES evenly spaced frames."""
    picks = np.linspace(0, len(clip_frames) - 1, HASH_FRAMES).round().astype(int)
    return "".join(str(imagehash.phash(Image.fromarray(clip_frames[i]))) for i in picks)


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
