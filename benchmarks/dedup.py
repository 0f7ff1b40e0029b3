"""The near-duplicate index at scale: `DedupIndex` against the implementation it replaced.

Ingestion looks each clip's perceptual hash up in the index of the clips kept so far, then adds it.
The old index kept a NumPy table and, on the first lookup after an add, concatenated the table
with the new rows: every lookup-add step copied everything stored, and its lookup made (n, 4)
temporaries. The new one (`reverie.pipelines.filters.DedupIndex`) fills fixed chunks in place and
scans them through scratch arrays of one chunk's size. Both search exhaustively (the distance is
stored as each clip's `dup_distance` score), so both still cost O(n) a lookup; what goes is the copy
and the temporaries.

The benchmark runs `--count` lookup-then-add steps on each, with the same hashes (random 256-bit
hashes, every fourth a copy of an earlier one with about 2 % of its bits flipped, so that small
distances occur), asserts that every distance is the same, and prints and stores the seconds and
their ratio in benchmarks/results/dedup.json.

    .venv/bin/python benchmarks/dedup.py                  # 200k steps, several minutes on one core
    .venv/bin/python benchmarks/dedup.py --count 20000    # a quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import RESULTS, machine, write_json
from reverie.pipelines.filters import HASH_BITS, HASH_FRAMES, DedupIndex

RESULT = RESULTS / "dedup.json"


def _old_words(hex_hash: str) -> np.ndarray:
    return np.array([int(hex_hash[i : i + 16], 16) for i in range(0, len(hex_hash), 16)], dtype=np.uint64)


class OldDedupIndex:
    """`DedupIndex` as it was before chunked storage, kept verbatim for the comparison."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._table = np.zeros((0, HASH_FRAMES), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._table) + len(self._rows)

    def add(self, hex_hash: str) -> None:
        self._rows.append(_old_words(hex_hash))

    def nearest(self, hex_hash: str) -> int:
        if self._rows:
            self._table = np.concatenate([self._table, np.stack(self._rows)])
            self._rows = []
        if not len(self._table):
            return HASH_BITS + 1
        differing = np.bitwise_xor(self._table, _old_words(hex_hash)[None, :])
        return int(np.bitwise_count(differing).sum(axis=1).min())


def make_hashes(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (count, HASH_BITS // 8), dtype=np.uint8)
    for index in range(4, count, 4):
        rows[index] = rows[rng.integers(index)] ^ (rng.random(HASH_BITS // 8) < 0.02).astype(np.uint8)
    return [row.tobytes().hex() for row in rows]


def lookup_then_add(index, hashes: list[str]) -> tuple[float, list[int]]:
    """(seconds, distances) of ingestion's pattern: each hash looked up, then added."""
    distances = []
    started = time.perf_counter()
    for hex_hash in hashes:
        distances.append(index.nearest(hex_hash))
        index.add(hex_hash)
    return time.perf_counter() - started, distances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="lookup-then-add steps (default 200000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args()
    hashes = make_hashes(args.count, args.seed)
    new_seconds, new_distances = lookup_then_add(DedupIndex(), hashes)
    print(f"new DedupIndex: {args.count} lookups and adds in {new_seconds:.1f} s", flush=True)
    old_seconds, old_distances = lookup_then_add(OldDedupIndex(), hashes)
    print(f"old DedupIndex: {args.count} lookups and adds in {old_seconds:.1f} s", flush=True)
    assert new_distances == old_distances, "the new index found other distances than the old one"
    ratio = old_seconds / new_seconds
    print(f"old / new: {ratio:.2f}x; distances equal on all {args.count} lookups")
    write_json(
        args.out,
        {
            "count": args.count,
            "seed": args.seed,
            "pattern": "lookup then add, per hash (ingestion's order)",
            "old_seconds": round(old_seconds, 3),
            "new_seconds": round(new_seconds, 3),
            "old_over_new": round(ratio, 3),
            "distances_equal": True,
            "duplicates_within_8_bits": sum(distance <= 8 for distance in new_distances),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
