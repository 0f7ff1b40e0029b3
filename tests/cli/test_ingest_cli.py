"""`reverie ingest INPUT... --out DIR`: flags become the ingest and clip settings, inputs come from
arguments, folders, globs and --input-list, the settings are saved for --merge, the report names
failures, and missing --out or inputs, a bad setting, a folder another process writes and a resume
with other clip settings exit 2. Ingesting real video, --strict, resume and --merge are in
`tests/pipelines/`; --slurm in `tests/training/launch/test_ingest_array.py`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reverie.cli import ingest
from reverie.cli.main import main
from reverie.pipelines.decoders import DEFAULT_DECODER
from reverie.shards.folder_lock import LOCK_NAME



@pytest.fixture
def ingests(monkeypatch) -> list:
    """The configs `run_ingest` is called with; each input reported ok with 2 clips."""
    calls = []

    def fake_ingest(config):
        calls.append(config)
        return [{"path": path, "status": "ok", "clips": 2, "reason": None} for path in config.slice_inputs]

    monkeypatch.setattr(ingest, "run_ingest", fake_ingest)
    return calls


@pytest.fixture
def videos(tmp_path) -> list[Path]:
    """Files named as videos (never decoded here): two at the top, one in a subfolder."""
    (tmp_path / "videos" / "more").mkdir(parents=True)
    paths = [tmp_path / "videos" / "a.mp4", tmp_path / "videos" / "b.mkv", tmp_path / "videos" / "more" / "c.mp4"]
    for path in paths:
        path.write_bytes(b"")
    return paths


def test_defaults(ingests, videos, tmp_path):
    assert main(["ingest", str(videos[0]), "--out", str(tmp_path / "out")]) == 0
    (config,) = ingests
    spec = config.spec
    assert (spec.clip_frames, spec.fps, spec.size, spec.keep_aspect, spec.clip_format, spec.decoder) == (16, 8.0, 256, False, "mp4", DEFAULT_DECODER)
    assert (spec.scene_cuts, spec.cut_threshold, spec.min_duration, spec.min_motion) == (True, 27.0, 1.0, 0.002)  # filters on
    assert (config.dedup, config.dedup_distance, config.shard_max_count, config.shard_max_bytes) == (True, 8, 1000, 10**9)
    assert (config.workers, config.slice_index, config.num_slices) == (os.cpu_count(), None, 1)
    assert (config.probe_timeout, config.decode_timeout, config.timeout_per_second) == (60.0, 120.0, 10.0)
    assert (config.max_timeout, config.max_pixels, config.retry_failed) == (600.0, 7680 * 4320, False)
    assert config.progress is False  # stderr is not a terminal here


def test_flags_reach_the_settings(ingests, videos, tmp_path):
    flags = ["--clip-frames", "8", "--fps", "4", "--size", "64", "--keep-aspect", "--format", "npy", "--decoder", "pyav", "--no-scene-cuts"]
    flags += ["--cut-threshold", "40", "--min-duration", "0", "--min-motion", "0", "--no-dedup", "--dedup-distance", "3"]
    flags += ["--shard-size", "10", "--shard-bytes", "2MiB", "--workers", "1", "--timeout", "5", "--timeout-per-second", "1"]
    flags += ["--max-timeout", "30", "--max-pixels", "921600", "--retry-failed"]
    assert main(["ingest", str(videos[0]), "--out", str(tmp_path / "out"), *flags]) == 0
    (config,) = ingests
    spec = config.spec
    assert (spec.clip_frames, spec.fps, spec.size, spec.keep_aspect, spec.clip_format) == (8, 4.0, 64, True, "npy")
    assert (spec.scene_cuts, spec.cut_threshold, spec.min_duration, spec.min_motion) == (False, 40.0, 0.0, 0.0)
    assert (config.dedup, config.dedup_distance, config.shard_max_count, config.shard_max_bytes) == (False, 3, 10, 2 * 2**20)
    assert (config.workers, config.decode_timeout, config.timeout_per_second) == (1, 5.0, 1.0)
    assert (config.max_timeout, config.max_pixels, config.retry_failed) == (30.0, 921600, True)


def test_inputs_from_files_folders_globs_and_a_list_once_each(ingests, videos, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# my videos\n{videos[1]}\n\n{tmp_path / 'elsewhere.mp4'}\n")
    pattern = str(tmp_path / "videos" / "*.mp4")
    assert main(["ingest", pattern, str(tmp_path / "videos" / "more"), str(videos[0]), "--input-list", str(listing), "--out", str(tmp_path / "out")]) == 0
    (config,) = ingests
    expected = [videos[0], videos[2], videos[1], tmp_path / "elsewhere.mp4"]  # a missing file stays, to be reported as failed
    assert config.inputs == [os.path.abspath(path) for path in expected]


def test_settings_are_saved_beside_the_shards_except_for_one_slice(videos, tmp_path):
    """Ingested for real: the empty files fail at once."""
    assert main(["ingest", *map(str, videos), "--out", str(tmp_path / "out"), "--size", "64", "--workers", "1"]) == 0
    saved = json.loads((tmp_path / "out" / "ingest.json").read_text())
    assert saved["inputs"] == [os.path.abspath(path) for path in videos] and saved["settings"]["spec"]["size"] == 64
    arguments = ["ingest", *map(str, videos), "--out", str(tmp_path / "slice"), "--slice", "1", "--num-slices", "2", "--workers", "1"]
    assert main(arguments) == 0
    assert [line["path"] for line in map(json.loads, (tmp_path / "slice" / "manifests" / "slice-0001.jsonl").open())] == [os.path.abspath(videos[1])]
    assert not (tmp_path / "slice" / "ingest.json").exists()  # the whole run's settings are not a slice's to write


def test_the_report_counts_statuses_and_names_each_failure(monkeypatch, videos, tmp_path, capsys):
    lines = [
        {"path": str(videos[0]), "status": "ok", "clips": 5, "reason": None},
        {"path": str(videos[1]), "status": "skipped", "clips": 0, "reason": "shorter than 1.0 s"},
        {"path": str(videos[2]), "status": "failed", "clips": 0, "reason": "no video stream"},
    ]
    monkeypatch.setattr(ingest, "run_ingest", lambda config: lines)
    arguments = ["ingest", *map(str, videos), "--out", str(tmp_path / "out")]
    assert main(arguments) == 0
    report = capsys.readouterr().err.splitlines()
    assert report[0] == f"3 inputs: 1 ok, 1 skipped, 1 failed; 5 clips in {tmp_path / 'out' / 'shards'}"
    assert report[1].strip() == f"failed {videos[2]}: no video stream" and len(report) == 2
    assert main([*arguments, "--strict"]) == 1


def test_without_out_or_inputs_it_exits_2(ingests, tmp_path, capsys):
    assert main(["ingest", str(tmp_path)]) == 2
    assert "reverie ingest: --out DIR is required" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["ingest", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "reverie ingest: no inputs (give files, folders, globs or --input-list)" in capsys.readouterr().err
    assert main(["ingest", "--out", str(tmp_path / "out")]) == 2
    assert ingests == []


def test_lerobot_datasets_refuse_the_video_only_flags(ingests, tmp_path, capsys):
    dataset = tmp_path / "dataset"
    (dataset / "meta").mkdir(parents=True)
    (dataset / "meta" / "info.json").write_text("{}")
    for flags in (["--slurm"], ["--slice", "0", "--num-slices", "2"]):
        assert main(["ingest", str(dataset), "--out", str(tmp_path / "out"), *flags]) == 2
        assert "reverie ingest: --slurm and --slice are for videos, not LeRobot datasets" in capsys.readouterr().err
    assert ingests == []


def test_an_unknown_decoder_or_format_is_refused_by_argparse(capsys):
    for flags in (["--decoder", "ffplay"], ["--format", "gif"]):
        with pytest.raises(SystemExit) as exit:
            main(["ingest", "video.mp4", "--out", "out", *flags])
        assert exit.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--size", "255"], "--size 255: must be even"),
        (["--fps", "0"], "--fps 0: must be a positive, finite frame rate"),
        (["--clip-frames", "0"], "--clip-frames 0: must be at least 1"),
        (["--min-motion", "5"], "--min-motion 5: must be within 0..1"),
        (["--cut-threshold", "-1"], "--cut-threshold -1: must be within 0..255"),
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--timeout", "900"], "--timeout 900: must not exceed --max-timeout 600"),
        (["--slice", "2", "--num-slices", "2"], "--slice 2: must be within 0..1"),
    ],
)
def test_a_setting_that_cannot_work_exits_2_naming_it_before_any_file_is_written(ingests, videos, tmp_path, flags, message, capsys):
    assert main(["ingest", str(videos[0]), "--out", str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err.startswith(f"reverie ingest: {message}")
    assert ingests == [] and not (tmp_path / "out").exists()




def folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["videos", "lerobot"])
def test_a_folder_another_process_writes_exits_2_naming_it_and_the_holders_pid(kind, videos, tmp_path, hold_lock, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text('{"path": "a.mp4", "status": "ok", "clips": 1, "shards": ["000000.tar"]}\n')
    inputs = [str(videos[0])]
    if kind == "lerobot":
        (tmp_path / "dataset" / "meta").mkdir(parents=True)
        (tmp_path / "dataset" / "meta" / "info.json").write_text("{}")
        inputs = [str(tmp_path / "dataset")]
    first = hold_lock(out)
    before = folder_state(out)
    assert main(["ingest", *inputs, "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"reverie ingest: {out} is being written by process {first.pid} (lock {out / LOCK_NAME})")
    assert folder_state(out) == before


def test_a_resume_with_other_clip_settings_exits_2_listing_them(videos, tmp_path, capsys):
    out = tmp_path / "out"
    arguments = ["ingest", *map(str, videos), "--out", str(out), "--workers", "1"]
    assert main([*arguments, "--size", "64"]) == 0
    manifest = (out / "manifest.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*arguments, "--size", "128", "--fps", "4", "--no-scene-cuts"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"reverie ingest: {out} was ingested with other settings ({out / 'ingest.json'}): "
        "--fps 4 (was 8), --size 128 (was 64), --scene-cuts False (was True); rerun with the folder's values, or ingest into a new --out"
    )
    assert (out / "manifest.jsonl").read_bytes() == manifest
    budget = ["--workers", "2", "--shard-size", "5", "--timeout", "9", "--max-timeout", "99", "--max-pixels", "1000", "--retry-failed"]
    assert main([*arguments[:-2], "--size", "64", *budget]) == 0


def test_lerobot_datasets_get_the_worker_and_timeout_flags(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(ingest, "run_lerobot_import", lambda config: calls.append(config) or [])
    dataset = tmp_path / "dataset"
    (dataset / "meta").mkdir(parents=True)
    (dataset / "meta" / "info.json").write_text("{}")
    flags = ["--workers", "3", "--probe-timeout", "7", "--timeout", "50", "--timeout-per-second", "2", "--max-timeout", "90"]
    assert main(["ingest", str(dataset), "--out", str(tmp_path / "out"), *flags]) == 0
    (config,) = calls
    assert (config.workers, config.meta_timeout, config.decode_timeout, config.timeout_per_second, config.max_timeout) == (3, 7.0, 50.0, 2.0, 90.0)
