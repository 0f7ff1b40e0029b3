import json

from reverie.shards.manifest import ManifestAppender, read_manifest


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
