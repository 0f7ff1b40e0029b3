"""Action post-training (Cosmos [25], UniSim [17]) of a latent diffusion world model pretrained on
video without actions: the zero-initialised unified action embedding leaves the pretrained model's
outputs unchanged at step 0 and lets actions matter after one step, LoRA's trainable-parameter
count, the loss falls, a batch mixing two action spaces, bad input named, and `reverie train` on a
LeRobot-format dataset whose robot_type picks the encoder, exported and stepped as a learned env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.posttrain.action_conditioning import ActionConditionedWorldModel, ActionConditioningConfig, ActionConditioningError, trainable_share
from reverie.pretrain.action_tokens import ActionSpaceError
from reverie.pretrain.latent_diffusion import LatentDiffusionConfig, LatentDiffusionWorldModel
from tiny_latent_dit import open_gates
from tiny_tokenizers import per_frame_tokenizer, sliding_square
from training_runs import train_config_briefly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
PRETRAINING = ROOT / "configs" / "world_models" / "dit_forcing_tiny.yaml"
TINY = ROOT / "configs" / "posttrain" / "action_conditioning_tiny.yaml"
CARTPOLE = {"kind": "discrete", "n": 2}
ARM = {"kind": "continuous", "dim": 3}


@pytest.fixture(scope="module")
def pretrained_folder(tmp_path_factory) -> Path:
    """The tiny latent DiT of dit_forcing_tiny.yaml (32 x 48 frames), its zero-initialised layers random."""
    folder = tmp_path_factory.mktemp("pretrained")
    fields = OmegaConf.to_container(OmegaConf.load(PRETRAINING).model)
    fields.pop("name")
    tokenizer = per_frame_tokenizer(folder / "tokenizer")
    torch.manual_seed(0)
    model = LatentDiffusionWorldModel(LatentDiffusionConfig(**fields | {"tokenizer": str(tokenizer)}))
    open_gates(model.network)
    return save_model_folder(model, folder / "model")


def post_trained(folder: Path, **fields) -> ActionConditionedWorldModel:
    torch.manual_seed(1)  # another seed than the pretrained model's: fresh weights differ from its
    return ActionConditionedWorldModel(ActionConditioningConfig(pretrained=str(folder), **{"action_spaces": {"cartpole": CARTPOLE}} | fields))


def square_frames(batch: int = 4, frames: int = 4) -> torch.Tensor:
    """(B, T, 3, 32, 48) in [0, 1]: sliding-square clips."""
    import numpy as np

    clips = np.stack([sliding_square(index, frames, 32, 48) for index in range(batch)])
    return torch.from_numpy(clips).permute(0, 1, 4, 2, 3) / 255


def with_actions(frames: torch.Tensor, actions: torch.Tensor, spaces: list[str] | None = None) -> dict:
    batch = {"frames": frames, "actions": actions, "has_actions": torch.ones(len(frames), dtype=torch.bool)}
    if spaces is not None:
        batch |= {"meta": [{"robot_type": name} for name in spaces], "shard": ["s.tar"] * len(frames), "key": [f"k{i}" for i in range(len(frames))]}
    return batch


def first_step(model, frames: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
    model.start(frames[:, :2], None if actions is None else actions[:, :1], torch.Generator().manual_seed(5))
    return model.step(None if actions is None else actions[:, 1]).frame


def test_post_training_starts_from_the_pretrained_model_exactly_and_one_step_makes_actions_matter(pretrained_folder):
    pretrained, model = load_model_folder(pretrained_folder), post_trained(pretrained_folder).eval()
    frames, actions = square_frames(), torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
    torch.manual_seed(3)
    unconditional = pretrained.training_losses({"frames": frames})["loss"]
    torch.manual_seed(3)
    conditional = model.training_losses(with_actions(frames, actions))["loss"]
    assert torch.equal(unconditional, conditional)
    assert torch.equal(first_step(pretrained, frames, None), first_step(model, frames, actions))
    assert torch.equal(first_step(model, frames, actions), first_step(model, frames, 1 - actions))  # the actions do not matter yet

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.training_losses(with_actions(frames, actions))["loss"].backward()
    optimizer.step()
    assert not torch.allclose(first_step(model, frames, actions), first_step(model, frames, 1 - actions), atol=1e-4)


def test_lora_trains_only_its_adapters_and_the_action_encoders_under_5_percent_of_the_dit(pretrained_folder):
    model = post_trained(pretrained_folder, lora_rank=2, encoder_width=16)
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert trainable and all(".lora_" in name or ".action_embedding." in name for name in trainable)
    adapted = [module.base_layer for module in model.world.network.modules() if hasattr(module, "lora_A")]
    per_block = ["qkv", "proj", "qkv", "proj", "mlp.0", "mlp.2", "to_modulation"]  # spatial and temporal attention, MLP, adaLN
    assert len(adapted) == 2 * len(per_block) + 1  # two blocks, and the final layer's adaLN
    lora = sum(2 * (layer.in_features + layer.out_features) for layer in adapted)
    encoders = 2 * 16 + (16 * 16 + 16) + 16 * 64 + 64  # embedding table, encoder Linear, shared map (no bias), offset
    count, total = trainable_share(model.world.network)
    assert count == lora + encoders
    assert count / total < 0.05

    base = {name: parameter.detach().clone() for name, parameter in model.named_parameters() if not parameter.requires_grad}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        model.training_losses(with_actions(square_frames(), torch.zeros(4, 4, dtype=torch.int64)))["loss"].backward()
        optimizer.step()
    assert all(torch.equal(parameter, base[name]) for name, parameter in model.named_parameters() if name in base)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_post_training_fits_a_fixed_batch(pretrained_folder, lora_rank):
    model = post_trained(pretrained_folder, lora_rank=lora_rank).train()
    batch = with_actions(square_frames(), torch.tensor([[0, 1, 0, 1]] * 4))

    def fixed_loss() -> float:
        torch.manual_seed(11)
        with torch.no_grad():
            return float(model.training_losses(batch)["loss"])

    before = fixed_loss()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(30):
        torch.manual_seed(step)
        optimizer.zero_grad()
        model.training_losses(batch)["loss"].backward()
        optimizer.step()
    assert fixed_loss() < 0.8 * before


def test_a_batch_of_two_action_spaces_trains_each_through_its_encoder_weighted_by_count(pretrained_folder):
    model = post_trained(pretrained_folder, action_spaces={"cartpole": CARTPOLE, "arm": ARM})
    frames, generator = square_frames(), torch.Generator().manual_seed(0)
    cartpole, arm = torch.randint(0, 2, (3, 4), generator=generator), torch.randn(1, 4, 3, generator=generator)
    mixed = with_actions(frames, [cartpole[0], arm[0], cartpole[1], cartpole[2]], ["cartpole", "arm", "cartpole", "cartpole"])
    torch.manual_seed(0)
    loss = model.training_losses(mixed)["loss"]
    torch.manual_seed(0)
    with model.using("cartpole"):
        first = model.world.training_losses(with_actions(frames[[0, 2, 3]], cartpole))["loss"]
    with model.using("arm"):
        second = model.world.training_losses(with_actions(frames[[1]], arm))["loss"]
    assert torch.allclose(loss, 0.75 * first + 0.25 * second)
    assert model.actions.active == "cartpole"  # play_space again after the batch

    with pytest.raises(ActionSpaceError, match=r"s.tar: sample k1: robot_type 'koch' has no action encoder; this model has encoders for cartpole, arm"):
        model.training_losses(with_actions(frames, [cartpole[0], arm[0], cartpole[1], cartpole[2]], ["cartpole", "koch", "cartpole", "cartpole"]))
    with pytest.raises(ActionConditioningError, match="s.tar: sample k0: its metadata has no 'robot_type'"):
        model.training_losses(with_actions(frames, cartpole[:1].expand(4, 4), None) | {"meta": [{}] * 4, "shard": ["s.tar"] * 4, "key": ["k0", "k1", "k2", "k3"]})
    with pytest.raises(ActionSpaceError, match=r"action: 2 is outside a discrete action space of 2 actions"):
        model.start(frames[:, :1], None)
        model.step(torch.full((4,), 2))


def test_configs_that_cannot_post_train_are_named(pretrained_folder, tmp_path):
    with pytest.raises(ActionConditioningError, match="pretrained: not set"):
        ActionConditionedWorldModel(ActionConditioningConfig(action_spaces={"cartpole": CARTPOLE}))
    with pytest.raises(ActionConditioningError, match="action_spaces: empty"):
        ActionConditionedWorldModel(ActionConditioningConfig(pretrained=str(pretrained_folder)))
    with pytest.raises(ActionConditioningError, match="play_space 'arm': not one of action_spaces"):
        post_trained(pretrained_folder, play_space="arm")
    with pytest.raises(ActionConditioningError, match="holds causal_video_autoencoder; action post-training takes a latent_diffusion_world_model"):
        post_trained(pretrained_folder.parent / "tokenizer")
    with pytest.raises(ActionConditioningError, match="not a model folder"):
        post_trained(tmp_path)


def test_from_scratch_builds_a_fresh_dit_over_the_pretrained_tokenizer(pretrained_folder):
    pretrained, scratch = load_model_folder(pretrained_folder), post_trained(pretrained_folder, from_scratch=True)
    shapes = {name: parameter.shape for name, parameter in pretrained.network.named_parameters() if "action_embedding" not in name}
    assert {name: scratch.world.network.get_parameter(name).shape for name in shapes} == shapes
    # the pretrained final layer was drawn at random (open gates); a fresh one starts at zero, as DiT's does
    assert pretrained.network.final_layer.to_patches.weight.abs().sum() > 0
    assert torch.equal(scratch.world.network.final_layer.to_patches.weight, torch.zeros_like(pretrained.network.final_layer.to_patches.weight))
    tokenizer = pretrained.tokenizer.state_dict()  # the frozen tokenizer is the pretrained one, not a fresh one
    assert all(torch.equal(value, tokenizer[name]) for name, value in scratch.world.tokenizer.state_dict().items())
    assert scratch.config.pretrained["from_scratch"] is True


def test_reverie_train_post_trains_on_a_lerobot_dataset_and_the_export_is_a_learned_env(pretrained_folder, tmp_path):
    from reverie.pipelines.lerobot.exporter import LeRobotExportConfig, run_lerobot_export
    from reverie.pipelines.lerobot.importer import LeRobotImportConfig, run_lerobot_import
    from reverie.pipelines.record import RecordConfig, run_record

    run_record(RecordConfig("CartPole-v1", episodes=2, out=tmp_path / "episodes", size=32, clip_frames=8, clip_format="npy", progress=False))
    run_lerobot_export(LeRobotExportConfig(tmp_path / "episodes", tmp_path / "lerobot"))
    run_lerobot_import(LeRobotImportConfig([tmp_path / "lerobot"], tmp_path / "robot", size=32, keep_aspect=True, clip_frames=8, clip_format="npy", progress=False))
    spaces = "model.action_spaces={CartPole-v1: {kind: discrete, n: 2}, arm: {kind: continuous, dim: 3}}"
    run_dir = train_config_briefly(TINY, tmp_path / "run", f"model.pretrained={pretrained_folder}", f"data.shards={tmp_path / 'robot' / 'shards'}",
                                   spaces, "model.lora_rank=2")  # fmt: skip
    export = [sys.executable, "-m", "reverie.cli.main", "export", str(run_dir), "--out", str(tmp_path / "model"), "--no-ema"]
    subprocess.run(export, check=True, capture_output=True)

    model = load_model_folder(tmp_path / "model")
    assert model.config.play_space == "CartPole-v1" and model.config.pretrained["from"] == str(pretrained_folder)
    env = gym.make("reverie/WorldModel-v0", model=str(tmp_path / "model"), starts=str(tmp_path / "robot" / "shards"), without_rewards=True)
    frame, _ = env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(2) and frame.shape == (32, 48, 3)
    assert env.step(1)[0].shape == (32, 48, 3)
