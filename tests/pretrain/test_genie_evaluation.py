"""`evaluate_genie` and `reverie evaluate genie` on recorded CartPole episodes with a tiny Genie
(per-frame tokenizer, latent action model, dynamics model on its labels): windows cut from the
samples, Delta_t PSNR and the copy-frame-0 baseline against figures recomputed from the shards,
the joint counts against the recorded actions, seeds, the GIF grid, and bad input named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from omegaconf import OmegaConf
from PIL import Image

from reverie.nn.model_folder import save_model_folder
from reverie.pipelines.record import RecordConfig, run_record
from reverie.pretrain.genie_evaluation import GenieEvaluationError, evaluate_genie, latent_action_panels
from reverie.pretrain.latent_actions import LatentActionModel, LatentActionModelConfig
from reverie.pretrain.maskgit_dynamics import MaskGITDynamics, MaskGITDynamicsConfig
from tiny_tokenizers import FSQ, clip_shard, per_frame_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "genie"
HORIZON, CLIP_FRAMES = 4, 16  # 3 windows of 5 frames a clip


def yaml_fields(name: str) -> dict:
    fields = OmegaConf.to_container(OmegaConf.load(CONFIGS / name).model)
    fields.pop("name")
    return fields


@pytest.fixture(scope="module")
def genie(tmp_path_factory) -> Path:
    """Recorded CartPole episodes at 32 x 48, and tiny Genie model folders beside them."""
    root = tmp_path_factory.mktemp("genie")
    run_record(RecordConfig("CartPole-v1", episodes=2, out=root / "cartpole", size=32, clip_frames=CLIP_FRAMES, clip_format="npy", progress=False))
    tokenizer = per_frame_tokenizer(root / "tokenizer", **FSQ)
    torch.manual_seed(0)
    lam = save_model_folder(LatentActionModel(LatentActionModelConfig(**yaml_fields("lam_tiny.yaml"))), root / "lam")
    dynamics = yaml_fields("dynamics_tiny.yaml") | {"tokenizer": str(tokenizer), "max_frames": 6}
    torch.manual_seed(0)
    save_model_folder(MaskGITDynamics(MaskGITDynamicsConfig(**dynamics | {"latent_action_model": str(lam)})), root / "genie")
    save_model_folder(MaskGITDynamics(MaskGITDynamicsConfig(**dynamics | {"latent_action_model": None})), root / "no_lam")
    return root


def evaluate(genie: Path, model: str = "genie", **options) -> dict:
    return evaluate_genie(genie / model, [genie / "cartpole" / "shards"], **{"device": "cpu", "progress": False, "batch_size": 4} | options)


def recorded_windows(shards: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, 5, H, W, 3) uint8, actions (N, 5)) of each sample's consecutive 5-frame windows, read with stock webdataset."""
    dataset = wds.WebDataset(sorted(str(path) for path in shards.glob("*.tar")), shardshuffle=False).decode()
    frames, actions = [], []
    for sample in dataset:
        for first in range(0, len(sample["npy"]) - HORIZON, HORIZON + 1):
            frames.append(sample["npy"][first : first + HORIZON + 1])
            actions.append(sample["actions.npy"][first : first + HORIZON + 1])
    return np.stack(frames), np.stack(actions)


def test_the_report_holds_genies_figures_computed_on_every_window(genie):
    report = evaluate(genie)
    frames, actions = recorded_windows(genie / "cartpole" / "shards")
    assert report["windows"] == len(frames) and report["transitions"] == len(frames) * HORIZON
    delta = report["delta_psnr"]
    assert delta["ci95"][0] < delta["mean"] < delta["ci95"][1] and delta["windows"] == len(frames)
    assert delta["mean"] == pytest.approx(report["psnr_inferred_actions"][-1] - report["psnr_random_actions"][-1], abs=1e-3)
    assert len(report["psnr_inferred_actions"]) == HORIZON
    real = frames.astype(np.float64) / 255
    mse = ((real[:, 0] - real[:, -1]) ** 2).mean(axis=(1, 2, 3))
    by_hand = np.mean(np.minimum(10 * np.log10(1 / np.maximum(mse, 1e-12)), 100.0))
    assert report["psnr_first_frame_at_t"] == pytest.approx(by_hand, abs=0.05)
    counts = np.array(report["codes_by_true_action"])
    recorded = np.bincount(actions[:, :HORIZON].reshape(-1), minlength=counts.shape[1])
    assert counts.sum() == report["transitions"] and counts.sum(axis=0).tolist() == recorded.tolist()
    assert 0 <= report["nmi"] <= 1 and 0 <= report["nmi_shuffled"] <= 1
    assert report["linear_probe"]["train_transitions"] + report["linear_probe"]["test_transitions"] == report["transitions"]
    assert sum(report["latent_action_use"]["counts"]) == report["transitions"]
    assert report["generated_frames_per_second"] > 0 and report["frames_per_second_batch_1"] > 0


def test_the_same_seed_gives_the_same_figures_and_another_seed_other_random_actions(genie):
    first, again, other = evaluate(genie, max_windows=4), evaluate(genie, max_windows=4), evaluate(genie, max_windows=4, seed=1)
    assert first["windows"] == 4
    for name in ("delta_psnr", "psnr_inferred_actions", "psnr_random_actions", "nmi", "codes_by_true_action"):
        assert first[name] == again[name], name
    assert first["psnr_random_actions"] != other["psnr_random_actions"]


def test_the_grid_holds_each_latent_action_from_one_start_frame(genie):
    from reverie.nn.model_folder import load_model_folder

    model = load_model_folder(genie / "genie")
    panels = latent_action_panels(model, [str(genie / "cartpole" / "shards")], steps=3)
    assert len(panels) == model.config.num_actions and panels[0].shape == (4, 32, 48, 3) and panels[0].dtype == np.uint8
    assert all(np.array_equal(panel[0], panels[0][0]) for panel in panels)  # the same start frame


def test_bad_models_and_shards_are_named(genie, tmp_path):
    with pytest.raises(GenieEvaluationError, match="trained without a latent action model"):
        evaluate(genie, "no_lam")
    with pytest.raises(GenieEvaluationError, match="'causal_video_autoencoder' is not Genie's dynamics model"):
        evaluate(genie, "tokenizer")
    with pytest.raises(GenieEvaluationError, match="horizon 6: .* holds windows of 6 frames"):
        evaluate(genie, horizon=6)
    unlabelled = clip_shard(tmp_path / "video.tar", clips=1, frames=5, size=(32, 48))
    with pytest.raises(GenieEvaluationError, match="video.tar: sample clip0000: no recorded actions"):
        evaluate_genie(genie / "genie", [unlabelled], device="cpu", progress=False)


def test_the_command_writes_the_report_and_the_gif(genie, tmp_path):
    report_file, gif = tmp_path / "genie.json", tmp_path / "grid.gif"
    command = [sys.executable, "-m", "reverie.cli.main", "evaluate", "genie", str(genie / "genie"), str(genie / "cartpole" / "shards"),
               "--json", str(report_file), "--max-windows", "4", "--gif", str(gif), "--gif-steps", "2", "--device", "cpu"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads(report_file.read_text())
    assert report["windows"] == 4 and report["gif"] == str(gif) and f"{report_file}: genie report, 4 windows" in result.stdout
    with Image.open(gif) as image:
        assert image.n_frames == 3
    failed = subprocess.run(command[:5] + [str(genie / "no_lam"), *command[6:]], capture_output=True, text=True)
    assert failed.returncode == 1 and "trained without a latent action model" in failed.stderr
