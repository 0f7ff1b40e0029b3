"""A run folder written by reverie 0.1.0 (`tests/fixtures/v0.1/vjepa_run`: a tiny V-JEPA trained 3
steps, its config.yaml, metrics.csv and step-3 checkpoint, saved before the transformer blocks of
V-JEPA and V-JEPA 2-AC became one `reverie.nn.transformer.TransformerBlock` whose MLP keys are
`fc1`/`fc2`, not `mlp.0`/`mlp.2`) still exports and resumes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import torch

from reverie.nn.model_folder import load_model_folder
from reverie.training.export import export_run
from training_runs import ROOT, metric_rows

FIXTURE = ROOT / "tests" / "fixtures" / "v0.1" / "vjepa_run"
CHECKPOINT = FIXTURE / "checkpoints" / "step-00000003.ckpt"


def test_the_old_checkpoint_holds_the_old_key_names():
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    assert "model.encoder.blocks.0.mlp.0.weight" in state and not any(".fc1." in name for name in state)


def test_an_old_run_exports_with_its_weights(tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "run")
    model = load_model_folder(export_run(run, tmp_path / "model", ema=False))
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    blocks = model.state_dict()
    torch.testing.assert_close(blocks["target_encoder.blocks.1.fc2.weight"], state["model.target_encoder.blocks.1.mlp.2.weight"], rtol=0, atol=0)
    torch.testing.assert_close(blocks["predictor.blocks.0.fc1.bias"], state["model.predictor.blocks.0.mlp.0.bias"], rtol=0, atol=0)
    assert model.encode_frames(torch.rand(1, 2, 3, 32, 32)).shape == (1, 2, 16, 24)


def test_an_old_run_resumes_from_its_checkpoint(clip_shards, tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "run")
    overrides = [f"data.shards={clip_shards}", f"run.dir={run}", "trainer.max_steps=5"]
    done = subprocess.run(
        [sys.executable, "-m", "reverie.cli.main", "train", str(run / "config.yaml"), *overrides], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"resuming {run} from {run / 'checkpoints' / 'step-00000003.ckpt'}" in done.stdout
    rows = metric_rows(run)
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5]  # the old run's 3 steps, then 2 more
    assert all(0 < float(row["loss"]) < 2 for row in rows[3:])  # the strict load of the old keys went through
