"""Genie's dynamics model trained on a frozen latent action model's labels [18]: it reads no actions
from the batch, the LAM does not move while it trains, its folder carries the LAM, and a LAM that
does not fit is named; the chain LAM then dynamics through `reverie train` on video without actions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.pretrain.frozen_latent_actions import LatentActionChoiceError
from reverie.pretrain.latent_actions import LatentActionModel, LatentActionModelConfig
from reverie.pretrain.maskgit_dynamics import MaskGITDynamics, MaskGITDynamicsConfig, MaskGITDynamicsError, draw_mask
from tiny_tokenizers import FSQ, clip_shard, per_frame_tokenizer, sliding_square
from training_runs import metric_rows, train_config_briefly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "genie"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny per-frame tokenizer's folder, a tiny untrained LAM's folder), for 32 x 48 frames."""
    root = tmp_path_factory.mktemp("genie")
    lam_fields = OmegaConf.to_container(OmegaConf.load(CONFIGS / "lam_tiny.yaml").model)
    lam_fields.pop("name")
    torch.manual_seed(0)
    lam = save_model_folder(LatentActionModel(LatentActionModelConfig(**lam_fields)), root / "lam")
    return per_frame_tokenizer(root / "tokenizer", **FSQ), lam


def dynamics(folders: tuple[Path, Path], **fields) -> MaskGITDynamics:
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / "dynamics_tiny.yaml").model)
    config.pop("name")
    tokenizer, lam = folders
    torch.manual_seed(0)
    return MaskGITDynamics(MaskGITDynamicsConfig(**config | {"tokenizer": str(tokenizer), "latent_action_model": str(lam)} | fields))


def square_frames(batch: int = 4, frames: int = 4) -> torch.Tensor:
    clips = np.stack([sliding_square(index, frames, 32, 48) for index in range(batch)])
    return torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255


def test_it_trains_on_the_lams_labels_and_never_reads_the_batchs_actions(folders):
    model = dynamics(folders)
    frames = square_frames()
    lam_before = {name: value.clone() for name, value in model.latent_actions.state_dict().items()}
    labels = model.latent_actions.infer(frames)
    assert labels.shape == (4, 3) and labels.dtype == torch.int64
    torch.manual_seed(1)
    unlabelled = model.training_losses({"frames": frames})["loss"]
    torch.manual_seed(1)
    with_actions = model.training_losses({"frames": frames, "actions": torch.full((4, 4), 7)})["loss"]
    torch.manual_seed(1)
    codes = model.batch_codes({"frames": frames})
    _, masked = draw_mask(4, 4, codes.shape[2])
    by_hand = model.masked_loss(codes, labels, masked)
    torch.testing.assert_close(unlabelled, with_actions)
    torch.testing.assert_close(unlabelled, by_hand)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss = model.training_losses({"frames": frames})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * losses[0]
    assert not model.latent_actions.model.training
    for name, value in model.latent_actions.state_dict().items():
        torch.testing.assert_close(value, lam_before[name], rtol=0, atol=0, msg=f"the frozen LAM's {name} moved")
    torch.testing.assert_close(model.latent_actions.infer(frames), labels)


def test_its_folder_carries_the_lam_and_gives_the_same_labels_without_the_lams_folder(folders, tmp_path):
    tokenizer, lam = folders
    copies = tmp_path / "tokenizer", tmp_path / "lam"
    shutil.copytree(tokenizer, copies[0])
    shutil.copytree(lam, copies[1])
    model = dynamics(copies)
    frames = square_frames()
    labels = model.latent_actions.infer(frames)
    save_model_folder(model, tmp_path / "dynamics")
    for folder in copies:
        shutil.rmtree(folder)
    loaded = load_model_folder(tmp_path / "dynamics")
    assert loaded.config.latent_action_model["model"] == "latent_action_model"
    torch.testing.assert_close(loaded.latent_actions.infer(frames), labels, rtol=0, atol=0)


def test_a_lam_that_does_not_fit_is_named(folders):
    tokenizer, lam = folders
    with pytest.raises(MaskGITDynamicsError, match="num_actions 4: the latent action model has 8 codes"):
        dynamics(folders, num_actions=4)
    with pytest.raises(LatentActionChoiceError, match="not a latent_action_model"):
        dynamics((tokenizer, tokenizer))
    model = dynamics(folders)
    codes = model.tokenizer.encode(square_frames())
    with pytest.raises(LatentActionChoiceError, match="labels frames; train the dynamics model on frame shards"):
        model.training_losses({"tokens": codes})


def test_the_lam_then_the_dynamics_model_train_through_reverie_train_on_video_without_actions(folders, tmp_path):
    tokenizer, _ = folders
    video = clip_shard(tmp_path / "video" / "clips-000000.tar", clips=4, frames=5, size=(32, 48))  # no actions, as `reverie ingest` writes
    lam_run = train_config_briefly(CONFIGS / "lam_tiny.yaml", tmp_path / "lam", f"data.shards={video.parent}", steps=3)
    exported = subprocess.run([sys.executable, "-m", "reverie.cli.main", "export", str(lam_run), "--out", str(tmp_path / "lam_model"), "--no-ema"],
                              capture_output=True, text=True)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    overrides = [f"data.shards={video.parent}", f"model.tokenizer={tokenizer}", f"model.latent_action_model={tmp_path / 'lam_model'}"]
    run_dir = train_config_briefly(CONFIGS / "dynamics_tiny.yaml", tmp_path / "dynamics", *overrides, steps=3)
    rows = metric_rows(run_dir)
    assert [int(row["step"]) for row in rows] == [1, 2, 3] and all(np.isfinite(float(row["tokens"])) for row in rows)
