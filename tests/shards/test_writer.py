import os
import stat
import tarfile

import numpy as np
import pytest
import webdataset as wds

from reverie.shards.writer import ShardWriter, TarWriter, read_shard_contents, write_text_atomically


def sample(index):
    return {"__key__": f"clip_{index:05d}", "npy": np.full((2, 4, 4, 3), index, np.uint8), "json": {"key": f"clip_{index:05d}", "scores": {"phash": "0" * 64}}}


def test_shards_rotate_by_count_and_rename_into_place(tmp_path):
    finished = []
    writer = ShardWriter(tmp_path, prefix="s0001-", max_count=3, on_finalize=finished.append)
    names = [writer.write(sample(i)) for i in range(7)]
    assert names == ["s0001-000000.tar"] * 3 + ["s0001-000001.tar"] * 3 + ["s0001-000002.tar"]
    assert finished == ["s0001-000000.tar", "s0001-000001.tar"]
    assert (tmp_path / "s0001-000002.tar.tmp").exists() and not (tmp_path / "s0001-000002.tar").exists()
    writer.finalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s0001-00000{i}.tar" for i in range(3)]
    with tarfile.open(tmp_path / "s0001-000000.tar") as tar:
        assert tar.getnames() == [f"clip_0000{i}.{ext}" for i in range(3) for ext in ("json", "npy")]


def test_shards_read_back_with_stock_webdataset(tmp_path):
    writer = ShardWriter(tmp_path, max_count=2)
    for i in range(5):
        writer.write(sample(i))
    writer.finalize()
    dataset = wds.WebDataset(str(tmp_path / "{000000..000002}.tar"), shardshuffle=False).decode()
    values = [(s["__key__"], int(s["npy"][0, 0, 0, 0]), s["json"]["key"]) for s in dataset]
    assert values == [(f"clip_{i:05d}", i, f"clip_{i:05d}") for i in range(5)]


def test_read_contents_drops_unfinished_shard_and_continues_numbering(tmp_path):
    writer = ShardWriter(tmp_path, max_count=2)
    for i in range(5):
        writer.write(sample(i))  # the fifth stays in 000002.tar.tmp, as after a kill
    metas = []
    contents = read_shard_contents(tmp_path, on_meta=metas.append)
    assert sorted(contents.shard_of) == [f"clip_{i:05d}" for i in range(4)]
    assert contents.shard_of["clip_00003"] == "000001.tar" and contents.next_index == 2
    assert [m["key"] for m in metas] == [f"clip_{i:05d}" for i in range(4)]  # handed over in shard order
    assert not hasattr(contents, "metas")  # and not kept: a resume holds keys, not every clip's metadata
    assert not list(tmp_path.glob("*.tmp"))


def test_a_finished_shard_is_fsynced_and_so_is_its_folder(tmp_path, monkeypatch):
    """After a power cut, a shard the manifest names must exist: the rename is durable only once the
    folder holding it is fsynced too."""
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (synced.append(os.fstat(descriptor)), fsync(descriptor)))
    writer = ShardWriter(tmp_path / "shards")
    writer.write(sample(0))
    writer.finalize()
    shard, folder = (tmp_path / "shards" / "000000.tar").stat(), (tmp_path / "shards").stat()
    assert [(s.st_ino, stat.S_ISDIR(s.st_mode)) for s in synced] == [(shard.st_ino, False), (folder.st_ino, True)]


def test_tar_writer_encodes_like_webdataset(tmp_path):
    """Members sorted by extension; bytes as they are, text as UTF-8, json and npy encoded."""
    frames = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)
    with TarWriter(tmp_path / "a.tar") as writer:
        writer.write({"__key__": "a", "mp4": b"\x00\x01", "json": {"n": 1}, "txt": "é", "cam.npy": frames, "_meta": "skipped"})
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["a.cam.npy", "a.json", "a.mp4", "a.txt"]
    (sample,) = wds.WebDataset(str(tmp_path / "a.tar"), shardshuffle=False).decode()
    assert sample["json"] == {"n": 1} and sample["mp4"] == b"\x00\x01" and sample["txt"] == "é"
    np.testing.assert_array_equal(sample["cam.npy"], frames)
    assert (tmp_path / "a.tar").stat().st_size % tarfile.RECORDSIZE == 0


def test_tar_writer_refuses_what_it_cannot_encode(tmp_path):
    with TarWriter(tmp_path / "a.tar") as writer, pytest.raises(TypeError, match="a.mp4: cannot store a ndarray as .mp4"):
        writer.write({"__key__": "a", "mp4": np.zeros(3)})


def test_byte_limit_rotates(tmp_path):
    writer = ShardWriter(tmp_path, max_count=100, max_bytes=10)
    assert writer.write({"__key__": "a", "mp4": b"x" * 11}) == "000000.tar"
    assert writer.write({"__key__": "b", "mp4": b"x" * 11}) == "000001.tar"


def test_byte_limit_counts_arrays(tmp_path):
    writer = ShardWriter(tmp_path, max_count=100, max_bytes=500)
    names = [writer.write({"__key__": str(i), "npy": np.zeros(600, np.uint8)}) for i in range(3)]
    assert names == ["000000.tar", "000001.tar", "000002.tar"]


@pytest.mark.parametrize("prefix", ["", "s0003-"])
def test_other_prefixes_are_left_alone(tmp_path, prefix):
    (tmp_path / "other-000000.tar.tmp").write_bytes(b"")
    read_shard_contents(tmp_path, prefix)
    assert (tmp_path / "other-000000.tar.tmp").exists()


def test_write_text_atomically_replaces_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "inputs.txt"
    path.write_text("old\n")
    replaced = []
    real_replace = os.replace

    def replace(source, target):
        replaced.append((os.path.dirname(source), open(source).read(), open(target).read()))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    write_text_atomically(path, "new\n" * 1000)
    assert replaced == [(str(tmp_path), "new\n" * 1000, "old\n")], "readers see the old file until the new one is whole"
    assert path.read_text() == "new\n" * 1000
    assert os.listdir(tmp_path) == ["inputs.txt"]
