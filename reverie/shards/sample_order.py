"""The order in which a reader sees raw samples: a pure function of (seed, epoch, reader, position).

A reader is one DataLoader worker on one rank: reader `rank * workers + worker` of
`world_size * workers`. Each epoch, every source's shard list is shuffled with (seed, epoch) -- the
same on every rank -- and dealt to the readers in turn (reader r takes shards r, r + R, r + 2R, ...).
A reader reads its shards in passes: pass 0 in the dealt order, later passes (when it must wrap
around to fill its quota) in a reshuffled order. Each pass goes through a shuffle buffer that is
flushed at the end of the pass, so pass 0 holds each of the reader's samples exactly once. Several
sources are mixed by drawing, at each position, a source with probability proportional to its weight.

Nothing here depends on timing or on what decoding made of a sample, so position p of a reader's
stream is reached again by replaying the raw (undecoded) stream: that is how a run resumes.
Tars are read with stock webdataset (`webdataset.tariterators`), so any URL its `gopen` opens works.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import itertools
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from webdataset.tariterators import base_plus_ext, tarfile_samples

SHUFFLE, PASS, MIX, WINDOW = range(4)  # purposes, so no two random streams share a seed


@dataclass(frozen=True)
class Source:
    """One dataset in the mix: its shards, its mixing weight and a name given to its samples."""

    shards: tuple[str, ...]
    weight: float = 1.0
    name: str = ""


def list_shards(shards: str | Path | Sequence[str | Path]) -> tuple[str, ...]:
    """Shard paths from a folder (its `*.tar`, or those of its `shards/` as `reverie ingest` writes
    them), a glob or brace pattern (`data/{000000..000009}.tar`), or a list of paths or URLs."""
    if isinstance(shards, (list, tuple)):  # explicit paths or URLs, kept in the given order
        return tuple(str(shard) for shard in shards)
    folder = Path(shards)
    if folder.is_dir():
        found = sorted(folder.glob("*.tar")) or sorted((folder / "shards").glob("*.tar"))
        if not found:
            raise FileNotFoundError(f"{folder}: no *.tar shards in it or in its shards/ folder")
        return tuple(str(path) for path in found)
    import braceexpand

    found = []
    for pattern in braceexpand.braceexpand(str(shards)):
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise FileNotFoundError(f"{pattern}: no shard matches")
        found += matches
    return tuple(found)


def as_source(spec: Source | str | Path | Sequence[str | Path], weight: float = 1.0) -> Source:
    """A `Source` of this weight from a `Source`, or from anything `list_shards` takes."""
    if isinstance(spec, Source):
        return dataclasses.replace(spec, weight=weight)
    name = Path(spec).name if isinstance(spec, (str, Path)) else ""
    return Source(list_shards(spec), weight, name)


def count_samples(shard: str) -> int:
    """The number of samples (distinct keys) in a local tar, from its headers alone."""
    if not Path(shard).is_file():
        raise FileNotFoundError(f"{shard}: cannot count the samples of a shard that is not a local file; pass samples_per_epoch")
    with tarfile.open(shard) as tar:
        return len({base_plus_ext(member.name)[0] for member in tar if member.isreg()} - {None})


def seeded(*numbers: int) -> np.random.Generator:
    """A generator seeded by a tuple of non-negative integers (seed, epoch, reader, ...)."""
    return np.random.default_rng([int(number) for number in numbers])


def key_number(key: str) -> int:
    """A stable 64-bit number for a sample key (Python's `hash` differs between processes)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def dealt_shards(shards: Sequence[str], reader: int, readers: int, seed: int, epoch: int, source: int) -> list[str]:
    """The shards reader `reader` of `readers` reads this epoch. With fewer shards than readers,
    a reader without one of its own shares one (its samples then repeat within the epoch)."""
    order = [shards[i] for i in seeded(seed, epoch, source, SHUFFLE).permutation(len(shards))]
    mine = order[reader::readers]
    if not mine:
        warnings.warn(f"{len(shards)} shards for {readers} readers: some shards are read twice per epoch; write smaller shards")
        mine = [order[reader % len(order)]]
    return mine


def shuffle_buffer(samples: Iterator[dict], size: int, rng: np.random.Generator) -> Iterator[dict]:
    """Yield `samples` in a random order, holding at most `size` in memory; flush at the end."""
    buffer: list[dict] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        slot = int(rng.integers(size))
        buffer[slot], sample = sample, buffer[slot]
        yield sample
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]


def raw_samples(shards: Sequence[str], on_error: Callable[[Exception], bool]) -> Iterator[dict]:
    """`{"__key__", "__url__", member extension: bytes}` per sample, shards in the given order."""
    return tarfile_samples(({"url": shard} for shard in shards), handler=on_error)


def source_stream(source: Source, index: int, reader: int, readers: int, seed: int, epoch: int, buffer: int, on_error) -> Iterator[dict]:
    """The endless raw stream of one source for one reader this epoch: pass after pass over its
    shards, each sample tagged with `__source__` (index) and `__pass__`."""
    shards = dealt_shards(source.shards, reader, readers, seed, epoch, index)
    for pass_index in itertools.count():
        order = (
            shards
            if pass_index == 0
            else [shards[i] for i in seeded(seed, epoch, index, reader, pass_index, PASS).permutation(len(shards))]
        )
        shuffled = shuffle_buffer(raw_samples(order, on_error), buffer, seeded(seed, epoch, index, reader, pass_index, SHUFFLE))
        count = 0
        for count, sample in enumerate(shuffled, start=1):
            yield sample | {"__source__": index, "__pass__": pass_index}
        if count == 0:
            raise ValueError(f"source {source.name or index}: shards {order} hold no readable samples")


def mixed_stream(streams: list[Iterator[dict]], weights: Sequence[float], rng: np.random.Generator) -> Iterator[dict]:
    """At each position, the next sample of a source drawn with probability proportional to its weight."""
    if len(streams) == 1:
        yield from streams[0]
        return
    probabilities = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    while True:
        yield next(streams[int(rng.choice(len(streams), p=probabilities))])
