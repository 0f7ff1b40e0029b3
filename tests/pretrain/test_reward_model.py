"""The reward and termination model beside a world model without heads (DIAMOND [16]): it learns a
toy whose reward is the action's sign and whose episodes end at a frame it can see, in both reward
kinds; `reverie train` fits the tiny config on recorded CartPole; and the learned env reads rewards
and terminations from it, refusing a model with no rewards at all and a reward model that does not fit."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import reverie.envs  # noqa: F401  (registers reverie/WorldModel-v0)
from reverie.envs.learned_worlds import LearnedEnvError
from reverie.nn.model_folder import save_model_folder
from reverie.pretrain.reward_model import RewardModel, RewardModelConfig, RewardModelError
from play_models import pixel_model_folder
from tiny_tokenizers import sliding_square, write_shard
from training_runs import train_config_briefly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "world_models" / "reward_model_tiny.yaml"
THREE_ACTIONS = {"kind": "discrete", "n": 3}


def toy_batch(batch: int, seed: int) -> dict:
    """Windows of 4 sliding-square frames (16 x 16); the reward of action a is a - 1 in {-1, 0, 1},
    and a window "terminates" at its last transition when its last frame is dark."""
    generator = torch.Generator().manual_seed(seed)
    clips = np.stack([sliding_square(int(index), 4, 16, 16) for index in torch.randint(0, 50, (batch,), generator=generator)])
    frames = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255
    dark = torch.rand(batch, generator=generator) < 0.5
    frames[dark, -1] *= 0.2
    actions = torch.randint(0, 3, (batch, 4), generator=generator)
    terminated = torch.zeros(batch, 4, dtype=torch.bool)
    terminated[:, 2] = dark
    return {"frames": frames, "actions": actions, "rewards": (actions - 1).float(), "terminated": terminated}


@pytest.mark.parametrize("reward", ["sign", "value"])
def test_the_reward_model_learns_rewards_and_terminations_of_held_out_transitions(reward):
    torch.manual_seed(0)
    model = RewardModel(RewardModelConfig(action_space=THREE_ACTIONS, reward=reward, channels=8, width=32))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    held_out = toy_batch(64, seed=999)
    before = model.training_losses(held_out)["loss"].item()
    for step in range(150):
        optimizer.zero_grad()
        model.training_losses(toy_batch(16, seed=step))["loss"].backward()
        optimizer.step()
    assert model.training_losses(held_out)["loss"].item() < 0.3 * before
    frames, actions = held_out["frames"][:, :-1].flatten(0, 1), held_out["actions"][:, :-1].flatten()
    rewards, terminated = model.predict(frames, actions, held_out["frames"][:, 1:].flatten(0, 1))
    predicted = rewards if reward == "sign" else rewards.round()
    assert (predicted == held_out["rewards"][:, :-1].flatten()).double().mean() > 0.95
    assert (terminated == held_out["terminated"][:, :-1].flatten()).double().mean() > 0.95


def test_a_batch_without_rewards_or_an_unknown_kind_is_named():
    model = RewardModel(RewardModelConfig(action_space=THREE_ACTIONS))
    with pytest.raises(RewardModelError, match="a batch without rewards, terminated"):
        model.training_losses({"frames": torch.rand(1, 2, 3, 16, 16), "actions": torch.zeros(1, 2, dtype=torch.int64)})
    with pytest.raises(RewardModelError, match="reward 'binary': must be one of sign, value"):
        RewardModel(RewardModelConfig(reward="binary"))


def test_reverie_train_fits_the_tiny_config_on_recorded_cartpole(tmp_path):
    from reverie.pipelines.record import RecordConfig, run_record

    run_record(RecordConfig("CartPole-v1", episodes=2, out=tmp_path / "episodes", size=32, clip_frames=8, clip_format="npy", progress=False))
    run_dir = train_config_briefly(TINY, tmp_path / "run", f"data.shards={tmp_path / 'episodes' / 'shards'}")
    assert [path.name for path in sorted((run_dir / "checkpoints").glob("step-*.ckpt"))] == ["step-00000006.ckpt"]


@pytest.fixture(scope="module")
def world_and_starts(tmp_path_factory):
    """A tiny pixel world model of 16 x 16 frames and 3 actions (no heads), and episode starts."""
    folder = tmp_path_factory.mktemp("reward_env")
    clip = sliding_square(0, 3, 16, 16)
    sample = {"__key__": "ep0", "npy": clip, "actions.npy": np.zeros(3, np.int64), "json": {"key": "ep0", "fps": 8.0, "frames": 3, "episode": 0, "step": 0}}
    return pixel_model_folder(folder / "pixel"), str(write_shard(folder / "starts.tar", [sample]))


def test_the_learned_env_takes_rewards_and_terminations_from_a_reward_model(world_and_starts, tmp_path):
    world, starts = world_and_starts
    torch.manual_seed(0)
    reward_model = RewardModel(RewardModelConfig(action_space=THREE_ACTIONS, channels=8, width=32))
    with torch.no_grad():  # says reward +1 and "terminated" whatever it sees
        reward_model.reward_head[-1].weight.zero_(), reward_model.reward_head[-1].bias.copy_(torch.tensor([0.0, 0.0, 5.0]))
        reward_model.termination_head[-1].weight.zero_(), reward_model.termination_head[-1].bias.fill_(5.0)
    folder = save_model_folder(reward_model, tmp_path / "reward")
    envs = gym.make_vec("reverie/WorldModel-v0", num_envs=2, model=str(world), starts=starts, reward_model=str(folder))
    envs.reset(seed=0)
    _, rewards, terminated, _, _ = envs.step(np.array([0, 2]))
    assert rewards.tolist() == [1.0, 1.0] and terminated.all()
    assert envs.step(np.array([1, 1]))[1].tolist() == [0.0, 0.0]  # the autoreset step


def test_a_model_without_rewards_or_a_reward_model_that_does_not_fit_is_refused(world_and_starts, tmp_path):
    world, starts = world_and_starts
    with pytest.raises(LearnedEnvError, match="pixel_diffusion_world_model: has no reward head; give reward_model=DIR"):
        gym.make("reverie/WorldModel-v0", model=str(world), starts=starts)
    two_actions = save_model_folder(RewardModel(RewardModelConfig(action_space={"kind": "discrete", "n": 2})), tmp_path / "two")
    with pytest.raises(LearnedEnvError, match="reads a discrete action space of 2 actions; pixel_diffusion_world_model takes 3 actions"):
        gym.make("reverie/WorldModel-v0", model=str(world), starts=starts, reward_model=str(two_actions))
    with pytest.raises(LearnedEnvError, match="holds pixel_diffusion_world_model, not a reward_model"):
        gym.make("reverie/WorldModel-v0", model=str(world), starts=starts, reward_model=str(world))
