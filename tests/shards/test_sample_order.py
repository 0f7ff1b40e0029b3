"""The raw sample order (`reverie.shards.sample_order`) on tars made here: shard lists from folders
and patterns, shards dealt to readers, the shuffle buffer, passes that hold every sample once,
mixing by weight, and positions that replay to the same rest of the stream. The loader built on
it (ranks, workers, decoding, resume state) is tested in `test_loader.py`."""

from __future__ import annotations

import io
import itertools
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from reverie.shards.sample_order import (
    Source,
    as_source,
    count_samples,
    dealt_shards,
    key_number,
    list_shards,
    mixed_stream,
    seeded,
    shuffle_buffer,
    source_stream,
)

SHARDS, PER_SHARD = 6, 5


def write_tar(path: Path, keys: list[str]) -> Path:
    """A webdataset tar: per key a `.txt` and a `.json` member."""
    with tarfile.open(path, "w") as tar:
        for key in keys:
            for extension, payload in (("txt", key.encode()), ("json", b"{}")):
                info = tarfile.TarInfo(f"{key}.{extension}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def shard_keys(shard: int, prefix: str = "s") -> list[str]:
    return [f"{prefix}{shard}_{index}" for index in range(PER_SHARD)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[str, ...]:
    """6 shards of 5 samples: keys s{shard}_{index}."""
    folder = tmp_path_factory.mktemp("order")
    return tuple(str(write_tar(folder / f"{shard:06d}.tar", shard_keys(shard))) for shard in range(SHARDS))


@pytest.fixture(scope="module")
def other_shards(tmp_path_factory) -> tuple[str, ...]:
    folder = tmp_path_factory.mktemp("other")
    return tuple(str(write_tar(folder / f"{shard:06d}.tar", shard_keys(shard, "o"))) for shard in range(2))


def keys(samples) -> list[str]:
    return [sample["__key__"] for sample in samples]


def raise_errors(error: Exception) -> bool:
    raise error


def stream(source: Source, reader: int = 0, readers: int = 1, seed: int = 0, epoch: int = 0, buffer: int = 4, index: int = 0):
    return source_stream(source, index, reader, readers, seed, epoch, buffer, raise_errors)


def test_a_folder_lists_its_tars_or_those_of_its_shards_folder(tmp_path, shards):
    assert list_shards(Path(shards[0]).parent) == shards  # sorted
    (tmp_path / "shards").mkdir()
    write_tar(tmp_path / "shards" / "b.tar", ["x"]), write_tar(tmp_path / "shards" / "a.tar", ["y"])
    assert list_shards(tmp_path) == (str(tmp_path / "shards" / "a.tar"), str(tmp_path / "shards" / "b.tar"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no \*\.tar shards in it or in its shards/ folder"):
        list_shards(tmp_path / "empty")


def test_patterns_and_lists_of_shards(shards):
    folder = Path(shards[0]).parent
    assert list_shards(f"{folder}/{{000001..000003}}.tar") == shards[1:4]
    assert list_shards(f"{folder}/00000[24].tar") == (shards[2], shards[4])
    assert list_shards([shards[3], shards[0]]) == (shards[3], shards[0])  # a list keeps its order
    assert list_shards("https://example.com/data-{0..1}.tar") == ("https://example.com/data-0.tar", "https://example.com/data-1.tar")
    with pytest.raises(FileNotFoundError, match=r"nothing-\*\.tar: no shard matches"):
        list_shards(f"{folder}/nothing-*.tar")


def test_a_source_takes_its_name_from_its_folder_and_the_given_weight(shards):
    folder = Path(shards[0]).parent
    source = as_source(folder, weight=2.0)
    assert source == Source(shards, 2.0, folder.name)
    assert as_source(source, weight=0.5) == Source(shards, 0.5, folder.name)


def test_samples_are_counted_by_key_from_the_tar_headers(shards, tmp_path):
    assert count_samples(shards[0]) == PER_SHARD  # two members per sample
    with pytest.raises(FileNotFoundError, match="not a local file; pass samples_per_epoch"):
        count_samples(str(tmp_path / "remote.tar"))


def test_key_numbers_do_not_change_between_processes():
    # Python's hash() of a str changes with PYTHONHASHSEED; these numbers seed every window, so a
    # resumed run in a new process must get the same ones.
    assert key_number("clip_000001") == 9150916927686841946
    assert key_number("clip_000002") == 6858971951490801845


@pytest.mark.parametrize("readers", [1, 2, 3, 6])
def test_shards_are_dealt_once_each_to_the_readers(shards, readers):
    dealt = [dealt_shards(shards, reader, readers, seed=0, epoch=0, source=0) for reader in range(readers)]
    assert sorted(itertools.chain(*dealt)) == sorted(shards)
    assert {len(mine) for mine in dealt} == {SHARDS // readers}


def test_the_deal_follows_seed_and_epoch(shards):
    deal = dealt_shards(shards, 0, 2, seed=0, epoch=0, source=0)
    assert deal == dealt_shards(shards, 0, 2, seed=0, epoch=0, source=0)  # every rank computes the same deal
    others = [dealt_shards(shards, 0, 2, seed, epoch, source) for seed, epoch, source in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]]
    assert all(other != deal for other in others)


def test_fewer_shards_than_readers_share_one_with_a_warning(shards):
    with pytest.warns(UserWarning, match="2 shards for 3 readers"):
        mine = dealt_shards(shards[:2], 2, 3, seed=0, epoch=0, source=0)
    assert len(mine) == 1 and mine[0] in shards[:2]


def test_the_shuffle_buffer_permutes_reproducibly_and_holds_at_most_its_size():
    taken = []

    def counted(count: int):
        for index in range(count):
            taken.append(index)
            yield index

    out = []
    for sample in shuffle_buffer(counted(40), 8, seeded(0)):
        assert len(taken) - len(out) <= 8 + 1  # the buffer plus the sample being swapped in
        out.append(sample)
    assert sorted(out) == list(range(40)) and out != list(range(40))
    assert list(shuffle_buffer(iter(range(40)), 8, seeded(0))) == out
    assert list(shuffle_buffer(iter(range(40)), 8, seeded(1))) != out
    assert list(shuffle_buffer(iter(range(40)), 1, seeded(0))) == list(range(40))  # one slot: no reordering


def test_pass_0_holds_every_sample_of_the_readers_shards_once(shards):
    source = Source(shards, name="order")
    every_key = [key for shard in range(SHARDS) for key in shard_keys(shard)]
    seen = []
    for reader in range(3):
        mine = [Path(shard).stem for shard in dealt_shards(shards, reader, 3, 0, 0, 0)]
        first_pass = list(itertools.islice(stream(source, reader, 3), len(mine) * PER_SHARD))
        assert {sample["__pass__"] for sample in first_pass} == {0} and {sample["__source__"] for sample in first_pass} == {0}
        assert {key.split("_")[0][1:] for key in keys(first_pass)} == {str(int(stem)) for stem in mine}
        seen += keys(first_pass)
    assert sorted(seen) == sorted(every_key)  # each sample exactly once in the epoch


def test_later_passes_wrap_around_in_another_order(shards):
    source = Source(shards[:2], name="two")
    samples = list(itertools.islice(stream(source), 3 * 2 * PER_SHARD))
    passes = [keys(samples[start : start + 2 * PER_SHARD]) for start in range(0, len(samples), 2 * PER_SHARD)]
    assert [sample["__pass__"] for sample in samples] == [0] * 10 + [1] * 10 + [2] * 10
    assert all(sorted(one_pass) == sorted(passes[0]) for one_pass in passes)
    assert passes[1] != passes[0] and passes[2] != passes[1]


def test_the_order_follows_seed_and_epoch(shards):
    source = Source(shards, name="order")

    def first(**changes) -> list[str]:
        return keys(itertools.islice(stream(source, **changes), 20))

    assert first() == first()
    assert first(seed=1) != first() and first(epoch=1) != first()


def test_a_source_without_samples_is_named(tmp_path):
    empty = write_tar(tmp_path / "empty.tar", [])
    with pytest.raises(ValueError, match="source hollow: shards .*empty.tar.* hold no readable samples"):
        next(stream(Source((str(empty),), name="hollow")))


def test_an_unreadable_shard_goes_to_the_handler_and_the_next_shard_is_read(tmp_path, shards):
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"this is not a tar file" * 100)
    errors = []
    raw = source_stream(Source((str(broken), shards[0]), name="mixed"), 0, 0, 1, 0, 0, 4, lambda error: errors.append(error) or True)
    assert sorted(keys(itertools.islice(raw, PER_SHARD))) == sorted(shard_keys(0))
    assert len(errors) == 1


def test_sources_are_mixed_in_proportion_to_their_weights(shards, other_shards):
    streams = [stream(Source(shards, 3.0)), stream(Source(other_shards, 1.0), index=1)]
    mixed = list(itertools.islice(mixed_stream(streams, [3.0, 1.0], seeded(0, 0, 0)), 2000))
    shares = Counter(sample["__source__"] for sample in mixed)
    assert shares[0] / len(mixed) == pytest.approx(0.75, abs=0.04)  # 4 standard deviations
    one = stream(Source(shards))
    assert keys(itertools.islice(mixed_stream([one], [1.0], seeded(0)), 12)) == keys(itertools.islice(stream(Source(shards)), 12))


@pytest.mark.parametrize("position", [0, 7, 23])
def test_replaying_to_a_position_gives_the_rest_of_the_same_order(shards, other_shards, position):
    def mixed():
        streams = [stream(Source(shards[:3]), epoch=2), stream(Source(other_shards), epoch=2, index=1)]
        return mixed_stream(streams, [2.0, 1.0], seeded(0, 2, 0))

    uninterrupted = keys(itertools.islice(mixed(), 60))
    resumed = mixed()
    for _ in range(position):  # what a resumed reader does: replay the raw stream without decoding
        next(resumed)
    assert keys(itertools.islice(resumed, 60 - position)) == uninterrupted[position:]
    assert len(set(uninterrupted)) < len(uninterrupted)  # the 60 positions wrap around into later passes
