"""The training core on CPU: a frame autoencoder trained from shards through `reverie train`,
its run folder, checkpoints, kill -9 resume, the stop signal, and export to a model folder."""

from __future__ import annotations

import os
import signal
import subprocess

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from reverie.cli.main import main
from reverie.nn.model_folder import load_model_folder
from reverie.training.config import load_config
from reverie.training.export import export_run
from training_runs import TINY, metric_rows, start, train_command, wait_for_step

STEPS = 24
LOSS_COLUMNS = ("loss", "mse", "lr")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, clip_shards):
    """An uninterrupted run of STEPS steps, checkpointing every 8."""
    run_dir = tmp_path_factory.mktemp("runs") / "straight"
    command = train_command(run_dir, clip_shards, f"trainer.max_steps={STEPS}", "checkpoint.every_n_steps=8")
    subprocess.run(command, check=True, capture_output=True)
    return run_dir


def test_the_autoencoder_learns_and_the_run_folder_has_everything(finished_run):
    rows = metric_rows(finished_run)
    assert [int(row["step"]) for row in rows] == list(range(1, STEPS + 1))
    losses = [float(row["loss"]) for row in rows]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert {"step", "loss", "mse", "lr", "samples_per_s"} <= set(rows[0])
    lrs = [float(row["lr"]) for row in rows]
    assert lrs[0] < lrs[9] and lrs[-1] < lrs[9]  # warmup over 10 steps, then cosine decay
    resolved = OmegaConf.load(finished_run / "config.yaml")
    assert resolved.trainer.max_steps == STEPS and resolved.model.name == "frame_autoencoder"
    assert list((finished_run / "tb").glob("events.out.tfevents.*"))
    checkpoints = sorted(path.name for path in (finished_run / "checkpoints").glob("step-*.ckpt"))
    assert checkpoints == ["step-00000016.ckpt", "step-00000024.ckpt"]  # keep: 2; the last step is always saved
    assert (finished_run / "checkpoints" / "last.ckpt").resolve().name == "step-00000024.ckpt"
    assert not list(finished_run.rglob("*.tmp"))


def test_a_checkpoint_holds_model_ema_optimizer_schedule_loader_and_rng(finished_run):
    state = torch.load(finished_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == STEPS
    assert set(state["state_dict"]) == set(state["current_model_state"])  # EMA weights and raw weights
    assert any(not torch.equal(state["state_dict"][k], state["current_model_state"][k]) for k in state["state_dict"])
    assert state["optimizer_states"][0]["state"] and state["lr_schedulers"][0]["last_epoch"] == STEPS
    (loader,) = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert {"epoch", "positions", "yielded", "seed", "fingerprint"} <= set(loader)
    (rng,) = [value for key, value in state["callbacks"].items() if key.startswith("RNGState")]
    assert {"python", "numpy", "torch"} <= set(rng)


def test_a_killed_run_resumes_with_the_same_losses(finished_run, clip_shards, tmp_path):
    run_dir = tmp_path / "killed"
    command = train_command(run_dir, clip_shards, f"trainer.max_steps={STEPS}", "checkpoint.every_n_steps=8")
    process = start(command, tmp_path / "first.log")
    wait_for_step(run_dir, 13, process)  # past the step-8 checkpoint; a fast machine may pass step 16 too
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    newest = sorted((run_dir / "checkpoints").glob("step-*.ckpt"))[-1]  # what the kill left
    assert newest.name in ("step-00000008.ckpt", "step-00000016.ckpt")
    resumed = subprocess.run(command, capture_output=True, text=True, check=True)
    assert f"resuming {run_dir} from {newest}" in resumed.stdout
    straight, after_kill = metric_rows(finished_run), metric_rows(run_dir)
    assert [row["step"] for row in after_kill] == [row["step"] for row in straight]
    for name in LOSS_COLUMNS:
        np.testing.assert_allclose([float(r[name]) for r in after_kill], [float(r[name]) for r in straight], rtol=0, atol=1e-6)


def test_the_stop_signal_checkpoints_stops_and_the_rerun_goes_on(clip_shards, tmp_path):
    run_dir = tmp_path / "signalled"
    command = train_command(run_dir, clip_shards, "trainer.max_steps=400", "checkpoint.every_n_steps=1000")
    process = start(command, tmp_path / "first.log")
    at_signal = wait_for_step(run_dir, 5, process)
    process.send_signal(signal.SIGUSR1)
    assert process.wait(timeout=120) == 0
    (checkpoint,) = (run_dir / "checkpoints").glob("step-*.ckpt")
    stopped_at = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    assert at_signal <= stopped_at < 400 and int(metric_rows(run_dir)[-1]["step"]) == stopped_at
    subprocess.run([*command, f"trainer.max_steps={stopped_at + 3}"], check=True, capture_output=True)
    steps = [int(row["step"]) for row in metric_rows(run_dir)]
    assert steps == list(range(1, stopped_at + 4))


def test_export_writes_ema_weights_that_load_without_unpickling(finished_run, tmp_path):
    state = torch.load(finished_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert main(["export", str(finished_run), "--out", str(tmp_path / "model")]) == 0
    tensors = load_file(tmp_path / "model" / "model.safetensors")  # plain safetensors
    assert set(tensors) == {name.removeprefix("model.") for name in state["state_dict"]}
    for name, value in tensors.items():
        torch.testing.assert_close(value, state["state_dict"][f"model.{name}"], rtol=0, atol=0)
    model = load_model_folder(tmp_path / "model")
    frames = torch.rand(1, 2, 3, 32, 32)
    assert model(frames).shape == frames.shape
    raw = export_run(finished_run, tmp_path / "raw", ema=False)
    torch.testing.assert_close(load_file(raw / "model.safetensors")["encoder.0.conv.weight"], state["current_model_state"]["model.encoder.0.conv.weight"])


def test_configs_refuse_unknown_keys_and_apply_overrides():
    config = load_config(TINY, ["trainer.max_steps=7", "optim.lr=0.5", "data.window=2"])
    assert (config.trainer.max_steps, config.optim.lr, config.data.window) == (7, 0.5, 2)
    with pytest.raises(ValueError, match="trainer.max_step"):
        load_config(TINY, ["trainer.max_step=7"])


def test_bf16_gradient_accumulation_and_activation_checkpointing(clip_shards, tmp_path):
    run_dir = tmp_path / "settings"
    settings = ["trainer.precision=bf16-mixed", "trainer.accumulate_grad_batches=2", "trainer.activation_checkpointing=true"]
    subprocess.run(train_command(run_dir, clip_shards, "trainer.max_steps=6", *settings), check=True, capture_output=True)
    rows = metric_rows(run_dir)
    assert [int(row["step"]) for row in rows] == list(range(1, 7))  # a row per optimizer step, not per micro-batch
    for row in rows:  # the logged loss is the loss, not Lightning's accumulation-scaled one
        assert float(row["loss"]) == pytest.approx(float(row["mse"]))


@pytest.mark.slow
def test_torch_compile(clip_shards, tmp_path):
    run_dir = tmp_path / "compiled"
    subprocess.run(train_command(run_dir, clip_shards, "trainer.max_steps=4", "trainer.compile=true"), check=True, capture_output=True)
    assert [int(row["step"]) for row in metric_rows(run_dir)] == [1, 2, 3, 4]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any("_orig_mod" in name for name in state["state_dict"])  # plain keys: exports and loads anywhere
