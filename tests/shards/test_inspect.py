import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reverie.cli.main import main as reverie
from reverie.shards.inspect import summarize
from reverie.shards.manifest import read_manifest

# random.mkv is left out: a few in a thousand os.urandom blobs parse as some stream, so its reason varies.
DAMAGED = ("empty", "truncated", "corrupt", "audio_only", "text")
FAILURES = {
    "mp4/mov file that cannot be opened: truncated or corrupt": 2,
    "empty file": 1,
    "no video stream": 1,
    "a text file, not a video": 1,
}
TILE, COLUMNS = 96, 8


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, sample_videos, vfr_video, damaged_files) -> Path:
    out = tmp_path_factory.mktemp("inspect") / "clips"
    videos = [*sample_videos, vfr_video, *(damaged_files[kind] for kind in DAMAGED)]
    flags = ["--size", "64", "--fps", "4", "--clip-frames", "8", "--shard-size", "3", "--workers", "1"]
    assert reverie(["ingest", *map(str, videos), "--out", str(out), *flags]) == 0
    return out


def inspect_json(capsys, *arguments: str) -> dict:
    capsys.readouterr()
    assert reverie(["inspect", *arguments, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_summary_counts_inputs_clips_and_failures(ingested, capsys):
    lines = read_manifest(ingested / "manifest.jsonl")
    summary = inspect_json(capsys, str(ingested))
    assert summary["inputs"] == len(lines) == 10
    assert summary["status"] == {"ok": 5, "failed": 5}
    assert summary["clips"] == sum(line["clips"] for line in lines) > 5
    assert summary["shards"] == len(list((ingested / "shards").glob("*.tar"))) == -(-summary["clips"] // 3)
    assert summary["failures"] == FAILURES
    assert summary["skips"] == {}
    assert summary["source_hours"] == pytest.approx(sum(line.get("duration", 0.0) for line in lines) / 3600)
    assert summary["clip_hours"] == pytest.approx(summary["clips"] * 8 / 4 / 3600)
    assert summary["motion"]["min"] <= summary["motion"]["median"] <= summary["motion"]["max"]


def test_summary_spreads_resolution_and_frame_rate(ingested, vfr_video, capsys):
    clips_of = {Path(line["path"]).name: line["clips"] for line in read_manifest(ingested / "manifest.jsonl")}
    vfr_clips = clips_of.pop(vfr_video.name)
    summary = inspect_json(capsys, str(ingested))
    assert summary["resolution"] == {"64x64": summary["clips"]}
    assert summary["fps"] == {"4": summary["clips"]}
    assert vfr_clips > 0
    assert summary["source_resolution"] == {"320x180": sum(clips_of.values()), "320x240": vfr_clips}
    assert sum(summary["source_fps"].values()) == summary["clips"]
    assert summary["source_fps"]["24"] == sum(clips_of.values())


@pytest.mark.parametrize("sheet_clips", [3, 100])
def test_contact_sheet_has_a_row_per_clip_and_eight_frames(ingested, tmp_path, capsys, sheet_clips):
    sheet = tmp_path / "sheet.png"
    summary = inspect_json(capsys, str(ingested), "--sheet", str(sheet), "--sheet-clips", str(sheet_clips))
    assert summary["contact_sheet"] == str(sheet)
    rows = min(summary["clips"], sheet_clips)
    pixels = np.asarray(Image.open(sheet))
    assert pixels.shape == (rows * TILE, COLUMNS * TILE, 3)
    tiles = pixels.reshape(rows, TILE, COLUMNS, TILE, 3)
    assert (tiles[:, :64, :, :64].max(axis=(1, 3, 4)) > 0).all(), "every 64 px frame is pasted into its tile"


def test_contact_sheet_goes_into_the_folder_by_default(ingested, capsys):
    summary = inspect_json(capsys, str(ingested))
    assert summary["contact_sheet"] == str(ingested / "contact_sheet.png")
    assert Image.open(ingested / "contact_sheet.png").size == (COLUMNS * TILE, min(summary["clips"], 8) * TILE)


def test_table_shows_the_same_counts_and_failure_reasons(ingested, capsys, monkeypatch):
    summary = inspect_json(capsys, str(ingested))
    monkeypatch.setenv("COLUMNS", "200")
    assert reverie(["inspect", str(ingested)]) == 0
    table = capsys.readouterr().out
    assert "10 (5 ok, 5 failed)" in table
    assert f"{summary['clips']} in {summary['shards']} shards" in table
    assert f"64x64: {summary['clips']}" in table
    assert all(f"failed: {reason}" in table for reason in FAILURES)


def test_folder_of_failed_inputs_has_no_clips_and_no_sheet(damaged_files, tmp_path, capsys):
    out = tmp_path / "failed"
    assert reverie(["ingest", *(str(damaged_files[kind]) for kind in DAMAGED), "--out", str(out), "--workers", "1"]) == 0
    summary = inspect_json(capsys, str(out))
    assert (summary["inputs"], summary["clips"], summary["shards"]) == (5, 0, 0)
    assert summary["failures"] == FAILURES
    assert summary["contact_sheet"] is None
    assert not (out / "contact_sheet.png").exists()


@pytest.mark.parametrize("contents", ["nothing", "other files", "missing"])
def test_a_folder_not_made_by_ingest_is_refused_by_name(tmp_path, contents, capsys):
    folder = tmp_path / "not ingested"
    if contents != "missing":
        folder.mkdir()
    if contents == "other files":
        (folder / "notes.txt").write_text("hello")
        (folder / "shards").mkdir()
    assert reverie(["inspect", str(folder)]) == 2
    assert capsys.readouterr().err.startswith(f"reverie inspect: {folder}: no manifest.jsonl and no shards")


@pytest.mark.parametrize("manifest", ["manifest.jsonl", "manifests/slice-0000.jsonl"])
def test_inspect_leaves_a_live_manifest_as_it_is(tmp_path, manifest):
    """A run may be appending to the manifest while it is inspected, mid-line: inspect only reads."""
    path = tmp_path / manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {"path": "a.mp4", "status": "failed", "reason": "empty file (0 bytes)", "clips": 0, "shards": []}
    path.write_text(json.dumps(done) + '\n{"path": "b.mp4", "sta')
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    summary = summarize(tmp_path)
    assert (summary["inputs"], summary["failures"]) == (1, {"empty file": 1})
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
