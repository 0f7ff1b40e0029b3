"""V-JEPA through `reverie train configs/vjepa/tiny.yaml` on shards of ingested clips, then export."""

from __future__ import annotations

import subprocess
import sys

import torch

from reverie.nn.model_folder import load_model_folder
from reverie.training.export import export_run
from training_runs import ROOT, metric_rows

TINY_VJEPA = ROOT / "configs" / "vjepa" / "tiny.yaml"


def test_vjepa_trains_from_shards_and_exports_its_target_encoder(clip_shards, tmp_path):
    run_dir = tmp_path / "vjepa"
    overrides = [f"data.shards={clip_shards}", f"run.dir={run_dir}", "trainer.max_steps=6", "trainer.log_every_n_steps=1"]
    command = [sys.executable, "-m", "reverie.cli.main", "train", str(TINY_VJEPA), *overrides, "checkpoint.every_n_steps=3"]
    subprocess.run(command, check=True, capture_output=True)
    rows = metric_rows(run_dir)
    assert [int(row["step"]) for row in rows] == list(range(1, 7))
    assert {"loss", "l1_mask0", "l1_mask1"} <= set(rows[0])
    assert all(0 < float(row["loss"]) < 2 for row in rows)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    online, target = state["state_dict"], "model.target_encoder.embed.conv.weight"
    assert not torch.equal(online["model.encoder.embed.conv.weight"], online[target])  # the EMA lags the encoder
    model = load_model_folder(export_run(run_dir, tmp_path / "model", ema=False))
    torch.testing.assert_close(model.state_dict()["target_encoder.embed.conv.weight"], online[target])
    assert model.encode_frames(torch.rand(1, 2, 3, 32, 32)).shape == (1, 2, 16, 64)
