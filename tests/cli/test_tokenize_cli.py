"""`reverie tokenize MODEL_DIR SHARDS... --out DIR`: flags become the settings with their defaults,
a real recording (`reverie record`, mp4 clips of 6 frames) tokenized with its summary line and read
back, and the refusals that exit 2 naming the file. Resume, kill -9 and the format are in
`tests/tokenizers/test_latent_shards.py`."""

from __future__ import annotations

import os

import pytest
import torch
from omegaconf import OmegaConf

from reverie.cli.main import main
from reverie.nn.model_folder import MODELS, save_model_folder
from reverie.shards.loader import ClipDataset
from reverie.tokenizers import latent_shards
from reverie.tokenizers.latents import model_identity

TINY_YAML = "configs/tokenizers/causal_video_ae_tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory, pytestconfig):
    config = OmegaConf.to_container(OmegaConf.load(pytestconfig.rootpath / TINY_YAML).model)
    model_class = MODELS.get(config.pop("name"))
    torch.manual_seed(0)
    return save_model_folder(model_class(model_class.config_class(**config)), tmp_path_factory.mktemp("models") / "ae")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("recording")
    arguments = ["record", "CartPole-v1", "--episodes", "2", "--out", str(out), "--size", "32", "--clip-frames", "6"]
    assert main([*arguments, "--max-steps", "14", "--shard-size", "2"]) == 0
    return out


@pytest.fixture
def calls(monkeypatch) -> list:
    seen = []

    def fake_run(config):
        seen.append(config)
        return [{"path": "a.tar", "status": "ok", "reason": "", "clips": 3, "dropped": {"undecodable": 1}, "errors": ["k: bad"]}]

    monkeypatch.setattr(latent_shards, "run_tokenize", fake_run)
    return seen


def test_defaults_and_the_summary_line(calls, tmp_path, capsys):
    assert main(["tokenize", "model", "shards/a.tar", "shards/b", "--out", str(tmp_path)]) == 0
    (config,) = calls
    assert (str(config.model_folder), config.inputs, config.out) == ("model", ["shards/a.tar", "shards/b"], tmp_path)
    assert (config.workers, config.batch_size, config.shard_max_count, config.shard_max_bytes) == (min(4, os.cpu_count()), 8, 1000, 10**9)
    assert config.device == ("cuda" if torch.cuda.is_available() else "cpu") and config.progress is False
    printed = capsys.readouterr().err
    assert printed.startswith(f"1 shards: 1 ok, 0 failed; 3 clips, 1 dropped, in {tmp_path / 'shards'}\n") and "dropped a.tar: k: bad" in printed


def test_flags_reach_the_settings(calls, tmp_path):
    flags = ["--workers", "0", "--batch-size", "3", "--device", "cpu", "--shard-size", "5", "--shard-bytes", "2MB"]
    assert main(["tokenize", "model", "x.tar", "--out", str(tmp_path), *flags]) == 0
    (config,) = calls
    assert (config.workers, config.batch_size, config.device, config.shard_max_count, config.shard_max_bytes) == (0, 3, "cpu", 5, 2 * 10**6)


def test_a_recording_is_tokenized_and_read_back_with_its_actions(tokenizer, recording, tmp_path, capsys):
    out = tmp_path / "latents"
    arguments = ["tokenize", str(tokenizer), str(recording), "--out", str(out), "--workers", "1", "--batch-size", "2", "--device", "cpu"]
    assert main(arguments) == 0
    clips = {sample["key"]: sample for sample in ClipDataset(recording, shuffle_buffer=1)}
    assert capsys.readouterr().err.startswith(f"{len(list((recording / 'shards').glob('*.tar')))} shards: ")
    latent = {sample["key"]: sample for sample in ClipDataset(out, shuffle_buffer=1, payload="latents", tokenizer=model_identity(tokenizer))}
    assert sorted(latent) == sorted(clips) and clips
    for key, sample in latent.items():
        assert sample["latents"].shape == (3, 4, 4, 6)  # 6 frames padded to 9 = 1 + 2 s_T; 32 x 48 / 8
        assert torch.equal(sample["actions"], clips[key]["actions"]) and sample["meta"]["tokenizer"]["fitted_frames"] == 9
    assert main(arguments) == 0  # a rerun finds everything done
    assert "0 dropped" in capsys.readouterr().err


def test_refusals_exit_2_naming_the_file(tokenizer, recording, tmp_path, capsys, hold_lock):
    out = tmp_path / "latents"
    assert main(["tokenize", str(tokenizer), str(recording), "--out", str(out), "--workers", "0"]) == 0
    capsys.readouterr()
    frame_class = MODELS.get("frame_autoencoder")
    frame_ae = save_model_folder(frame_class(frame_class.config_class(channels=[8])), tmp_path / "frame_ae")
    other = save_model_folder(MODELS.get("causal_video_autoencoder")(MODELS.get("causal_video_autoencoder").config_class(
        temporal_compression=4, spatial_compression=8, patch_size=4, channels=8, channel_multipliers=[1, 2], num_res_blocks=1, latent_channels=4
    )), tmp_path / "other")  # fmt: skip
    latent_shard = sorted((out / "shards").glob("*.tar"))[0]
    fresh = tmp_path / "fresh"
    cases = [
        ([str(frame_ae), str(recording)], fresh, f"{frame_ae}: model 'frame_autoencoder' is not a video tokenizer"),
        ([str(tokenizer), str(latent_shard)], fresh, f"{latent_shard}: a latent shard"),
        ([str(tokenizer), str(latent_shard)], out, f"{latent_shard}: is inside --out {out}"),
        ([str(other), str(recording)], out, f"{out} holds latents of causal_video_autoencoder"),
        ([str(tokenizer), str(tmp_path / "missing.tar")], fresh, f"{tmp_path / 'missing.tar'}: no such shard file"),
        ([str(tmp_path / "nowhere"), str(recording)], fresh, f"{tmp_path / 'nowhere'}: not a model folder"),
        ([str(tokenizer), str(recording), "--batch-size", "0"], fresh, "--batch-size 0: must be at least 1"),
    ]
    for arguments, folder, message in cases:
        assert main(["tokenize", *arguments, "--out", str(folder)]) == 2, message
        assert message in capsys.readouterr().err
    holder = hold_lock(tmp_path / "locked")
    assert main(["tokenize", str(tokenizer), str(recording), "--out", str(tmp_path / "locked")]) == 2
    assert f"being written by process {holder.pid}" in capsys.readouterr().err
    assert not fresh.exists()
