"""The latent diffusion world model with diffusion forcing of Oasis [24] and Genie 2 [19]: the tiny
config's loss falls, per-frame levels and per-window action dropout, guidance 0 as the unconditional
model, model folders, the sliding window past max_frames, both schedules, keyboard-and-mouse
actions, bad input named, `reverie train` on recorded episodes, and the real-scale config."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.nn.world_model import ContextError, rollout
from reverie.pretrain.action_tokens import ActionSpaceError
from reverie.pretrain.frozen_tokenizer import TokenizerChoiceError
from reverie.pretrain.latent_diffusion import LatentDiffusionConfig, LatentDiffusionError, LatentDiffusionWorldModel
from reverie.shards.clip_tensors import PayloadMismatchError
from tiny_latent_dit import open_gates
from tiny_tokenizers import FSQ, per_frame_tokenizer, sliding_square
from training_runs import train_config_briefly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "world_models" / "dit_forcing_tiny.yaml"
FRAME = (3, 32, 48)
LATENTS = (4, 4, 6)  # (C, h, w) of a 32 x 48 frame under the tiny per-frame tokenizer


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory) -> Path:
    return per_frame_tokenizer(tmp_path_factory.mktemp("ae") / "model")


def tiny(tokenizer_folder: Path, **fields) -> LatentDiffusionWorldModel:
    """The model of dit_forcing_tiny.yaml on the tiny tokenizer, with `fields` over its YAML's."""
    config = OmegaConf.to_container(OmegaConf.load(TINY).model)
    config.pop("name")
    torch.manual_seed(0)
    return LatentDiffusionWorldModel(LatentDiffusionConfig(**config | {"tokenizer": str(tokenizer_folder)} | fields))


def open_model(tokenizer_folder: Path, **fields) -> LatentDiffusionWorldModel:
    """The tiny model in float64, its zero-initialised layers random: an untrained model whose samples depend on everything."""
    model = tiny(tokenizer_folder, **fields).double().eval()
    open_gates(model.network)
    return model


def square_frames(batch: int = 4, frames: int = 4, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T, 3, 32, 48) in [0, 1]: sliding-square clips of the tiny config's frame size."""
    clips = np.stack([sliding_square(index, frames, 32, 48) for index in range(batch)])
    return (torch.from_numpy(clips).permute(0, 1, 4, 2, 3) / 255).to(dtype)


def codes(*shape: int, high: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def train(model: LatentDiffusionWorldModel, batch: dict, steps: int, lr: float = 3e-3) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model.training_losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_the_tiny_config_learns_a_fixed_batch_of_clips(tokenizer_folder):
    model = tiny(tokenizer_folder)
    losses = train(model, {"frames": square_frames(), "actions": codes(4, 4)}, 80)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_every_frame_draws_its_own_level_and_every_window_drops_its_actions_at_once(tokenizer_folder):
    model = tiny(tokenizer_folder, action_dropout=0.5)
    seen = []
    model.network.register_forward_pre_hook(lambda module, inputs: seen.append(inputs))
    latents, actions = torch.randn(256, 4, *LATENTS), codes(256, 4)
    model.training_losses({"latents": latents, "actions": actions})
    noisy, levels, previous_actions, kept = seen[-1]
    assert noisy.shape == latents.shape and levels.shape == kept.shape == previous_actions.shape == (256, 4)
    assert levels.dtype == torch.int64 and 0 <= levels.min() < 20 and 980 < levels.max() < 1000
    assert (levels[:, 1:] != levels[:, :1]).any(dim=1).all()  # no window at one level
    assert (levels[:, 0] != levels[:, 1]).float().mean() > 0.95
    assert torch.equal(previous_actions[:, 1:], actions[:, :-1]) and not kept[:, 0].any()  # a_{t-1}; frame 0 null
    assert torch.equal(kept[:, 1:], kept[:, 1:2].expand(256, 3)) and 0.35 < kept[:, 1].float().mean() < 0.65
    model.training_losses({"latents": latents, "has_actions": torch.zeros(256, dtype=torch.bool)})  # video without actions
    assert not seen[-1][3].any()


def test_guidance_0_samples_the_unconditional_model(tokenizer_folder):
    model = open_model(tokenizer_folder)
    context, taken = square_frames(2, 2, torch.float64), codes(2, 4)

    def frames_after(context_actions, actions, **settings) -> torch.Tensor:
        model.start(context, context_actions, torch.Generator().manual_seed(0))
        return model.generate(actions, frames=3, **settings)

    unconditional = frames_after(None, None)
    torch.testing.assert_close(frames_after(taken[:, :1], taken[:, 1:], guidance_scale=0.0), unconditional, rtol=0, atol=1e-9)
    conditional = frames_after(taken[:, :1], taken[:, 1:])
    assert (conditional - unconditional).abs().max() > 1e-4
    assert (frames_after(taken[:, :1], taken[:, 1:], guidance_scale=4.0) - conditional).abs().max() > 1e-4


def test_a_saved_and_loaded_model_samples_the_same_rollout_without_its_tokenizer_folder(tmp_path):
    tokenizer_copy = per_frame_tokenizer(tmp_path / "tokenizer")
    model = tiny(tokenizer_copy)
    train(model, {"frames": square_frames(), "actions": codes(4, 4)}, 3)
    folder = save_model_folder(model, tmp_path / "world")
    shutil.rmtree(tokenizer_copy)
    loaded = load_model_folder(folder)
    assert isinstance(loaded.config.tokenizer, dict) and loaded.config.tokenizer == model.config.tokenizer
    context, taken = square_frames(2, 2), codes(2, 4, seed=1)

    def frames_of(world_model, seed: int) -> torch.Tensor:
        steps = rollout(world_model, context, taken[:, :1], taken[:, 1:], 3, torch.Generator().manual_seed(seed))
        return torch.stack([step.frame for step in steps], dim=1)

    first = frames_of(model.eval(), 5)
    assert first.shape == (2, 3, *FRAME)
    assert torch.equal(frames_of(loaded, 5), first) and not torch.equal(frames_of(loaded, 6), first)


def test_a_rollout_past_max_frames_slides_its_window_and_stays_finite(tokenizer_folder):
    model = open_model(tokenizer_folder)
    taken = codes(2, 12, seed=2)
    model.start(square_frames(2, 4, torch.float64), taken[:, :3], torch.Generator().manual_seed(0))  # max_context frames
    for index in range(3, 12):  # 9 steps, past the 4 frames of training
        world = model.step(taken[:, index])
        state = model.rollout_state
        assert world.frame.shape == (2, *FRAME) and world.frame.isfinite().all() and world.reward is None and world.terminated is None
        assert state.latents.shape[1] == 4 and torch.equal(state.actions, taken[:, index - 2 : index + 1]) and state.kept.all()
    assert state.latents.abs().max() < 1e3


@pytest.mark.parametrize("schedule", ["autoregressive", "pyramid"])
def test_each_schedule_generates_the_frames_asked_for(tokenizer_folder, schedule):
    model = open_model(tokenizer_folder, schedule=schedule)
    model.start(square_frames(2, 1, torch.float64), None, torch.Generator().manual_seed(0))
    frames = model.generate(codes(2, 5), frames_per_chunk=2)
    assert frames.shape == (2, 5, *FRAME) and frames.isfinite().all()
    assert model.rollout_state.latents.shape == (2, 4, *LATENTS)  # the window: 1 context frame + 5 new, slid to 4


def test_keyboard_and_mouse_bins_and_continuous_actions_train_and_step(tokenizer_folder):
    keys_and_mouse = {"kind": "multi_discrete", "nvec": [2, 2, 2, 5, 5]}  # three keys, two mouse axes of 5 bins
    model = tiny(tokenizer_folder, action_space=keys_and_mouse)
    actions = torch.stack([codes(2, 3, seed=axis, high=high) for axis, high in enumerate([2, 2, 2, 5, 5])], dim=-1)
    assert model.training_losses({"frames": square_frames(2, 3), "actions": actions})["loss"].isfinite()
    model.eval().start(square_frames(2, 2), actions[:, :1], torch.Generator().manual_seed(0))
    assert model.step(actions[:, 1]).frame.shape == (2, *FRAME)
    with pytest.raises(ActionSpaceError, match=r"action: 5 is outside a multi-discrete action space of nvec \[2, 2, 2, 5, 5\]"):
        model.step(torch.tensor([[0, 1, 0, 5, 2], [0, 0, 0, 0, 0]]))
    joystick = tiny(tokenizer_folder, action_space={"kind": "continuous", "dim": 2})
    assert joystick.training_losses({"frames": square_frames(2, 3), "actions": torch.randn(2, 3, 2)})["loss"].isfinite()


def test_latents_of_another_tokenizer_and_another_action_space_are_refused_by_shard(tokenizer_folder):
    model = tiny(tokenizer_folder)
    batch = {"latents": torch.zeros(1, 4, *LATENTS), "actions": torch.zeros(1, 4, dtype=torch.int64), "shard": ["episodes-000002.tar"]}
    other = {"tokenizer": {"name": "causal_video_autoencoder", "model_id": "sha256:other", "payload": "latents"}}
    with pytest.raises(PayloadMismatchError, match="episodes-000002.tar: holds latents of 'causal_video_autoencoder' sha256:other"):
        model.training_losses(batch | {"meta": [other]})
    own = {"tokenizer": {"model_id": model.tokenizer.record["model_id"], "payload": "latents"}}
    assert model.training_losses(batch | {"meta": [own | {"action_space": {"type": "discrete", "n": 2, "start": 0}}]})["loss"].isfinite()
    recorded = own | {"action_space": {"type": "multi_discrete", "nvec": [3, 3]}}
    with pytest.raises(ActionSpaceError, match=r"episodes-000002.tar: episodes recorded with action space .*'nvec': \[3, 3\].*this model takes"):
        model.training_losses(batch | {"meta": [recorded]})
    with pytest.raises(ActionSpaceError, match="batch actions: 2 is outside a discrete action space of 2 actions"):
        model.training_losses(batch | {"actions": torch.full((1, 4), 2)})


def test_contexts_windows_and_settings_that_do_not_fit_are_named(tokenizer_folder, tmp_path):
    model = tiny(tokenizer_folder).eval()
    with pytest.raises(ContextError, match="a step before start"):
        model.step(torch.tensor([0]))
    with pytest.raises(ContextError, match="context of 5 frames: this model takes 1 to 4"):
        model.start(square_frames(1, 5), codes(1, 4))
    with pytest.raises(ContextError, match=r"context actions of shape \(1, 2\): expected \(1, 1, ...\) for 2 frames"):
        model.start(square_frames(1, 2), codes(1, 2))
    with pytest.raises(LatentDiffusionError, match=r"latents of shape \(1, 2, 4, 8, 8\): this model takes \(B, T, 4, 4, 6\), the latents of 32x48 frames"):
        model.training_losses({"frames": torch.rand(1, 2, 3, 64, 64)})
    with pytest.raises(LatentDiffusionError, match="a window of 5 frames: this model trains on at most max_frames 4"):
        model.training_losses({"latents": torch.zeros(1, 5, *LATENTS)})
    model.start(square_frames(1, 1), None)
    with pytest.raises(LatentDiffusionError, match=r"frames_per_chunk 4: must lie in \[1, max_frames 4\)"):
        model.generate(codes(1, 4), frames_per_chunk=4)
    with pytest.raises(LatentDiffusionError, match="schedule 'zigzag': must be one of"):
        model.generate(codes(1, 1), schedule="zigzag")
    with pytest.raises(LatentDiffusionError, match="temperature: not sampling settings"):
        model.generate(codes(1, 1), temperature=0.5)
    with pytest.raises(LatentDiffusionError, match="patch_size 4: does not divide the 4x6 latent grid"):
        tiny(tokenizer_folder, patch_size=4)
    with pytest.raises(LatentDiffusionError, match=r"stabilization_level 1000: must lie in \[0, train_levels 1000\)"):
        tiny(tokenizer_folder, stabilization_level=1000)
    with pytest.raises(TokenizerChoiceError, match="discrete codes; latent diffusion denoises continuous latents"):
        tiny(per_frame_tokenizer(tmp_path / "fsq", **FSQ))


def test_reverie_train_fits_the_tiny_config_on_recorded_cartpole_episodes(tokenizer_folder, tmp_path):
    from reverie.pipelines.record import RecordConfig, run_record

    run_record(RecordConfig("CartPole-v1", episodes=2, out=tmp_path / "episodes", size=32, clip_frames=8, clip_format="npy", progress=False))
    run_dir = train_config_briefly(TINY, tmp_path / "run", f"model.tokenizer={tokenizer_folder}", f"data.shards={tmp_path / 'episodes' / 'shards'}")
    assert [path.name for path in sorted((run_dir / "checkpoints").glob("step-*.ckpt"))] == ["step-00000006.ckpt"]


@pytest.mark.slow
def test_the_oasis_size_config_builds_and_takes_a_training_step_and_a_sampling_step(tmp_path):
    tokenizer = per_frame_tokenizer(tmp_path / "vae16", spatial_compression=16, channel_multipliers=[1, 1, 1, 1, 1], latent_channels=16)
    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "world_models" / "oasis_500m.yaml").model)
    model = MODELS.get(fields.pop("name"))(LatentDiffusionConfig(**fields | {"tokenizer": str(tokenizer)}))
    assert model.latent_shape == (16, 18, 32) and model.network.grid == (9, 16) and len(model.network.blocks) == 16
    assert 4.0e8 < sum(p.numel() for p in model.network.parameters()) < 4.5e8
    generator = torch.Generator().manual_seed(0)
    batch = {"latents": torch.randn(1, 2, 16, 18, 32, generator=generator), "actions": torch.randint(0, 2, (1, 2, 25), generator=generator)}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)  # AdamW's state would double the memory
    before = model.network.final_layer.to_patches.weight.clone()
    loss = model.training_losses(batch)["loss"]
    loss.backward()
    optimizer.step()
    assert loss.isfinite() and not torch.equal(model.network.final_layer.to_patches.weight, before)
    model.eval().start(torch.rand(1, 1, 3, 288, 512, generator=generator), None, generator)
    assert model.generate(batch["actions"][:, :1], sampling_steps=2).shape == (1, 1, 3, 288, 512)
