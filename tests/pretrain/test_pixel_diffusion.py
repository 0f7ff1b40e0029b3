"""The pixel diffusion world model of DIAMOND [16] with GameNGen's context noise [23]: a loss that
falls on recorded CartPole, the U-Net's shape and zero start, the conditioning wired, the
context-noise switch in training and sampling, the world-model interface (seeds, sliding window,
short contexts, bad input named), model folders, the Atari-scale config, and `reverie train`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from reverie.cli.main import main
from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.nn.world_model import ContextError, WorldModel, rollout
from reverie.pipelines.record import RecordConfig, run_record
from reverie.pretrain.action_tokens import ActionSpaceError
from reverie.pretrain.context_noise import ContextNoiseError
from reverie.pretrain.diamond_unet import DiamondUNet
from reverie.pretrain.pixel_diffusion import PixelDiffusionError, PixelDiffusionWorldModel
from reverie.shards.loader import ClipDataset, ClipLoader
from reverie.training.export import export_run
from training_runs import ROOT, metric_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = ROOT / "configs" / "world_models"
SMALL = dict(frame_size=[32, 48], action_space={"kind": "discrete", "n": 2}, channels=[8, 16], res_blocks=1, attention=[False, True], cond_channels=32)


@pytest.fixture(scope="module")
def episode_shards(tmp_path_factory) -> Path:
    """Two random CartPole episodes at 32 x 48 px, in clips of 8 frames with their actions."""
    out = tmp_path_factory.mktemp("cartpole")
    run_record(RecordConfig("CartPole-v1", episodes=2, out=out, size=32, clip_frames=8, clip_format="npy", progress=False))
    return out / "shards"


@pytest.fixture(scope="module")
def batch(episode_shards) -> dict:
    """Four windows of 6 frames (K + 2), as diamond_tiny.yaml trains on."""
    return next(iter(ClipLoader(ClipDataset(episode_shards, window=6, seed=0), batch_size=4)))


def from_yaml(name: str, **fields) -> PixelDiffusionWorldModel:
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / name).model) | fields
    model_class = MODELS.get(config.pop("name"))
    return model_class(model_class.config_class(**config))


def small(seed: int = 0, **fields) -> PixelDiffusionWorldModel:
    """A small model whose zero-initialised layers (DIAMOND's) are perturbed, so every input counts."""
    torch.manual_seed(seed)
    model = MODELS.get("pixel_diffusion_world_model")(PixelDiffusionWorldModel.config_class(**SMALL | fields))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def denoised(model: PixelDiffusionWorldModel, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """D(noisy; sigma = 1) of a fixed noisy frame, conditioned on context and actions (no context noise)."""
    noisy = torch.randn(context.shape[0], *model.frame_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.denoiser(noisy, torch.ones(context.shape[0]), context=context, actions=actions, context_noise_buckets=None)


def test_the_tiny_config_loss_falls_on_a_fixed_batch(batch):
    torch.manual_seed(0)
    model = from_yaml("diamond_tiny.yaml")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(0)  # the same sigmas and noise every step: the curve shows learning, not draws
        loss = model.training_losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.25 * losses[0], losses


def test_the_unet_maps_the_noisy_frame_to_its_shape_and_starts_at_zero():
    unet = DiamondUNet(context_frames=2, channels=[8, 16, 16], res_blocks=2, cond_channels=16, attention=[False, True, False])
    noisy, context, condition = torch.randn(2, 3, 16, 24), torch.randn(2, 2, 3, 16, 24), torch.randn(2, 16)
    output = unet(noisy, context, condition)
    assert output.shape == (2, 3, 16, 24)
    assert torch.count_nonzero(output) == 0  # conv_out starts at zero, as DIAMOND's
    with pytest.raises(ValueError, match="frames of 18x24 must divide by 4"):
        unet(torch.randn(1, 3, 18, 24), torch.randn(1, 2, 3, 18, 24), torch.randn(1, 16))


def test_the_actions_and_the_context_condition_the_denoiser():
    model = small()
    context = torch.rand(2, 4, 3, 32, 48) * 2 - 1
    actions = torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0]])
    reference = denoised(model, context, actions)
    last_flipped = actions.clone()
    last_flipped[:, -1] = 1 - last_flipped[:, -1]
    assert (denoised(model, context, last_flipped) - reference).abs().amax() > 1e-3
    assert (denoised(model, context.flip(1), actions) - reference).abs().amax() > 1e-3
    torch.testing.assert_close(denoised(model, context, actions), reference, rtol=0, atol=0)


def test_context_noise_draws_a_level_per_sample_in_training_and_the_fixed_one_in_sampling():
    model = small(context_noise=True, context_noise_max=0.7, context_noise_buckets=10, context_noise_inference=0.1)
    context = torch.zeros(256, 4, 3, 32, 48)
    noised, buckets = model.context_noise.training_noise(context, torch.Generator().manual_seed(0))
    levels = noised.flatten(1).std(dim=1)  # the std of each sample's noise is its level
    assert len(buckets.unique()) == 10
    assert (torch.floor(levels / 0.7 * 10).clamp(max=9).long() == buckets).float().mean() > 0.9
    noised, buckets = model.context_noise.inference_noise(context[:8], torch.Generator().manual_seed(0))
    assert torch.equal(buckets, torch.ones(8, dtype=torch.long))  # 0.1 of 0.7 in 10 buckets
    torch.testing.assert_close(noised.flatten(1).std(dim=1), torch.full((8,), 0.1), rtol=0, atol=5e-3)


def test_context_noise_trains_its_bucket_embedding_and_is_absent_when_off(batch):
    model = small(context_noise=True).train()
    torch.manual_seed(0)
    model.training_losses(batch)["loss"].backward()
    gradient = model.context_noise.embedding.weight.grad
    assert gradient is not None and gradient.abs().sum(dim=1).count_nonzero() >= 2  # windows drew several buckets
    plain = small()
    assert plain.context_noise is None and not any("context_noise" in name for name in plain.state_dict())


def test_sampling_applies_the_inference_context_noise_level():
    quiet = small(context_noise=True, context_noise_inference=0.0)
    noisy = small(context_noise=True, context_noise_inference=0.5)
    noisy.load_state_dict(quiet.state_dict())
    context, actions = torch.rand(2, 4, 3, 32, 48), torch.zeros(2, 3, dtype=torch.long)
    frames = []
    for model in (quiet, noisy, quiet):
        model.start(context, actions, torch.Generator().manual_seed(0))
        frames.append(model.step(torch.ones(2, dtype=torch.long)).frame)
    assert torch.equal(frames[0], frames[2]) and not torch.equal(frames[0], frames[1])


def test_a_step_is_a_frame_in_zero_one_and_the_seed_fixes_the_rollout(batch):
    model = small()
    assert isinstance(model, WorldModel) and model.max_context == 4
    context, context_actions, actions = batch["frames"][:, :4], batch["actions"][:, :3], batch["actions"][:, 3:5]
    first = rollout(model, context, context_actions, actions, 2, torch.Generator().manual_seed(0))
    again = rollout(model, context, context_actions, actions, 2, torch.Generator().manual_seed(0))
    other = rollout(model, context, context_actions, actions, 2, torch.Generator().manual_seed(1))
    for step in first:
        assert step.frame.shape == (4, 3, 32, 48) and 0 <= step.frame.min() and step.frame.max() <= 1
        assert step.reward is None and step.terminated is None
    assert all(torch.equal(a.frame, b.frame) for a, b in zip(first, again))
    assert not torch.equal(first[1].frame, other[1].frame)


def test_a_rollout_past_k_steps_slides_its_window():
    model = small()
    steps = rollout(model, torch.rand(2, 4, 3, 32, 48), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 7, dtype=torch.long), 7)
    assert len(steps) == 7
    state = model.rollout_state
    assert state.frames.shape == (2, 4, 3, 32, 48) and state.actions.shape == (2, 3)
    for offset in range(4):  # the window holds the last four generated frames, in order
        torch.testing.assert_close((state.frames[:, offset] + 1) / 2, steps[3 + offset].frame)
    assert torch.equal(state.actions, torch.ones(2, 3, dtype=torch.long))


def test_a_short_context_is_padded_with_its_first_frame_and_no_op_actions():
    model = small()
    context = torch.rand(2, 2, 3, 32, 48)
    padded = torch.cat([context[:, :1], context[:, :1], context], dim=1)
    short = rollout(model, context, torch.ones(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.long), 1, torch.Generator().manual_seed(0))
    padded_actions = torch.tensor([[0, 0, 1]] * 2)
    full = rollout(model, padded, padded_actions, torch.ones(2, 1, dtype=torch.long), 1, torch.Generator().manual_seed(0))
    assert torch.equal(short[0].frame, full[0].frame)
    one = rollout(model, context[:, :1], None, torch.ones(2, 1, dtype=torch.long), 1, torch.Generator().manual_seed(0))
    assert one[0].frame.shape == (2, 3, 32, 48)


def test_bad_context_and_actions_are_named():
    model = small()
    with pytest.raises(ContextError, match="step before start"):
        model.step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(ContextError, match="context of 5 frames: this model takes 1 to 4"):
        model.start(torch.rand(2, 5, 3, 32, 48), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ContextError, match=r"expected \(B, K, 3, 32, 48\)"):
        model.start(torch.rand(2, 4, 3, 32, 32), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ContextError, match="a context of 3 frames needs the 2 actions"):
        model.start(torch.rand(2, 3, 3, 32, 48), None)
    model.start(torch.rand(2, 3, 3, 32, 48), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ActionSpaceError, match="action: 2 is outside a discrete action space of 2 actions"):
        model.step(torch.tensor([0, 2]))
    with pytest.raises(ContextError, match=r"step\(None\)"):
        model.step(None)


def test_batches_it_cannot_train_on_are_named(batch):
    model = small()
    with pytest.raises(PixelDiffusionError, match=r"a window of 4 frames: .* context_frames \+ 1 = 5"):
        model.training_losses({"frames": batch["frames"][:, :4], "actions": batch["actions"][:, :4]})
    with pytest.raises(PixelDiffusionError, match="a batch without actions"):
        model.training_losses({"frames": batch["frames"], "has_actions": torch.zeros(4, dtype=torch.bool)})
    with pytest.raises(PixelDiffusionError, match="a batch of latents: this model trains on frames"):
        model.training_losses({"latents": torch.zeros(4, 6, 4, 4, 6)})
    with pytest.raises(ActionSpaceError, match=r"batch actions of shape \(4, 5\)"):
        model.training_losses({"frames": batch["frames"], "actions": batch["actions"][:, :5]})


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(frame_size=[30, 48], channels=[8, 16, 16], attention=[False] * 3), r"frame_size \[30, 48\]: must divide by 4, the downsampling of 3"),
        (dict(cond_channels=30), "cond_channels 30: must divide by context_frames 4"),
        (dict(attention=[False]), "attention .* one entry per level"),
        (dict(edm={"steps": 3}), "edm: steps: not fields of EDMConfig"),
    ],
)
def test_configs_that_cannot_build_are_named(fields, message):
    with pytest.raises(PixelDiffusionError, match=message):
        small(**fields)


def test_context_noise_settings_that_make_no_sense_are_named():
    with pytest.raises(ContextNoiseError, match=r"context_noise_inference 0.9: must lie in \[0, context_noise_max = 0.7\]"):
        small(context_noise=True, context_noise_inference=0.9)
    with pytest.raises(ContextNoiseError, match="context_noise_buckets 0: must be at least 1"):
        small(context_noise=True, context_noise_buckets=0)


def test_a_saved_model_folder_loads_with_identical_outputs(tmp_path):
    model = small(context_noise=True)
    loaded = load_model_folder(save_model_folder(model, tmp_path / "model"))
    assert isinstance(loaded, PixelDiffusionWorldModel) and loaded.config == model.config
    context, actions = torch.rand(2, 4, 3, 32, 48), torch.ones(2, 4, dtype=torch.long)
    torch.testing.assert_close(denoised(loaded, context, actions), denoised(model, context, actions), rtol=0, atol=0)
    steps = [rollout(world, context, actions[:, :3], actions[:, :2], 2, torch.Generator().manual_seed(3)) for world in (model, loaded)]
    assert all(torch.equal(a.frame, b.frame) for a, b in zip(*steps))


def test_the_atari_config_builds_at_diamonds_size_and_takes_a_training_step():
    torch.manual_seed(0)
    model = from_yaml("diamond_atari.yaml")
    assert 4.0e6 < sum(parameter.numel() for parameter in model.parameters()) < 5.0e6  # DIAMOND's Atari denoiser: about 4.4M
    batch = {"frames": torch.rand(1, 5, 3, 64, 64), "actions": torch.randint(0, 18, (1, 5))}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss = model.training_losses(batch)["loss"]
    loss.backward()
    optimizer.step()
    assert loss.isfinite()
    model.start(batch["frames"][:, :4], batch["actions"][:, :3], torch.Generator().manual_seed(0))
    assert model.step(batch["actions"][:, 3]).frame.shape == (1, 3, 64, 64)


def test_reverie_train_trains_the_tiny_config_exports_a_world_model_and_the_cli_rolls_it_out(episode_shards, tmp_path):
    run_dir = tmp_path / "diamond"
    overrides = [f"data.shards={episode_shards}", f"run.dir={run_dir}", "trainer.max_steps=4", "trainer.log_every_n_steps=1", "checkpoint.every_n_steps=2"]
    command = [sys.executable, "-m", "reverie.cli.main", "train", str(CONFIGS / "diamond_tiny.yaml"), *overrides]
    subprocess.run(command, check=True, capture_output=True)
    assert [int(row["step"]) for row in metric_rows(run_dir)] == [1, 2, 3, 4]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    model = load_model_folder(export_run(run_dir, tmp_path / "model", ema=False))
    assert isinstance(model, PixelDiffusionWorldModel)
    model.start(torch.rand(1, 4, 3, 32, 48), torch.zeros(1, 3, dtype=torch.long))
    assert model.step(torch.ones(1, dtype=torch.long)).frame.shape == (1, 3, 32, 48)
    report_file = tmp_path / "rollout.json"
    arguments = ["evaluate", "rollout", str(tmp_path / "model"), str(episode_shards), "--context", "4", "--steps", "3", "--max-episodes", "2"]
    assert main([*arguments, "--device", "cpu", "--json", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    assert (report["model"], report["windows"], len(report["psnr"])) == ("pixel_diffusion_world_model", 2, 3)
    assert all(math.isfinite(value) for value in report["psnr"] + report["teacher_forced_psnr"])


def test_the_ddpm_baseline_trains_the_same_network_and_samples_at_its_step_count(batch):
    torch.manual_seed(0)
    model = from_yaml("diamond_tiny.yaml", diffusion="ddpm")
    assert type(model.denoiser.network).__name__ == "NextFrameNetwork" and model.denoising_steps == 3
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(0)
        loss = model.training_losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses
    model.eval().denoising_steps = 1
    assert model.config.ddpm_denoising_steps == 1
    context, context_actions, actions = batch["frames"][:, :4], batch["actions"][:, :3], batch["actions"][:, 3:5]
    (step,) = rollout(model, context, context_actions, actions[:, :1], 1, torch.Generator().manual_seed(0))
    assert step.frame.shape == (4, 3, 32, 48) and 0 <= step.frame.min() and step.frame.max() <= 1
    with pytest.raises(PixelDiffusionError, match="denoising_steps 0: must be at least 1"):
        model.denoising_steps = 0


def test_a_diffusion_it_does_not_know_is_named():
    with pytest.raises(PixelDiffusionError, match="diffusion 'flow': must be one of edm, ddpm"):
        small(diffusion="flow")
    with pytest.raises(PixelDiffusionError, match="ddpm: levels: not fields of DDPMConfig"):
        small(diffusion="ddpm", ddpm={"levels": 10})
