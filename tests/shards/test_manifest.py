import json
import os

import pytest

from reverie.shards.manifest import ManifestAppender, read_manifest, write_manifest


def test_torn_last_line_is_dropped_and_appending_goes_on(tmp_path):
    path = tmp_path / "manifest.jsonl"
    appender = ManifestAppender(path)
    appender.append({"path": "a.mp4", "status": "ok"})
    appender.close()
    with open(path, "a") as handle:
        handle.write('{"path": "b.mp4", "sta')  # killed mid-write
    assert read_manifest(path) == [{"path": "a.mp4", "status": "ok"}]
    appender = ManifestAppender(path)
    appender.append({"path": "b.mp4", "status": "failed"})
    appender.close()
    assert [json.loads(line)["path"] for line in path.read_text().splitlines()] == ["a.mp4", "b.mp4"]


def test_reading_never_rewrites_the_file(tmp_path):
    """Readers (reverie inspect, --merge) may look at a manifest a live run appends to: only the writer
    drops a torn line, when it opens the file."""
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"path": "a.mp4", "status": "ok"}\n{"path": "b.mp4", "sta')
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino)
    assert read_manifest(path) == [{"path": "a.mp4", "status": "ok"}]
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_write_manifest_replaces_the_file_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "manifest.jsonl"
    write_manifest(path, [{"path": "a.mp4"}, {"path": "b.mp4"}])
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))  # killed before the rename
        with pytest.raises(KeyboardInterrupt):
            write_manifest(path, [{"path": "a.mp4"}])
    assert read_manifest(path) == [{"path": "a.mp4"}, {"path": "b.mp4"}]
    write_manifest(path, [{"path": "a.mp4"}])
    assert read_manifest(path) == [{"path": "a.mp4"}] and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.jsonl"]


def test_a_new_or_rewritten_manifest_is_fsynced_with_its_folder(tmp_path, monkeypatch):
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (synced.append(os.fstat(descriptor).st_ino), fsync(descriptor)))
    path = tmp_path / "manifest.jsonl"
    ManifestAppender(path).close()
    assert synced == [tmp_path.stat().st_ino]  # the new file's name
    synced.clear()
    write_manifest(path, [{"path": "a.mp4"}])
    assert synced == [path.stat().st_ino, tmp_path.stat().st_ino]
