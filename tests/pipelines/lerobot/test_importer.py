"""`run_lerobot_import` against what a dataset must not be able to do: crash or hang the run, or
make it read files outside the dataset folder."""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import signal
import time

import pytest

from lerobot_folders import LENGTHS, imported, write_v30
from reverie.pipelines.lerobot import importer
from reverie.shards.episode_reader import shard_episodes, shard_folder, shard_samples
from reverie.shards.episodes import clip_starts


def crash_or_hang_on(crash: str, hang: str):
    """`decode_span`, except that a real crash hits video `crash` and a hang video `hang`."""
    decode_span = importer.decode_span

    def flaky(path, *args):
        if path.name == crash:
            faulthandler.disable()  # a real crash, without pytest's traceback dump in the log
            os.kill(os.getpid(), signal.SIGSEGV)
        if path.name == hang:
            time.sleep(3600)
        return decode_span(path, *args)

    return flaky


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the test decoder reaches workers by fork")
def test_a_crashing_or_hanging_decoder_costs_only_its_episode(tmp_path, monkeypatch):
    dataset = write_v30(tmp_path / "dataset", video_file=(0, 1, 2))  # one video file per episode
    monkeypatch.setattr(importer, "decode_span", crash_or_hang_on(crash="file-000.mp4", hang="file-001.mp4"))
    started = time.perf_counter()
    lines = imported(dataset, tmp_path / "out", decode_timeout=3, timeout_per_second=0)
    assert time.perf_counter() - started < 30
    assert [line["status"] for line in lines] == ["failed", "failed", "ok"]
    assert lines[0]["reason"].startswith("episode 0: decoder process crashed during decode (exit code")
    assert lines[1]["reason"] == "episode 1: decode timed out after 3 s"
    assert lines[2]["clips"] == len(clip_starts(LENGTHS[2], 4))
    assert [episode.meta["episode"] for episode, _ in shard_episodes(tmp_path / "out")] == [2]


def test_an_unreadable_video_fails_its_episode_naming_the_camera_and_file(tmp_path):
    dataset = write_v30(tmp_path / "dataset", video_file=(0, 0, 1))
    video = "videos/observation.images.wrist/chunk-000/file-001.mp4"
    (dataset / video).write_bytes(b"not a video")
    lines = imported(dataset, tmp_path / "out")
    assert [line["status"] for line in lines] == ["ok", "ok", "failed"]
    assert lines[2]["reason"].startswith(f"episode 2, observation.images.wrist: {video}: cannot open (")


def test_episodes_decoded_in_parallel_are_written_in_episode_order(tmp_path):
    dataset = write_v30(tmp_path / "dataset", video_file=(0, 1, 2))
    keys = {}
    for workers in (1, 3):
        imported(dataset, tmp_path / f"out{workers}", workers=workers)
        keys[workers] = [json.loads(sample["json"])["key"] for sample in shard_samples(shard_folder(tmp_path / f"out{workers}"))]
    assert keys[3] == keys[1] and len(keys[1]) == sum(len(clip_starts(n, 4)) for n in LENGTHS)


def edit_info(dataset, change) -> None:
    info_path = dataset / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    change(info)
    info_path.write_text(json.dumps(info))


def rename_camera(info: dict, new_key: str) -> None:
    info["features"] = {new_key if key == "observation.images.wrist" else key: value for key, value in info["features"].items()}


HOSTILE_INFO = {
    "data_path_up": (lambda info: info.update(data_path="../outside/{chunk_index}.parquet"), "data_path '../outside/"),
    "data_path_absolute": (lambda info: info.update(data_path="/etc/{chunk_index}.parquet"), "data_path '/etc/"),
    "video_path_up": (lambda info: info.update(video_path="videos/../../{video_key}.mp4"), "video_path 'videos/../../"),
    "video_path_attribute": (
        lambda info: info.update(video_path="{video_key.__class__}/{chunk_index}.mp4"),
        "video_path '{video_key.__class__}",
    ),
    "video_key_up": (lambda info: rename_camera(info, "../../wrist"), "video feature '../../wrist'"),
    "video_key_slash": (lambda info: rename_camera(info, "observation/wrist"), "video feature 'observation/wrist'"),
}


@pytest.mark.parametrize("name", HOSTILE_INFO)
def test_info_json_pointing_outside_the_dataset_fails_it_naming_the_key(name, tmp_path):
    dataset = write_v30(tmp_path / "dataset")
    change, named = HOSTILE_INFO[name]
    edit_info(dataset, change)
    lines = imported(dataset, tmp_path / "out")
    assert [(line["path"], line["status"]) for line in lines] == [(str(dataset), "failed")]
    assert named in lines[0]["reason"] and "meta/info.json" in lines[0]["reason"]
    assert not list((tmp_path / "out" / "shards").glob("*.tar"))


def test_a_symlink_out_of_the_dataset_fails_it(tmp_path):
    """A data folder that links to a copy outside: same files, but not the dataset's to read."""
    dataset = write_v30(tmp_path / "dataset")
    (dataset / "data").rename(tmp_path / "elsewhere")
    (dataset / "data").symlink_to(tmp_path / "elsewhere")
    lines = imported(dataset, tmp_path / "out")
    assert [(line["path"], line["status"]) for line in lines] == [(str(dataset), "failed")]
    reason = lines[0]["reason"]
    assert "data_path" in reason and str(tmp_path / "elsewhere") in reason and "outside the dataset" in reason


def test_a_symlink_inside_the_dataset_is_followed(tmp_path):
    dataset = write_v30(tmp_path / "dataset")
    (dataset / "data").rename(dataset / "real-data")
    (dataset / "data").symlink_to(dataset / "real-data")
    assert [line["status"] for line in imported(dataset, tmp_path / "out")] == ["ok"] * 3
