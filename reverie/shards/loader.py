"""Clips from shards into training: a resumable, rank- and worker-split `IterableDataset`.

`ClipDataset` streams samples from webdataset shards -- ingested video (`KEY.mp4|npy`), episodes
(plus `KEY.actions.npy`, ...; see `episodes.py`) and latent shards (`KEY.latents.npy` or
`KEY.tokens.npy`) -- mixes several sources by weight, shuffles, and cuts windows of `window` steps
(`clip_tensors.py`). `ClipLoader` is the `DataLoader` around it that keeps its resume state.

Readers. Reader `rank * W + worker` of `world_size * W` (W = DataLoader workers, 1 for none) reads
its own shards (`sample_order.py`) and yields exactly `quota` samples per epoch:
`ceil(samples_per_epoch / W)` when `samples_per_epoch` (per rank) is given, else
`ceil(total samples / readers)`. A reader whose shards hold fewer wraps around to a reshuffled
pass; one whose shards hold more leaves the rest for later epochs. So every rank yields the same
number of samples and batches, whatever its shards: a distributed run never waits on a rank that
ran out. With shard counts divisible by the readers and shards of equal size, every sample is
seen exactly once per epoch.

Determinism and resume. The order of each reader's stream is a pure function of (seed, epoch,
reader, position), and so is each window (seeded by the sample's key). The state is therefore a
few counters: the epoch and, per reader, the stream position and the samples yielded. A bad sample
(corrupt or lying members, checked before they are decoded: see `clip_tensors.py`; misaligned
arrays; too short for the window) is skipped with a `BadSampleWarning`, one line naming its shard,
key and reason, and the reader, in a DataLoader worker too (which prints the warning on its
stderr), moves on to the next position; more than `MAX_BAD_IN_A_ROW` in a row stop the run.
`ClipLoader` updates the state from the batches the training loop has actually received (each
sample carries its reader and position), not from what workers prefetched. DataLoader workers
hand out batches round-robin, so the state also records which reader's batch comes next, and a
resumed loader lets its worker 0 play that reader. A resumed loader sees exactly the samples an uninterrupted one would have seen next.

Resuming needs the same seed, sources, window, world size, DataLoader workers and batch size;
a state saved mid-epoch with another layout raises `LoaderStateError` (at an epoch boundary any
layout loads). The state is the same on every rank of a run whose ranks step together, so saving
rank 0's is enough. Workers are started anew each epoch (no `persistent_workers`): they must see
the current state.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from reverie.shards.clip_tensors import PAYLOADS, BadSampleError, collate_clips, decode_sample
from reverie.shards.sample_order import MIX, WINDOW, Source, as_source, count_samples, key_number, mixed_stream, seeded, source_stream

STREAM_KEY = "__stream__"
MAX_BAD_IN_A_ROW = 100  # past this many, the data (not one sample) is broken: stop with an error


class LoaderStateError(ValueError):
    """A saved loader state that this loader cannot continue from."""


class BadSampleWarning(UserWarning):
    """A sample skipped because it cannot be decoded; the message names its shard and key."""


class StreamPosition(NamedTuple):
    """Where a yielded sample sits: its reader (worker of this rank), stream position and count."""

    worker: int
    workers: int
    position: int
    yielded: int


@dataclass
class LoaderState:
    """The resume point of one rank: per reader, the next stream position and the samples yielded
    so far this epoch (empty lists: the start of the epoch), and the reader whose batch is next."""

    epoch: int = 0
    positions: list[int] = field(default_factory=list)
    yielded: list[int] = field(default_factory=list)
    next_worker: int = 0

    def record(self, where: StreamPosition) -> None:
        if not self.positions:
            self.positions, self.yielded = [0] * where.workers, [0] * where.workers
        self.positions[where.worker] = where.position + 1
        self.yielded[where.worker] = where.yielded + 1
        self.next_worker = (where.worker + 1) % where.workers


def distributed_layout(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): as given, else from torch.distributed when it is initialised, else (0, 1)."""
    if rank is None and world_size is None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    rank, world_size = rank or 0, world_size or 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    return rank, world_size


class ClipDataset(IterableDataset):
    """Clips from one or more shard sources; see the module docstring.

    sources: one source or a list of sources; a source is a shard folder, a glob or brace pattern,
        a tuple of shard paths, or a `Source`. weights: one per source (default: the `Source`
        weights, else equal). window: steps per yielded clip (None: whole clips). seed: the order
        and windows. shuffle_buffer: samples held for shuffling, per reader and source.
        samples_per_epoch: per rank (default: all samples of all sources / world size).
        rank, world_size: default from torch.distributed. skip_bad: warn and skip bad samples
        (default) or raise `BadSampleError`. payload: "frames", "latents" or "tokens", what every
        sample must hold (None: any); tokenizer: the `model_id` of the tokenizer every sample's
        latents must come from (None: any). A sample that breaks either raises
        `PayloadMismatchError` naming its shard, whatever `skip_bad` says. On latent shards
        `window` counts latent frames (see `clip_tensors.py` for the per-frame arrays beside them).
    """

    def __init__(
        self,
        sources: Source | str | Path | Sequence,
        *,
        weights: Sequence[float] | None = None,
        window: int | None = None,
        seed: int = 0,
        shuffle_buffer: int = 64,
        samples_per_epoch: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        skip_bad: bool = True,
        payload: str | None = None,
        tokenizer: str | None = None,
    ):
        if payload not in (None, *PAYLOADS):
            raise ValueError(f"payload {payload!r}: not one of {', '.join(PAYLOADS)} (or None for any)")
        specs = sources if isinstance(sources, list) else [sources]  # a tuple is one source's shards
        weights = weights or [spec.weight if isinstance(spec, Source) else 1.0 for spec in specs]
        if len(weights) != len(specs) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights {list(weights)} for {len(specs)} sources: give one non-negative weight per source")
        self.sources = [as_source(spec, weight) for spec, weight in zip(specs, weights)]
        self.window, self.seed, self.shuffle_buffer, self.skip_bad = window, seed, shuffle_buffer, skip_bad
        self.payload, self.tokenizer = payload, tokenizer
        self.rank, self.world_size = distributed_layout(rank, world_size)
        self.samples_per_epoch = samples_per_epoch
        self.total_samples = None if samples_per_epoch else sum(count_samples(s) for source in self.sources for s in source.shards)
        self.state = LoaderState()

    def quota(self, workers: int) -> int:
        """Samples each of a rank's `workers` readers yields per epoch."""
        if self.samples_per_epoch:
            return math.ceil(self.samples_per_epoch / workers)
        return math.ceil(self.total_samples / (self.world_size * workers))

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning."""
        self.state = LoaderState(epoch=epoch)

    def consumed(self, stream: StreamPosition | list[StreamPosition]) -> None:
        """Record that the training loop received these samples (a batch's `__stream__` field)."""
        self.state.record(stream[-1] if isinstance(stream, list) else stream)

    def fingerprint(self) -> str:
        """What the sample order depends on, besides seed and layout: shard names, weights, window."""
        described = [[[Path(s).name for s in source.shards], source.weight] for source in self.sources]
        described += [self.window, self.shuffle_buffer, self.samples_per_epoch]
        return hashlib.sha1(json.dumps(described).encode()).hexdigest()[:16]

    def state_dict(self) -> dict:
        return asdict(self.state) | {"seed": self.seed, "world_size": self.world_size, "fingerprint": self.fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        if state["fingerprint"] != self.fingerprint() or state["seed"] != self.seed:
            raise LoaderStateError(
                "the saved loader state belongs to other sources, weights, window or seed; its order cannot be continued"
            )
        if state["positions"] and state["world_size"] != self.world_size:
            raise LoaderStateError(
                f"the state was saved mid-epoch with world_size={state['world_size']}, this run has {self.world_size}: "
                f"resume with the same layout, or start the next epoch with set_epoch({state['epoch'] + 1})"
            )
        self.state = LoaderState(state["epoch"], list(state["positions"]), list(state["yielded"]), state["next_worker"])

    def __iter__(self):
        worker, workers = self._reader()
        state = self.state
        if state.positions and len(state.positions) != workers:
            raise LoaderStateError(
                f"the state was saved mid-epoch with {len(state.positions)} readers per rank (DataLoader workers), "
                f"this loader has {workers}: resume with the same num_workers, or start the next epoch with set_epoch({state.epoch + 1})"
            )
        position, yielded = (state.positions[worker], state.yielded[worker]) if state.positions else (0, 0)
        stream = self._raw_stream(state.epoch, self.rank * workers + worker, self.world_size * workers)
        for _ in range(position):
            next(stream)  # replay without decoding, up to where the last run stopped
        yield from self._decoded(stream, state.epoch, StreamPosition(worker, workers, position, yielded), self.quota(workers))

    def _reader(self) -> tuple[int, int]:
        """(reader index within this rank, readers per rank); a resumed worker 0 plays `next_worker`."""
        info = get_worker_info()
        if info is None:
            return 0, 1
        return (info.id + self.state.next_worker) % info.num_workers, info.num_workers

    def _raw_stream(self, epoch: int, reader: int, readers: int):
        streams = [
            source_stream(source, index, reader, readers, self.seed, epoch, self.shuffle_buffer, self._on_shard_error)
            for index, source in enumerate(self.sources)
        ]
        return mixed_stream(streams, [source.weight for source in self.sources], seeded(self.seed, epoch, reader, MIX))

    def _decoded(self, stream, epoch: int, start: StreamPosition, quota: int):
        """Decode from `start` on, skipping bad samples, until the reader has yielded `quota`."""
        position, yielded, bad_in_a_row = start.position, start.yielded, 0
        while yielded < quota:
            raw, where = next(stream), StreamPosition(start.worker, start.workers, position, yielded)
            position += 1
            try:
                sample = self._decode(raw, epoch)
            except BadSampleError as error:
                if not self.skip_bad:
                    raise
                bad_in_a_row += 1
                if bad_in_a_row > MAX_BAD_IN_A_ROW:
                    raise BadSampleError(
                        error.shard, error.key, f"{MAX_BAD_IN_A_ROW} bad samples in a row, the last: {error.reason}"
                    ) from error
                warnings.warn(f"skipping a bad sample: {error}", BadSampleWarning)
                continue
            bad_in_a_row = 0
            yield sample | {STREAM_KEY: where}
            yielded += 1

    def _decode(self, raw: dict, epoch: int) -> dict:
        rng = seeded(self.seed, epoch, raw["__source__"], raw["__pass__"], key_number(raw["__key__"]), WINDOW)
        decoded = decode_sample(raw, self.window, rng, self.payload, self.tokenizer)
        return decoded | {"source": self.sources[raw["__source__"]].name}

    def _on_shard_error(self, error: Exception) -> bool:
        """webdataset's handler for unreadable tars: warn and go on to the next shard, or raise."""
        if not self.skip_bad:
            raise error
        warnings.warn(f"skipping the rest of an unreadable shard: {error}")
        return True


class ClipLoader:
    """A `DataLoader` over a `ClipDataset` that records what the training loop received.

    Each `iter()` runs the rest of the current epoch and then moves to the next one. Save
    `state_dict()` with the checkpoint; a fresh loader with the same settings `load_state_dict`s it
    and goes on with exactly the batches an uninterrupted run would have had next.
    `dataloader_kwargs` go to `DataLoader` (pin_memory, prefetch_factor, drop_last, ...).

    A batch counts as received when the loader yields it. A training loop that fetches ahead (as
    Lightning's does, one batch) passes `record_on_yield=False` instead: batches then keep their
    `__stream__` field, and the loop calls `consumed(batch)` when it starts training on one.
    """

    def __init__(
        self,
        dataset: ClipDataset,
        batch_size: int,
        num_workers: int = 0,
        collate_fn=collate_clips,
        record_on_yield: bool = True,
        **dataloader_kwargs,
    ):
        for refused in ("persistent_workers", "shuffle", "sampler", "batch_sampler"):
            if dataloader_kwargs.get(refused):
                raise ValueError(f"ClipLoader: {refused} is not supported (workers must start from the current state)")
        if dataloader_kwargs.get("in_order") is False:
            raise ValueError("ClipLoader: in_order=False makes the batch order depend on timing; it cannot resume")
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.collate_fn, self.dataloader_kwargs, self.record_on_yield = collate_fn, dataloader_kwargs, record_on_yield

    def __iter__(self):
        epoch = self.dataset.state.epoch
        loader = DataLoader(
            self.dataset, self.batch_size, num_workers=self.num_workers, collate_fn=self.collate_fn, **self.dataloader_kwargs
        )
        for batch in loader:
            if self.record_on_yield:
                self.dataset.consumed(batch.pop(STREAM_KEY))
            else:
                batch[STREAM_KEY] = (epoch, batch[STREAM_KEY])
            yield batch
        self.dataset.set_epoch(epoch + 1)

    def consumed(self, batch: dict) -> None:
        """With `record_on_yield=False`: the training loop is about to train on `batch`. Removes
        its `__stream__` field. A batch of an epoch the loader has already finished (the loop
        fetched past its last batch) changes nothing: the state is at the next epoch's start."""
        epoch, where = batch.pop(STREAM_KEY)
        if epoch == self.dataset.state.epoch:
            self.dataset.consumed(where)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        workers = max(1, self.num_workers)
        rounding = math.floor if self.dataloader_kwargs.get("drop_last") else math.ceil
        return workers * rounding(self.dataset.quota(workers) / self.batch_size)

    def state_dict(self) -> dict:
        return self.dataset.state_dict() | {"batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["positions"] and state["batch_size"] != self.batch_size:
            raise LoaderStateError(
                f"the state was saved mid-epoch with batch_size={state['batch_size']}, this loader has {self.batch_size}: "
                f"resume with the same batch size, or start the next epoch with set_epoch({state['epoch'] + 1})"
            )
        self.dataset.load_state_dict(state)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
