import dataclasses
import faulthandler
import hashlib
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from reverie.cli.main import main as reverie
from reverie.pipelines import ingest as ingest_module
from reverie.pipelines.clips import ClipSpec
from reverie.pipelines.decoders import DECODERS
from reverie.pipelines.decoders.pyav_decoder import PyAVDecoder
from reverie.shards.payloads import decode_mp4
from reverie.pipelines.errors import SettingsChangedError, SettingsError
from reverie.pipelines.ingest import IngestConfig, cut_timeout, run_ingest
from reverie.shards.folder_lock import LOCK_NAME, FolderLockedError
from reverie.shards.manifest import ManifestAppender, read_manifest
from reverie.shards.writer import ShardWriter
from reverie.pipelines.synthetic import make_sample_set

SPEC = ClipSpec(clip_frames=8, size=64, clip_format="npy", min_duration=1.0, min_motion=0.002)


def clip_set(out: Path) -> dict[str, str]:
    """Every clip in the shards: key -> SHA-1 of its payload and metadata. Fails on a duplicate key."""
    clips: dict[str, str] = {}
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                key = member.name.partition(".")[0]
                digest = hashlib.sha1(tar.extractfile(member).read()).hexdigest()
                assert f"{key}/{member.name}" not in clips, f"duplicate {member.name}"
                clips[f"{key}/{member.name}"] = digest
    return clips


def statuses(out: Path) -> dict[str, str]:
    lines = read_manifest(out / "manifest.jsonl")
    assert len(lines) == len({line["path"] for line in lines}), "an input has two manifest lines"
    return {Path(line["path"]).name: line["status"] for line in lines}


@pytest.fixture(scope="module")
def inputs(sample_videos, damaged_files, vfr_video) -> list[str]:
    return [str(p) for p in [*sample_videos, vfr_video, *damaged_files.values()]]


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> Path:
    """An uninterrupted run: what every resumed run must end up equal to."""
    out = tmp_path_factory.mktemp("reference")
    run_ingest(IngestConfig(inputs=inputs, out=out, spec=SPEC, shard_max_count=4, progress=False))
    return out


def test_bad_inputs_get_a_reason_and_every_good_clip_lands(reference, sample_videos, vfr_video, tmp_path):
    lines = {Path(line["path"]).name: line for line in read_manifest(reference / "manifest.jsonl")}
    expected = {
        "empty.mp4": "empty file",
        "truncated.mp4": "truncated or corrupt",
        "corrupt.mp4": "truncated or corrupt",
        "random.mkv": "not a media file",
        "audio_only.m4a": "no video stream (only audio streams)",
        "notes.mp4": "a text file, not a video",
    }
    for name, reason in expected.items():
        assert lines[name]["status"] == "failed" and reason in lines[name]["reason"], lines[name]
        assert lines[name]["clips"] == 0 and lines[name]["shards"] == []
    good_only = tmp_path / "good"
    good_inputs = [str(p) for p in [*sample_videos, vfr_video]]
    run_ingest(IngestConfig(inputs=good_inputs, out=good_only, spec=SPEC, shard_max_count=4, progress=False))
    assert set(clip_set(good_only).values()) == set(clip_set(reference).values())
    assert sum(line["clips"] for line in lines.values()) * 2 == len(clip_set(reference))


def test_cli_exit_code_is_zero_unless_strict(damaged_files, sample_videos, tmp_path):
    args = ["ingest", str(sample_videos[0]), str(damaged_files["random"]), "--size", "64", "--workers", "1"]
    assert reverie(args + ["--out", str(tmp_path / "a")]) == 0
    assert reverie(args + ["--out", str(tmp_path / "b"), "--strict"]) == 1


def test_cli_starts_without_torch():
    """Start-up is part of every `reverie ingest` run (benchmarks/ingest.py); torch alone takes over a second."""
    code = "import sys, reverie.cli.main; print(sorted({'torch', 'webdataset'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_shards_read_back_with_stock_webdataset(sample_videos, tmp_path):
    out = tmp_path / "mp4"
    assert reverie(["ingest", *map(str, sample_videos[:2]), "--out", str(out), "--size", "64", "--workers", "2"]) == 0
    dataset = wds.WebDataset(sorted(str(p) for p in (out / "shards").glob("*.tar")), shardshuffle=False)
    samples = list(dataset)
    assert samples and all({k for k in s if not k.startswith("__")} == {"mp4", "json"} for s in samples)
    for sample in samples:
        meta = json.loads(sample["json"])
        frames = decode_mp4(sample["mp4"])
        assert frames.shape == (16, 64, 64, 3) and meta["key"] == sample["__key__"]
        assert meta["end_time"] - meta["start_time"] == pytest.approx(2.0)
    listing = subprocess.run(["tar", "tf", str(out / "shards" / "000000.tar")], capture_output=True, text=True, check=True)
    assert listing.stdout.split() == [name for s in samples for name in (f"{s['__key__']}.json", f"{s['__key__']}.mp4")]


def test_npy_format_holds_the_frames(reference):
    sample = next(iter(wds.WebDataset(str(reference / "shards" / "000000.tar"), shardshuffle=False).decode()))
    assert sample["npy"].shape == (8, 64, 64, 3) and sample["npy"].dtype == np.uint8


class _Stop(Exception):
    """Stands in for a kill: raised from inside the run, it leaves files as a kill would."""


def _stop_after(calls: int, function):
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise _Stop
        return function(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("where,calls", [("write", 1), ("write", 6), ("write", 11), ("append", 2), ("append", 5)])
def test_resume_after_a_stop_equals_an_uninterrupted_run(where, calls, inputs, reference, tmp_path, monkeypatch):
    config = IngestConfig(inputs=inputs, out=tmp_path, spec=SPEC, shard_max_count=4, progress=False)
    target = ShardWriter if where == "write" else ManifestAppender
    with monkeypatch.context() as patch:
        patch.setattr(target, where, _stop_after(calls, getattr(target, where)))
        with pytest.raises(_Stop):
            run_ingest(config)
    run_ingest(config)
    assert clip_set(tmp_path) == clip_set(reference)
    assert statuses(tmp_path) == statuses(reference)
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / ".spool").exists()


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the test decoder reaches workers by fork")
def test_a_crashing_or_hanging_decoder_costs_only_that_file(sample_videos, tmp_path):
    for name in ("crash_me.mp4", "hang_me.mp4"):
        (tmp_path / name).write_bytes(sample_videos[0].read_bytes())
    inputs = [str(sample_videos[1]), str(tmp_path / "crash_me.mp4"), str(tmp_path / "hang_me.mp4"), str(sample_videos[2])]
    spec = ClipSpec(size=64, decoder="flaky")
    config = IngestConfig(inputs=inputs, out=tmp_path / "out", spec=spec, workers=2, decode_timeout=1, timeout_per_second=1e9, max_timeout=5, progress=False)
    started = time.perf_counter()
    lines = {Path(line["path"]).name: line for line in run_ingest(config)}
    assert time.perf_counter() - started < 30
    assert "crashed" in lines["crash_me.mp4"]["reason"] and lines["crash_me.mp4"]["status"] == "failed"
    assert lines["hang_me.mp4"]["reason"] == "decode timed out after 5 s (--max-timeout)"
    assert lines[sample_videos[1].name]["status"] == lines[sample_videos[2].name]["status"] == "ok"


@DECODERS.register("flaky")
class FlakyDecoder:
    """PyAV, except that it crashes on files named crash_* and hangs on files named hang_*."""

    module = "av"

    def frames(self, info, fps, geometry):
        name = Path(info.path).name
        if name.startswith("crash_"):
            faulthandler.disable()  # a real crash, without pytest's traceback dump in the log
            os.kill(os.getpid(), signal.SIGSEGV)
        if name.startswith("hang_"):
            time.sleep(3600)
        yield from PyAVDecoder().frames(info, fps, geometry)


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory, needs_ffmpeg) -> list[Path]:
    return make_sample_set(tmp_path_factory.mktemp("many"), count=8, seconds=4.0, size=(256, 144))


def test_kill_9_at_any_moment_then_resume(many_videos, tmp_path):
    """Kill the whole process group with SIGKILL at growing delays until a run completes."""
    command = [sys.executable, "-m", "reverie.cli.main", "ingest", *map(str, many_videos), "--size", "64"]
    command += ["--clip-frames", "4", "--format", "npy", "--shard-size", "2", "--workers", "2"]
    started = time.perf_counter()
    subprocess.run(command + ["--out", str(tmp_path / "whole")], check=True, capture_output=True)
    whole_s = time.perf_counter() - started  # delays scale with it, so kills land mid-run on any machine
    delays, finished, kills = [whole_s * fraction for fraction in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5)] + [60.0], False, 0
    for delay in delays:
        process = subprocess.Popen(command + ["--out", str(tmp_path / "killed")], start_new_session=True, stderr=subprocess.DEVNULL)
        try:
            finished = process.wait(timeout=delay) == 0
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
        if finished:
            break
    assert finished and kills >= 2
    assert clip_set(tmp_path / "killed") == clip_set(tmp_path / "whole")
    assert statuses(tmp_path / "killed") == statuses(tmp_path / "whole")


def test_finished_inputs_are_not_decoded_again(sample_videos, tmp_path):
    copies = []
    for video in sample_videos[:2]:
        copies.append(tmp_path / video.name)
        copies[-1].write_bytes(video.read_bytes())
    config = IngestConfig(inputs=[str(p) for p in copies], out=tmp_path / "out", spec=SPEC, progress=False)
    run_ingest(config)
    before = clip_set(tmp_path / "out")
    for copy in copies:
        copy.write_bytes(b"garbage")  # decoding it again would fail
    lines = run_ingest(config)
    assert [line["status"] for line in lines] == ["ok", "ok"]
    assert clip_set(tmp_path / "out") == before


def test_workers_give_the_same_clips_as_one_worker(inputs, reference, tmp_path):
    run_ingest(IngestConfig(inputs=inputs, out=tmp_path, spec=SPEC, shard_max_count=4, workers=2, progress=False))
    assert clip_set(tmp_path) == clip_set(reference)


def test_ingest_module_docstring_names_the_resume_rule():
    assert "prefix of the clip stream" in ingest_module.__doc__


def test_the_decode_timeout_is_capped_whatever_duration_a_file_declares():
    config = IngestConfig(inputs=[], out=Path("out"), decode_timeout=120, timeout_per_second=10, max_timeout=600)
    declared = [0.0, 30.0, 1e12, float("inf"), float("nan"), -5.0]
    assert [cut_timeout(config, duration) for duration in declared] == [120, 420, 600, 600, 600, 120]


@DECODERS.register("refuse")
class RefusingDecoder:
    """Fails any file it is asked to decode: a file that reaches it was decoded."""

    module = "av"

    def frames(self, info, fps, geometry):
        raise AssertionError(f"{info.path} was decoded")


def test_a_frame_size_over_the_pixel_cap_fails_that_file_without_decoding_it(sample_videos, tmp_path):
    spec = dataclasses.replace(SPEC, decoder="refuse")
    inputs = [str(sample_videos[0])]  # 320 x 180
    (line,) = run_ingest(IngestConfig(inputs=inputs, out=tmp_path / "capped", spec=spec, max_pixels=320 * 180 - 1, progress=False))
    assert line["status"] == "failed" and line["reason"] == "frame size 320x180 is over --max-pixels 57599 (57600 pixels); not decoded"
    (line,) = run_ingest(IngestConfig(inputs=inputs, out=tmp_path / "at_cap", spec=spec, max_pixels=320 * 180, progress=False))
    assert "was decoded" in line["reason"]


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("workers", 0, "--workers 0: must be at least 1"),
        ("shard_max_count", 0, "--shard-size 0: must be at least 1"),
        ("shard_max_bytes", 0, "--shard-bytes 0: must be at least 1"),
        ("dedup_distance", 300, "--dedup-distance 300: must be within 0..256"),
        ("probe_timeout", 0.0, "--probe-timeout 0: must be a positive number of seconds"),
        ("decode_timeout", float("nan"), "--timeout nan: must be a positive number of seconds"),
        ("timeout_per_second", -1.0, "--timeout-per-second -1: must be 0 or more seconds"),
        ("max_timeout", 0.0, "--max-timeout 0: must be a positive number of seconds"),
        ("max_pixels", 0, "--max-pixels 0: must be at least 1"),
        ("num_slices", 0, "--num-slices 0: must be at least 1"),
        ("slice_index", 2, "--slice 2: must be within 0..1 (--num-slices 2)"),
    ],
)
def test_an_ingest_setting_that_cannot_work_is_refused_naming_its_flag(setting, value, message, tmp_path):
    settings = {"num_slices": 2} if setting == "slice_index" else {}
    with pytest.raises(SettingsError, match=re.escape(message)):
        IngestConfig(inputs=[], out=tmp_path, **settings, **{setting: value})






def folder_state(folder: Path, but: tuple[str, ...] = ()) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time, except the files named in `but`."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in but]
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def test_a_second_ingest_of_a_folder_being_written_is_refused_and_changes_no_file(sample_videos, tmp_path, hold_lock):
    out = tmp_path / "out"
    config = IngestConfig(inputs=[str(sample_videos[0])], out=out, spec=SPEC, shard_max_count=2, progress=False)
    run_ingest(config)
    (out / "shards" / "000003.tar.tmp").write_bytes(b"the first run's open shard")
    (out / ".spool" / "local").mkdir(parents=True)
    (out / ".spool" / "local" / "0123456789abcdef.tar.partial").write_bytes(b"the first run's spool")
    first = hold_lock(out)
    before = folder_state(out)
    with pytest.raises(FolderLockedError, match=re.escape(f"{out} is being written by process {first.pid}")):
        run_ingest(dataclasses.replace(config, inputs=[str(sample_videos[0]), str(sample_videos[1])]))
    assert folder_state(out) == before


def test_each_slice_of_an_array_locks_its_own_files(sample_videos, tmp_path, hold_lock):
    """Array tasks share DIR by design; a task run twice is refused, the other tasks are not."""
    out = tmp_path / "out"
    inputs = [str(video) for video in sample_videos[:2]]
    task = hold_lock(out, ".lock-s0000")
    with pytest.raises(FolderLockedError, match=re.escape(f"by process {task.pid} (lock {out / '.lock-s0000'})")):
        run_ingest(IngestConfig(inputs=inputs, out=out, spec=SPEC, slice_index=0, num_slices=2, progress=False))
    assert not (out / "manifests").exists()
    (line,) = run_ingest(IngestConfig(inputs=inputs, out=out, spec=SPEC, slice_index=1, num_slices=2, progress=False))
    assert line["path"] == inputs[1] and line["status"] == "ok"


def test_a_resume_with_other_clip_settings_is_refused_listing_them(sample_videos, tmp_path):
    config = IngestConfig(inputs=[str(sample_videos[0])], out=tmp_path, spec=SPEC, progress=False)
    run_ingest(config)
    before = folder_state(tmp_path, but=(LOCK_NAME,))  # the refused run held the free lock, writing its pid there
    changed = dataclasses.replace(config, spec=dataclasses.replace(SPEC, fps=4.0, clip_format="mp4"), dedup=False)
    with pytest.raises(SettingsChangedError) as error:
        run_ingest(changed)
    assert error.value.changes == {"--fps": (4.0, 8.0), "--format": ("mp4", "npy"), "--dedup": (False, True)}
    assert f"{tmp_path} was ingested with other settings ({tmp_path / 'ingest.json'}): --fps 4 (was 8), --format mp4 (was npy)" in str(error.value)
    assert folder_state(tmp_path, but=(LOCK_NAME,)) == before
    budget = dict(workers=2, shard_max_count=3, shard_max_bytes=10**6, decode_timeout=30.0, max_timeout=60.0, max_pixels=10**6)
    resumed = dataclasses.replace(config, inputs=[str(sample_videos[0]), str(sample_videos[1])], **budget)
    assert [line["status"] for line in run_ingest(resumed)] == ["ok", "ok"]  # budget and layout may change


def test_retry_failed_decodes_the_failed_inputs_again(sample_videos, tmp_path):
    video = tmp_path / "video.mp4"
    video.write_bytes(b"")  # still being copied when the run saw it
    inputs = [str(sample_videos[0]), str(video)]
    config = IngestConfig(inputs=inputs, out=tmp_path / "out", spec=SPEC, progress=False)
    assert [line["status"] for line in run_ingest(config)] == ["ok", "failed"]
    video.write_bytes(sample_videos[1].read_bytes())
    assert [line["status"] for line in run_ingest(config)] == ["ok", "failed"]  # failed for good, unless asked
    lines = run_ingest(dataclasses.replace(config, retry_failed=True))
    assert [(line["path"], line["status"]) for line in lines] == [(inputs[0], "ok"), (inputs[1], "ok")]
    whole = IngestConfig(inputs=[str(sample_videos[0]), str(video)], out=tmp_path / "whole", spec=SPEC, progress=False)
    run_ingest(whole)
    assert clip_set(tmp_path / "out") == clip_set(tmp_path / "whole")


@pytest.mark.parametrize("spool_file, damage", [("json", "empty"), ("json", "torn"), ("tar", "empty"), ("tar", "torn")])
def test_a_broken_spool_is_decoded_again(spool_file, damage, sample_videos, tmp_path, monkeypatch):
    """A spool is reused as it is on resume; one left empty or cut short (a power cut before its
    fsync reached the disk) must be decoded again, not crash the run or lose clips."""
    config = IngestConfig(inputs=[str(sample_videos[0])], out=tmp_path / "out", spec=SPEC, progress=False)
    with monkeypatch.context() as patch:
        patch.setattr(ingest_module._Committer, "commit", _stop_after(0, ingest_module._Committer.commit))
        with pytest.raises(_Stop):
            run_ingest(config)
    (spool,) = config.spool_dir.glob(f"*.{spool_file}")
    spool.write_bytes(b"" if damage == "empty" else spool.read_bytes()[: spool.stat().st_size // 2])
    run_ingest(config)
    run_ingest(dataclasses.replace(config, out=tmp_path / "whole"))
    assert clip_set(tmp_path / "out") == clip_set(tmp_path / "whole")
    assert statuses(tmp_path / "out") == statuses(tmp_path / "whole")


def test_two_ingests_started_on_one_folder_give_one_run_and_a_refusal(many_videos, tmp_path):
    """The second command exits 2 naming the first one's pid; the folder ends as one run leaves it."""
    command = [sys.executable, "-m", "reverie.cli.main", "ingest", *map(str, many_videos), "--size", "64", "--clip-frames", "4"]
    command += ["--format", "npy", "--shard-size", "2", "--workers", "1", "--out"]
    subprocess.run([*command, str(tmp_path / "alone")], check=True, capture_output=True)
    out = tmp_path / "out"
    first = subprocess.Popen([*command, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (out / LOCK_NAME).exists() or (out / LOCK_NAME).read_text().strip() != str(first.pid):
        assert first.poll() is None, "the first run ended before it was seen holding the lock"
        time.sleep(0.01)
    second = subprocess.run([*command, str(out)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "1000"})
    assert first.poll() is None, "the first run ended before the second one was refused: the test proves nothing"
    assert first.wait() == 0 and second.returncode == 2
    assert f"{out} is being written by process {first.pid}" in second.stderr
    assert clip_set(out) == clip_set(tmp_path / "alone")
    assert statuses(out) == statuses(tmp_path / "alone")
