"""`reverie export RUN_DIR --out MODEL_DIR`: the newest checkpoint's EMA weights by default, the raw
ones with `--no-ema`, a chosen `--checkpoint`, and exit 1 naming what is missing. Checkpoints are
written here in the layout `reverie train` leaves; exporting a real run is in `tests/training/test_train.py`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from reverie.cli.main import main
from reverie.nn.model_folder import load_model_folder
from reverie.nn.policies import MLPPolicy, MLPPolicyConfig

CONFIG = MLPPolicyConfig(observation_dim=3, action_space={"type": "box", "shape": [2], "low": [-1.0, -1.0], "high": [1.0, 1.0]}, hidden=[4])


def policy_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {f"model.{name}": tensor for name, tensor in MLPPolicy(CONFIG).state_dict().items()}  # ModelTask's `self.model`


def write_checkpoint(run_dir: Path, step: int, ema_seed: int | None, raw_seed: int) -> None:
    """Lightning's `WeightAveraging` layout: `state_dict` holds the EMA weights, `current_model_state`
    the raw ones; without EMA, `state_dict` holds the raw weights alone."""
    state = {"model_config": {"model": "mlp_policy", "config": asdict(CONFIG)}}
    if ema_seed is None:
        state["state_dict"] = policy_state(raw_seed)
    else:
        state["state_dict"], state["current_model_state"] = policy_state(ema_seed), policy_state(raw_seed)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(state, run_dir / "checkpoints" / f"step-{step:08d}.ckpt")


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run with two checkpoints: step 5 (EMA seed 1, raw seed 2) and step 10 (EMA 3, raw 4)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task: model\n")
    write_checkpoint(run, 5, ema_seed=1, raw_seed=2)
    write_checkpoint(run, 10, ema_seed=3, raw_seed=4)
    return run


def exported_weights(folder: Path) -> dict[str, torch.Tensor]:
    return {f"model.{name}": tensor for name, tensor in load_model_folder(folder).state_dict().items()}


def assert_weights(folder: Path, seed: int) -> None:
    for name, tensor in policy_state(seed).items():
        torch.testing.assert_close(exported_weights(folder)[name], tensor, rtol=0, atol=0)


def test_the_newest_checkpoints_ema_weights_by_default(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "model")]) == 0
    assert capsys.readouterr().out == f"model folder: {tmp_path / 'model'}\n"
    assert_weights(tmp_path / "model", seed=3)
    assert load_model_folder(tmp_path / "model").act(np.zeros(3)).shape == (2,)


def test_no_ema_exports_the_raw_weights_and_checkpoint_picks_another(run_dir, tmp_path):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "raw"), "--no-ema"]) == 0
    assert_weights(tmp_path / "raw", seed=4)
    older = run_dir / "checkpoints" / "step-00000005.ckpt"
    assert main(["export", str(run_dir), "--out", str(tmp_path / "older"), "--checkpoint", str(older)]) == 0
    assert_weights(tmp_path / "older", seed=1)


def test_a_run_without_ema_weights_needs_no_ema(tmp_path, capsys):
    run = tmp_path / "plain"
    run.mkdir()
    (run / "config.yaml").write_text("task: model\n")
    write_checkpoint(run, 3, ema_seed=None, raw_seed=7)
    assert main(["export", str(run), "--out", str(tmp_path / "model")]) == 1
    assert "the run kept no EMA weights (ema: null); export with --no-ema" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()
    assert main(["export", str(run), "--out", str(tmp_path / "model"), "--no-ema"]) == 0
    assert_weights(tmp_path / "model", seed=7)


def test_a_folder_that_is_not_a_run_or_has_no_checkpoint_exits_1_naming_it(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "model")]) == 1
    assert capsys.readouterr().err == f"reverie export: {tmp_path / 'missing'}: not a run folder (no config.yaml)\n"
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.yaml").write_text("task: model\n")
    assert main(["export", str(tmp_path / "fresh"), "--out", str(tmp_path / "model")]) == 1
    assert f"{tmp_path / 'fresh'}: no checkpoint in {tmp_path / 'fresh' / 'checkpoints'}" in capsys.readouterr().err


def test_out_is_required(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["export", str(tmp_path)])
    assert exit.value.code == 2 and "--out" in capsys.readouterr().err


def test_a_newest_checkpoint_that_does_not_load_is_skipped_saying_so(run_dir, tmp_path, capsys):
    newest = run_dir / "checkpoints" / "step-00000010.ckpt"
    newest.write_bytes(newest.read_bytes()[:-100])  # cut short: a copy that did not finish
    assert main(["export", str(run_dir), "--out", str(tmp_path / "model")]) == 0
    skipped, exported = capsys.readouterr().out.splitlines()
    assert skipped.startswith(f"skipping {newest}: ") and exported == f"model folder: {tmp_path / 'model'}"
    assert_weights(tmp_path / "model", seed=1)  # step 5's EMA weights


def test_a_chosen_checkpoint_that_does_not_load_exits_1_naming_it(run_dir, tmp_path, capsys):
    broken = run_dir / "checkpoints" / "step-00000010.ckpt"
    broken.write_bytes(b"")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "model"), "--checkpoint", str(broken)]) == 1
    assert capsys.readouterr().err.startswith(f"reverie export: {broken}: ")
    assert not (tmp_path / "model").exists()
