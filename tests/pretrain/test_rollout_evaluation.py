"""`evaluate_rollout` and `reverie evaluate rollout` on recorded CartPole episodes with the
"copy the last frame" baseline, whose figures are computed here again from the shards alone; the
time convention of the reward and termination heads on a hand-made shard; bad input named by its
file; and the baseline's own interface and model folder."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from torch import nn

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.nn.world_model import ContextError, WorldModel, WorldStep, check_context
from reverie.pipelines.record import RecordConfig, run_record
from reverie.pretrain.last_frame_world_model import LastFrameWorldModel, LastFrameWorldModelConfig
from reverie.pretrain.rollout_evaluation import NotAWorldModelError, RolloutEvaluationError, evaluate_rollout
from reverie.tokenizers.evaluate import SkippedSampleWarning
from tiny_tokenizers import clip_sample, sliding_square, tiny_tokenizer, write_shard


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

CONTEXT, STEPS = 3, 5
REPORT_FIELDS = {
    "model_dir", "model", "shards", "context", "steps", "windows", "seed", "batch_size", "device", "max_context", "psnr", "ssim",
    "pixel_mean", "pixel_variance", "real_pixel_mean", "real_pixel_variance", "saturated_fraction", "real_saturated_fraction",
    "teacher_forced_psnr", "reward_accuracy", "termination_accuracy", "teacher_forced_reward_accuracy",
    "teacher_forced_termination_accuracy", "sampling_frames_per_second", "skipped",
}  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """2 CartPole episodes at 32 x 48 in clips of 16 npy frames, and the baseline (max_context 4) as a model folder."""
    root = tmp_path_factory.mktemp("rollout")
    run_record(RecordConfig("CartPole-v1", episodes=2, out=root / "cartpole", size=32, clip_frames=16, clip_format="npy", progress=False))
    save_model_folder(LastFrameWorldModel(LastFrameWorldModelConfig(height=32, width=48, max_context=4)), root / "last_frame")
    return root


def evaluate(model, shards, **options) -> dict:
    return evaluate_rollout(model, shards, **{"context": CONTEXT, "steps": STEPS, "device": "cpu", "progress": False, "batch_size": 3} | options)


def recorded_windows(shards: Path) -> np.ndarray:
    """(windows, K + N, H, W, 3) uint8: each sample's first frames, read with stock webdataset."""
    dataset = wds.WebDataset(sorted(str(path) for path in shards.glob("*.tar")), shardshuffle=False).decode()
    return np.stack([sample["npy"][: CONTEXT + STEPS] for sample in dataset])


def psnr_float64(generated: np.ndarray, real: np.ndarray) -> float:
    """PSNR in dB of two uint8 frames (H, W, 3) in float64, capped at 100 dB as the metrics are."""
    mse = np.mean((generated.astype(np.float64) / 255 - real.astype(np.float64) / 255) ** 2)
    return 100.0 if mse == 0 else min(100.0, 10 * math.log10(1 / mse))


@pytest.fixture(scope="module")
def baseline_report(recorded) -> dict:
    return evaluate(recorded / "last_frame", [recorded / "cartpole" / "shards"])


def test_the_report_has_every_field_and_one_figure_per_step(recorded, baseline_report):
    windows = recorded_windows(recorded / "cartpole" / "shards")
    assert set(baseline_report) == REPORT_FIELDS
    assert (baseline_report["model"], baseline_report["windows"], baseline_report["max_context"]) == ("last_frame_world_model", len(windows), 4)
    assert baseline_report["shards"] == [str(path) for path in sorted((recorded / "cartpole" / "shards").glob("*.tar"))]
    assert all(len(baseline_report[name]) == STEPS for name in ("psnr", "ssim", "pixel_mean", "teacher_forced_psnr", "real_saturated_fraction"))
    assert baseline_report["reward_accuracy"] is None and baseline_report["teacher_forced_termination_accuracy"] is None  # no heads
    assert baseline_report["sampling_frames_per_second"] > 0 and baseline_report["skipped"] == []


def test_open_loop_psnr_is_that_of_the_last_context_frame_against_each_later_frame(recorded, baseline_report):
    windows = recorded_windows(recorded / "cartpole" / "shards")
    expected = [np.mean([psnr_float64(window[CONTEXT - 1], window[CONTEXT + step]) for window in windows]) for step in range(STEPS)]
    assert baseline_report["psnr"] == pytest.approx(expected, abs=1e-3)
    assert baseline_report["psnr"][0] != pytest.approx(baseline_report["psnr"][-1], abs=1e-3)  # the pole moves: the baseline drifts away


def test_teacher_forced_psnr_is_that_of_consecutive_real_frames(recorded, baseline_report):
    windows = recorded_windows(recorded / "cartpole" / "shards")
    expected = [np.mean([psnr_float64(window[CONTEXT + step - 1], window[CONTEXT + step]) for window in windows]) for step in range(STEPS)]
    assert baseline_report["teacher_forced_psnr"] == pytest.approx(expected, abs=1e-3)


def test_drift_statistics_equal_those_computed_from_the_frames(recorded, baseline_report):
    windows = recorded_windows(recorded / "cartpole" / "shards")
    real = windows[:, CONTEXT:].astype(np.float64) / 255  # (windows, N, H, W, 3)
    saturated = (windows[:, CONTEXT:] <= 1) | (windows[:, CONTEXT:] >= 254)
    assert baseline_report["real_pixel_mean"] == pytest.approx(real.mean(axis=(2, 3, 4)).mean(axis=0), abs=1e-6)
    assert baseline_report["real_pixel_variance"] == pytest.approx(real.var(axis=(2, 3, 4)).mean(axis=0), abs=1e-6)
    assert baseline_report["real_saturated_fraction"] == pytest.approx(saturated.mean(axis=(2, 3, 4)).mean(axis=0), abs=1e-6)
    last_context = windows[:, CONTEXT - 1].astype(np.float64) / 255  # what the baseline generates at every step
    assert baseline_report["pixel_mean"] == pytest.approx([last_context.mean(axis=(1, 2, 3)).mean()] * STEPS, abs=1e-6)
    assert baseline_report["pixel_variance"] == pytest.approx([last_context.var(axis=(1, 2, 3)).mean()] * STEPS, abs=1e-6)


class ActionCodedWorldModel(nn.Module, WorldModel):
    """A test world model with heads that knows the hand-made shard's rule: action a in {0, 1, 2}
    earns reward a - 1 and ends the episode when a = 2. It takes int64 actions (B,) only."""

    max_context = 2

    def start(self, context_frames, context_actions, generator=None):
        check_context(context_frames, context_actions, self.max_context, (3, 32, 32))
        if context_actions is not None and context_actions.numel() and context_actions.dtype != torch.int64:
            raise ContextError(f"context actions of dtype {context_actions.dtype}: this model takes int64 codes")
        self.last_frame = context_frames[:, -1]

    def step(self, action):
        if action.dtype != torch.int64 or action.ndim != 1:
            raise ContextError(f"action of dtype {action.dtype} and shape {tuple(action.shape)}: this model takes int64 codes (B,)")
        return WorldStep(self.last_frame, reward=(action - 1).float(), terminated=action == 2)


def coded_sample(key: str, actions: np.ndarray, square: int = 0) -> dict:
    """A window of sliding-square frames whose rewards and terminations follow the actions by the rule above."""
    sample = clip_sample(key, sliding_square(square, len(actions), 32, 32))
    return sample | {"actions.npy": actions, "rewards.npy": (actions - 1).astype(np.float32), "terminated.npy": actions == 2}


def test_heads_are_compared_with_the_reward_and_termination_of_the_action_they_took(tmp_path):
    """Only the recorded reward t of action t agrees with a head given action t: any other index lowers the accuracy."""
    rng = np.random.default_rng(0)
    shard = write_shard(tmp_path / "coded.tar", [coded_sample(f"w{index}", rng.integers(0, 3, 9), index) for index in range(4)])
    report = evaluate(ActionCodedWorldModel(), [shard], context=2, steps=6)
    for name in ("reward_accuracy", "termination_accuracy", "teacher_forced_reward_accuracy", "teacher_forced_termination_accuracy"):
        assert report[name] == [1.0] * 6, name
    shifted = [coded_sample(f"s{index}", actions) | {"actions.npy": np.roll(actions, 1)} for index, actions in enumerate(rng.integers(0, 3, (4, 9)))]
    assert min(evaluate(ActionCodedWorldModel(), [write_shard(tmp_path / "shifted.tar", shifted)], context=2, steps=6)["reward_accuracy"]) < 1


def test_an_action_space_the_model_does_not_take_is_named_with_the_shard(tmp_path):
    continuous = coded_sample("box", np.zeros(8, np.int64)) | {"actions.npy": np.zeros((8, 2), np.float32)}
    shard = write_shard(tmp_path / "box.tar", [continuous])
    with pytest.raises(RolloutEvaluationError, match=rf"{shard}: sample box: the model cannot take this window: action of dtype torch.float32"):
        evaluate(ActionCodedWorldModel(), [shard], context=1, steps=2)


def test_frames_of_another_size_than_the_model_takes_are_named_with_the_shard(recorded, tmp_path):
    shard = write_shard(tmp_path / "square.tar", [coded_sample("square", np.zeros(8, np.int64))])
    with pytest.raises(RolloutEvaluationError, match=rf"{shard}: sample square: .*context frames of shape \(1, 3, 3, 32, 32\)"):
        evaluate(recorded / "last_frame", [shard])


def test_a_context_longer_than_the_model_allows_names_the_model_folder(recorded):
    with pytest.raises(RolloutEvaluationError, match=rf"{recorded / 'last_frame'}: model 'last_frame_world_model' takes a context of 1 to 4 frames, not 5"):
        evaluate(recorded / "last_frame", [recorded / "cartpole" / "shards"], context=5)


def test_a_model_folder_that_is_not_a_world_model_is_named(recorded, tmp_path):
    folder = tiny_tokenizer(tmp_path / "tokenizer")
    with pytest.raises(NotAWorldModelError, match=rf"{folder}: model 'causal_video_autoencoder' is not a generative world model"):
        evaluate(folder, [recorded / "cartpole" / "shards"])


@pytest.mark.parametrize(
    "samples, reason",
    [
        ([coded_sample("short", np.zeros(4, np.int64))], "sample short: has 4 frames, fewer than the 8 of context + steps"),
        ([{"__key__": "latent", "latents.npy": np.zeros((8, 4, 4, 4), np.float32)}], "sample latent: holds latents or tokens, not frames"),
        ([], "no episode windows"),
    ],
    ids=["short", "latents", "empty"],
)
def test_bad_windows_are_errors_naming_the_shard(recorded, tmp_path, samples, reason):
    shard = write_shard(tmp_path / "bad.tar", samples)
    with pytest.raises(RolloutEvaluationError) as error:
        evaluate(ActionCodedWorldModel(), [shard], context=2, steps=6)
    assert str(error.value).startswith(str(shard)) and reason in str(error.value)


def test_an_undecodable_sample_is_skipped_and_max_episodes_caps_the_windows(tmp_path):
    broken = coded_sample("broken", np.zeros(8, np.int64)) | {"npy": b"not an npy"}
    good = [coded_sample(f"good{index}", np.ones(8, np.int64)) for index in range(3)]
    with pytest.warns(SkippedSampleWarning, match="broken"):
        report = evaluate(ActionCodedWorldModel(), [write_shard(tmp_path / "mixed.tar", [broken, *good])], context=2, steps=6, max_episodes=2)
    assert report["windows"] == 2 and len(report["skipped"]) == 1 and "sample broken" in report["skipped"][0]


def test_the_command_writes_the_report(recorded, tmp_path):
    report_file = tmp_path / "reports" / "last_frame.json"
    command = [sys.executable, "-m", "reverie.cli.main", "evaluate", "rollout", str(recorded / "last_frame"), str(recorded / "cartpole" / "shards")]
    options = ["--context", str(CONTEXT), "--steps", str(STEPS), "--json", str(report_file), "--device", "cpu", "--max-episodes", "2"]
    result = subprocess.run(command + options, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads(report_file.read_text())
    assert set(report) == REPORT_FIELDS and (report["windows"], report["context"], report["steps"]) == (2, CONTEXT, STEPS)
    assert f"{report_file}: rollout report, 2 windows" in result.stdout


def test_the_command_names_a_context_too_long_and_writes_nothing(recorded, tmp_path):
    report_file = tmp_path / "none.json"
    command = [sys.executable, "-m", "reverie.cli.main", "evaluate", "rollout", str(recorded / "last_frame"), str(recorded / "cartpole" / "shards")]
    result = subprocess.run(command + ["--context", "6", "--steps", "2", "--json", str(report_file)], capture_output=True, text=True)
    assert result.returncode == 1 and f"{recorded / 'last_frame'}: model 'last_frame_world_model' takes a context of 1 to 4" in result.stderr
    assert not report_file.exists()


def test_the_baseline_steps_to_its_last_frame_whatever_the_action():
    model = LastFrameWorldModel(LastFrameWorldModelConfig(height=8, width=6, max_context=3))
    context = torch.rand(2, 3, 3, 8, 6)
    model.start(context, torch.zeros(2, 2, dtype=torch.int64))
    steps = [model.step(torch.tensor([index, 1 - index])) for index in range(2)]
    assert all(torch.equal(step.frame, context[:, -1]) for step in steps)
    assert steps[0].reward is None and steps[0].terminated is None
    with pytest.raises(ContextError, match="context of 4 frames: this model takes 1 to 3"):
        model.start(torch.rand(2, 4, 3, 8, 6), None)
    with pytest.raises(ContextError, match=r"action of shape \(3,\): expected \(2, ...\) for 2 worlds"):
        model.step(torch.zeros(3))
    with pytest.raises(RuntimeError, match="step before start"):
        LastFrameWorldModel(LastFrameWorldModelConfig()).step(None)


def test_the_baseline_saves_and_loads_as_a_model_folder_with_no_weights(tmp_path):
    model = LastFrameWorldModel(LastFrameWorldModelConfig(height=8, width=6, max_context=2))
    loaded = load_model_folder(save_model_folder(model, tmp_path / "baseline"))
    assert isinstance(loaded, LastFrameWorldModel) and loaded.config == model.config and loaded.max_context == 2
    assert loaded.state_dict() == {} and (tmp_path / "baseline" / "model.safetensors").is_file()
    frames = torch.rand(1, 2, 3, 8, 6)
    loaded.start(frames, None)
    assert torch.equal(loaded.step(None).frame, frames[:, -1])
