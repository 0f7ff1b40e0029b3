"""`reverie play MODEL_DIR --headless`: the video and JSON it writes (decoded back with PyAV), the
start from a prompt image of another size or from episode shards, the same frames for the same
seed and actions, multi-discrete actions played as joint indices, and bad input as one line on
stderr with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reverie.cli.main import main
from reverie.play import PlayConfig, run_play
from play_models import pixel_model_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def decoded(video: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of an mp4."""
    with av.open(str(video)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def play(model: Path, tmp_path: Path, actions: str, *flags: str, name: str = "out") -> tuple[int, Path, Path]:
    video, report = tmp_path / f"{name}.mp4", tmp_path / f"{name}.json"
    status = main(["play", str(model), "--headless", "--actions", actions, "--record", str(video), "--json", str(report), *flags])
    return status, video, report


def test_headless_play_writes_a_video_of_every_step_and_the_report(pixel_folder, prompt_image, tmp_path, capsys):
    status, video, report_file = play(pixel_folder, tmp_path, "0,1,1,2,0", "--prompt", str(prompt_image), "--seed", "3", "--device", "cpu")
    assert status == 0
    frames = decoded(video)
    assert frames.shape == (6, 16, 16, 3)  # the start frame and one a step
    report = json.loads(report_file.read_text())
    assert report["model"] == "pixel_diffusion_world_model" and report["mode"] == "headless"
    assert (report["steps"], report["frames"], report["actions"]) == (5, 6, [0, 1, 1, 2, 0])
    assert report["frame_size"] == [16, 16] and report["fps"] > 0 and report["model_fps"] >= report["fps"]
    assert report["start"] == {"prompt": str(prompt_image), "resized_from": [40, 30]}
    assert report["seed"] == 3 and report["video"] == str(video)
    assert "resized from 40x30 to the model's 16x16" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial"))  # the temporary video was renamed into place


def test_same_seed_and_actions_give_the_same_frames_and_another_seed_others(pixel_folder, prompt_image, tmp_path):
    runs = {name: play(pixel_folder, tmp_path, "2,0,1", "--prompt", str(prompt_image), "--seed", seed, name=name)
            for name, seed in (("first", "7"), ("again", "7"), ("other", "8"))}  # fmt: skip
    assert all(status == 0 for status, _, _ in runs.values())
    first, again, other = (decoded(video) for _, video, _ in runs.values())
    assert np.array_equal(first, again)
    assert np.array_equal(first[0], other[0]) and not np.array_equal(first[1:], other[1:])  # same start, sampled steps differ


def test_play_starts_from_the_first_frame_of_the_first_episode(pixel_folder, episode_shards, tmp_path):
    shard, expected = episode_shards
    report = run_play(PlayConfig(pixel_folder, start=[str(shard)], headless=True, actions="1", record=tmp_path / "out.mp4"), log=lambda line: None)
    assert report["start"] == {"shard": str(shard), "key": "ep1_step0", "resized_from": [32, 32]}
    start = decoded(tmp_path / "out.mp4")[0].astype(float)
    resized = np.asarray(Image.fromarray(expected).resize((16, 16), Image.BILINEAR), dtype=float)
    assert np.abs(start - resized).mean() < 6  # through H.264 at crf 18


def test_a_model_without_actions_is_played_with_action_zero(last_frame_folder, prompt_image, tmp_path):
    status, video, report_file = play(last_frame_folder, tmp_path, "0,0", "--prompt", str(prompt_image))
    assert status == 0
    frames = decoded(video)
    assert frames.shape == (3, 16, 24, 3)
    assert np.abs(frames[2].astype(int) - frames[0]).max() <= 2  # the last frame again (H.264 may move a level)
    assert json.loads(report_file.read_text())["action_space"] == {"kind": "none", "nvec": [], "actions": 1}


def test_multi_discrete_actions_are_played_as_joint_indices(tmp_path, prompt_image, capsys):
    folder = pixel_model_folder(tmp_path / "multi", action_space={"kind": "multi_discrete", "nvec": [2, 3]})
    status, video, _ = play(folder, tmp_path, "5,0,3", "--prompt", str(prompt_image))
    assert status == 0 and len(decoded(video)) == 4
    assert play(folder, tmp_path, "6", "--prompt", str(prompt_image))[0] == 2
    assert "action 6 is out of range" in capsys.readouterr().err


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--actions", "0,3,1"], "--actions entry 2: action 3 is out of range; pixel_diffusion_world_model takes actions 0 to 2"),
        (["--actions", "0,x"], "--actions 0,x: entry 2, 'x', is not an action index"),
        (["--actions", "0", "--idle-action", "5"], "--idle-action: action 5 is out of range"),
        (["--actions", "0", "--env", "CartPole-v1"], "--env CartPole-v1 has 2 actions, but pixel_diffusion_world_model takes 3 actions"),
        (["--actions", "0", "--prompt", "missing.png"], "--prompt missing.png: no such image file"),
        ([], "--headless needs --actions SEQ"),
    ],
)
def test_bad_flags_are_one_line_on_stderr(pixel_folder, prompt_image, monkeypatch, tmp_path, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    prompt = [] if "--prompt" in flags else ["--prompt", str(prompt_image)]
    assert main(["play", str(pixel_folder), "--headless", *prompt, *flags]) == 2
    assert message in error_line(capsys)


def test_no_start_frame_and_an_unreadable_image_are_named(pixel_folder, tmp_path, capsys):
    assert main(["play", str(pixel_folder), "--headless", "--actions", "0"]) == 2
    assert "nothing to start from: give --prompt IMAGE" in error_line(capsys)
    (tmp_path / "notes.png").write_text("not an image")
    assert main(["play", str(pixel_folder), "--headless", "--actions", "0", "--prompt", str(tmp_path / "notes.png")]) == 2
    assert f"--prompt {tmp_path / 'notes.png'}: cannot be read as an image" in error_line(capsys)


def test_a_tokenizer_folder_is_named_as_not_a_world_model(tokenizer_folder, prompt_image, tmp_path, capsys):
    assert play(tokenizer_folder, tmp_path, "0", "--prompt", str(prompt_image))[0] == 2
    assert f"{tokenizer_folder}: its model causal_video_autoencoder is not a world model" in error_line(capsys)
    assert main(["play", str(tmp_path / "nowhere"), "--headless", "--actions", "0"]) == 2
    assert "not a model folder" in error_line(capsys)
    assert not (tmp_path / "out.mp4").exists()


def test_genie_is_played_with_its_latent_actions(genie_folder, prompt_image, tmp_path, capsys):
    status, video, report_file = play(genie_folder, tmp_path, "0,7,3", "--prompt", str(prompt_image))
    assert status == 0 and decoded(video).shape == (4, 32, 32, 3)
    report = json.loads(report_file.read_text())
    assert report["model"] == "maskgit_dynamics" and report["action_space"] == {"kind": "discrete", "nvec": [8], "actions": 8}
    capsys.readouterr()
    assert play(genie_folder, tmp_path, "8", "--prompt", str(prompt_image))[0] == 2
    assert "action 8 is out of range; maskgit_dynamics takes actions 0 to 7 (8 latent actions)" in error_line(capsys)


def test_steps_never_come_faster_than_the_fps_cap(last_frame_folder, prompt_image):
    report = run_play(PlayConfig(last_frame_folder, prompt=prompt_image, headless=True, actions="0,0,0,0", fps=25), log=lambda line: None)
    assert report["model_fps"] > 100 and report["fps"] <= 25 * 1.02  # the model alone is far faster than the cap
