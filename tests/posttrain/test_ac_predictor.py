"""V-JEPA 2-AC on a real (tiny) frozen V-JEPA encoder: training batches, the frozen encoder, the
planning API, LoRA, self-contained model folders and a `reverie train` run of the tiny config."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.posttrain.ac_predictor import VJEPAAC, VJEPAACConfig

ROOT = Path(__file__).resolve().parents[2]
SIZE = 16  # px; patches of 8 px: 4 tokens per frame
ENCODER = dict(frames=2, image_size=SIZE, patch_size=8, tubelet_size=2, embed_dim=24, depth=1, num_heads=2, predictor_dim=12, predictor_depth=1, predictor_heads=2)
PREDICTOR = dict(action_dim=2, state_dim=2, width=32, depth=2, heads=4, max_frames=8)


@pytest.fixture
def encoder_folder(tmp_path) -> Path:
    torch.manual_seed(0)
    vjepa = MODELS.get("vjepa")
    return save_model_folder(vjepa(vjepa.config_class(**ENCODER)), tmp_path / "vjepa")


def post_trained(encoder_folder: Path, **overrides) -> VJEPAAC:
    torch.manual_seed(1)
    return VJEPAAC(VJEPAACConfig(encoder_folder=str(encoder_folder), **(PREDICTOR | overrides)))


def episode_batch(batch: int = 2, frames: int = 4, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "frames": torch.rand(batch, frames, 3, SIZE, SIZE, generator=generator),
        "actions": torch.randn(batch, frames, PREDICTOR["action_dim"], generator=generator),
        "states": torch.randn(batch, frames, PREDICTOR["state_dim"], generator=generator),
        "has_actions": torch.ones(batch, dtype=torch.bool),
        "key": [f"episode{index}" for index in range(batch)],
    }


def planning_inputs(model: VJEPAAC, candidates: int = 5, horizon: int = 3) -> dict:
    batch = episode_batch(batch=1, frames=2, seed=3)
    generator = torch.Generator().manual_seed(4)
    return {
        "context_features": model.encode(batch["frames"])[0],  # (T0, N, D)
        "action_sequences": torch.rand(candidates, horizon, PREDICTOR["action_dim"], generator=generator) * 2 - 1,
        "states": batch["states"][0],
        "context_actions": batch["actions"][0, :1],
    }


def train_steps(model: VJEPAAC, steps: int) -> list[dict]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    history = []
    for step in range(steps):
        terms = model.training_losses(episode_batch(seed=step))
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        history.append({name: value.item() for name, value in terms.items()})
    return history


def test_training_steps_leave_the_encoder_frozen(encoder_folder):
    model = post_trained(encoder_folder)
    saved = load_file(str(encoder_folder / "model.safetensors"))
    encoder_before = {name: tensor.clone() for name, tensor in model.encoder.state_dict().items()}
    assert all(torch.equal(encoder_before[name], saved[name]) for name in saved)  # initialised from the folder
    predictor_before = {name: tensor.clone() for name, tensor in model.predictor.state_dict().items()}
    history = train_steps(model, 3)
    assert set(history[0]) == {"loss", "teacher_forcing", "rollout"}
    assert all(torch.isfinite(torch.tensor(list(terms.values()))).all() for terms in history)
    assert not model.encoder.training and model.predictor.training
    assert not any(parameter.requires_grad for parameter in model.encoder.parameters())
    assert all(torch.equal(tensor, encoder_before[name]) for name, tensor in model.encoder.state_dict().items())
    assert any(not torch.equal(tensor, predictor_before[name]) for name, tensor in model.predictor.state_dict().items())


def test_batches_without_continuous_actions_are_refused(encoder_folder):
    model = post_trained(encoder_folder)
    batch = episode_batch() | {"has_actions": torch.tensor([True, False]), "actions": [torch.zeros(4, 2), None]}
    with pytest.raises(ValueError, match="has_actions false: episode1"):
        model.training_losses(batch)
    with pytest.raises(ValueError, match="continuous actions"):
        model.training_losses(episode_batch() | {"actions": torch.zeros(2, 4, dtype=torch.long)})
    with pytest.raises(ValueError, match="data.window must be at least 3"):
        model.training_losses(episode_batch(frames=2))


def test_planning_api(encoder_folder):
    model = post_trained(encoder_folder).eval()
    inputs = planning_inputs(model)
    tokens, dim = model.predictor.tokens_per_frame, model.encoder.feature_dim
    imagined = model.rollout(**inputs)
    assert imagined.shape == (5, 3, tokens, dim) and not imagined.requires_grad
    batched = {name: value[None] if name != "action_sequences" else value for name, value in inputs.items()}
    assert torch.allclose(model.rollout(**batched), imagined, atol=1e-6)
    goal = model.encode_goal(episode_batch(batch=1, seed=9)["frames"][0, -1])
    assert goal.shape == (tokens, dim)
    energy = model.energy(imagined[:, -1], goal)
    assert energy.shape == (5,) and (energy > 0).all()
    assert torch.equal(model.energy(goal.expand(3, -1, -1), goal), torch.zeros(3))
    # a different first action changes what the model imagines
    other = dict(inputs, action_sequences=inputs["action_sequences"].flip(0))
    assert not torch.allclose(model.rollout(**other), imagined)


def test_model_folder_round_trip_needs_no_encoder_folder(tmp_path, encoder_folder):
    model = post_trained(encoder_folder).eval()
    train_steps(model, 1)
    model.eval()
    folder = save_model_folder(model, tmp_path / "vjepa_ac")
    shutil.rmtree(encoder_folder)
    saved_config = json.loads((folder / "config.json").read_text())["config"]
    assert saved_config["encoder_folder"] is None and saved_config["encoder"]["embed_dim"] == ENCODER["embed_dim"]
    loaded = load_model_folder(folder)
    inputs = planning_inputs(model)
    assert torch.equal(loaded.rollout(**inputs), model.rollout(**inputs))
    frames = episode_batch()["frames"]
    assert torch.equal(loaded.encode(frames), model.encode(frames))


def test_standardized_features_and_actions_use_the_training_statistics(tmp_path, encoder_folder):
    model = post_trained(encoder_folder, standardize_features=True, standardize_actions=True)
    train_steps(model, 3)
    statistics, action_statistics = model.feature_statistics, model.predictor.action_statistics
    assert statistics.count == 3 * 2 * 4 and action_statistics.count > 0  # every training frame, every batch
    model.eval()
    frames = torch.cat([episode_batch(seed=step)["frames"] for step in range(3)])
    features = model.encode(frames)  # (6, 4, N, D), the frames the statistics were taken over
    flat = features.flatten(0, 1)
    torch.testing.assert_close(flat.mean(0), torch.zeros_like(flat[0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(0, unbiased=False), torch.ones_like(flat[0]), atol=1e-3, rtol=0)
    assert torch.equal(model.encode(frames), features)  # evaluation leaves the statistics alone
    folder = save_model_folder(model, tmp_path / "vjepa_ac")
    loaded = load_model_folder(folder)
    inputs = planning_inputs(model)
    assert torch.equal(loaded.encode(frames), features) and torch.equal(loaded.rollout(**inputs), model.rollout(**inputs))


def test_lora_fine_tuning_trains_only_adapters(tmp_path, encoder_folder):
    base = post_trained(encoder_folder).eval()
    base_folder = save_model_folder(base, tmp_path / "post_trained")
    adapted = VJEPAAC(VJEPAACConfig(init_folder=str(base_folder), lora_rank=4, lora_alpha=8.0)).eval()
    trainable = [name for name, parameter in adapted.named_parameters() if parameter.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    inputs = planning_inputs(base)
    # LoRA starts as the identity. Checked in float64: in float32 the two rollouts differ by up to
    # 1.6e-6 from rounding alone (a layer LoRA leaves alone, on equal inputs, rounds differently),
    # 0.8 of the bound allclose(atol=1e-6) gave
    doubled = {name: value.double() for name, value in inputs.items()}
    identity = copy.deepcopy(adapted).double().rollout(**doubled), copy.deepcopy(base).double().rollout(**doubled)
    torch.testing.assert_close(*identity, rtol=0, atol=1e-12)
    frozen_before = {name: p.clone() for name, p in adapted.named_parameters() if not p.requires_grad}
    train_steps(adapted, 2)
    adapted.eval()
    assert all(torch.equal(p, frozen_before[name]) for name, p in adapted.named_parameters() if not p.requires_grad)
    outputs = adapted.rollout(**inputs)
    assert outputs.shape == base.rollout(**inputs).shape and not torch.allclose(outputs, base.rollout(**inputs))
    shutil.rmtree(base_folder)
    reloaded = load_model_folder(save_model_folder(adapted, tmp_path / "adapted"))
    assert torch.equal(reloaded.rollout(**inputs), outputs)


def test_tiny_config_trains_on_recorded_episodes(tmp_path, encoder_folder):
    from reverie.pipelines.record import RecordConfig, run_record
    from reverie.training.config import load_config
    from reverie.training.export import export_run
    from reverie.training.trainer import fit

    env_id = "Reacher-v5"  # the config's env: 2-d torques, 10-d states
    run_record(RecordConfig(env_id, episodes=2, out=tmp_path / "episodes", size=SIZE, clip_frames=8, clip_format="npy", max_steps=16, progress=False))
    overrides = [
        f"model.encoder_folder={encoder_folder}",
        f"data.shards={tmp_path / 'episodes' / 'shards'}",
        f"run.dir={tmp_path / 'run'}",
        "data.batch_size=2",
        "trainer.max_steps=30",
        "trainer.log_every_n_steps=1",
        "checkpoint.every_n_steps=30",
    ]
    run_dir = fit(load_config(ROOT / "configs" / "vjepa_ac" / "tiny.yaml", overrides))
    with open(run_dir / "metrics.csv") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.3 * losses[0]
    shutil.rmtree(encoder_folder)  # the checkpoint records the built model's config: export needs no encoder folder
    model = load_model_folder(export_run(run_dir, tmp_path / "model", ema=False))
    assert model.config.encoder_folder is None and model.predictor.state_in is not None
    assert model.rollout(torch.zeros(1, 4, ENCODER["embed_dim"]), torch.zeros(2, 3, 2), states=torch.zeros(1, 10)).shape == (2, 3, 4, 24)


@pytest.mark.slow
def test_paper_scale_config_builds_and_steps():
    from omegaconf import OmegaConf

    encoder = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "vjepa" / "vitl.yaml").model)
    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "vjepa_ac" / "droid.yaml").model)
    for entry in (encoder, fields):
        entry.pop("name")
    model = VJEPAAC(VJEPAACConfig(**(fields | {"encoder_folder": None, "encoder": encoder})))
    parameters = sum(parameter.numel() for parameter in model.predictor.parameters())
    assert 250e6 < parameters < 350e6  # the paper's predictor: about 300M
    generator = torch.Generator().manual_seed(0)
    batch = {
        "frames": torch.rand(1, 3, 3, 256, 256, generator=generator),
        "actions": torch.randn(1, 3, 7, generator=generator),
        "states": torch.randn(1, 3, 7, generator=generator),
        "has_actions": torch.tensor([True]),
    }
    terms = model.training_losses(batch)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and model.predictor.feature_out.weight.grad is not None
