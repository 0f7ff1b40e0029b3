"""The IRIS agent on RoadRunner at 16 px with tiny models: each part starting at its epoch, the
autoencoder and world model's losses falling, the actor reading reconstructions, exact checkpoints
and resume, and the `reverie agent iris` command."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import torch

from reverie.agents.base import seeded
from reverie.agents.iris import Iris, IrisConfig
from reverie.agents.registry import load_agent
from reverie.cli.main import main

GAME = "ALE/RoadRunner-v5"
TINY = dict(
    frame_size=16, replay_capacity=3000, first_epoch_steps=40, steps_per_epoch=20, batch_size=4, actor_channels=[8, 8], lstm=16,
    tokenizer_channels=[8, 8], code_width=16, codebook_size=32, tokenizer_batch_size=8, tokenizer_start_epoch=0, tokenizer_updates=2,
    width=16, depth=1, heads=2, window=4, world_model_start_epoch=1, world_model_updates=2, actor_start_epoch=2, actor_updates=2,
    burn_in=3, horizon=3,
)  # fmt: skip


def make_agent(seed: int = 0, **changes) -> tuple[Iris, gym.Env]:
    config = IrisConfig(**{**TINY, **changes}, seed=seed)
    env = Iris.make_env(config, GAME)
    return Iris(config, env.observation_space, env.action_space), env


def test_each_part_starts_at_its_epoch():
    torch.set_num_threads(1)
    agent, env = make_agent()
    agent.train(env, steps=85)  # epochs at steps 40, 60 and 80
    assert agent.epochs == 3
    assert (agent.tokenizer_steps, agent.world_model_steps, agent.actor_critic_steps) == (3 * 2, 2 * 2, 1 * 2)
    for name, value in agent.tokenizer.state_dict().items():  # the world model's frozen copy follows the autoencoder
        torch.testing.assert_close(agent.world_model.tokenizer.model.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_autoencoder_and_world_model_learn_from_the_replay():
    torch.set_num_threads(1)
    agent, env = make_agent(seed=1, tokenizer_start_epoch=10**6, world_model_start_epoch=10**6, actor_start_epoch=10**6)
    agent.train(env, steps=300)
    with seeded(0):
        frames = agent.replay.sample(32, 1)
        windows = {name: value[:, :-1] for name, value in agent.replay.sample(16, 5).items()}

    def losses() -> tuple[float, float]:
        agent.tokenizer.eval()
        with seeded(1), torch.no_grad():
            reconstruction = torch.nn.functional.l1_loss(agent.tokenizer(frames["frames"]), frames["frames"]).item()
            world = agent.world_model.training_losses(windows)["tokens"].item()
        return reconstruction, world

    before = losses()
    agent.config.tokenizer_start_epoch = agent.config.world_model_start_epoch = 0
    agent.config.tokenizer_updates, agent.config.world_model_updates, agent.config.learning_rate = 80, 0, 3e-3
    with seeded(2):
        agent.train_epoch()  # the autoencoder first, so that the world model's codes stand still
    tokens_before = losses()[1]
    agent.config.tokenizer_start_epoch, agent.config.world_model_updates = 10**6, 80
    with seeded(3):
        agent.train_epoch()
    after = losses()
    assert after[0] < 0.7 * before[0], (before, after)
    assert after[1] < 0.8 * tokens_before, (tokens_before, after)


def test_the_actor_reads_frames_as_the_autoencoder_reconstructs_them():
    agent, _ = make_agent(seed=2)
    frames = torch.rand(2, 3, 3, 16, 16)
    seen = agent.actor_view(frames)
    tokenizer = agent.world_model.tokenizer
    torch.testing.assert_close(seen, tokenizer.model.decode_indices(tokenizer.model.tokenize(frames)))
    assert not torch.allclose(seen, frames, atol=0.05)


def test_checkpoint_round_trips_and_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    agent, env = make_agent(seed=3)
    agent.train(env, steps=110)
    loaded = load_agent(agent.save(tmp_path / "iris.safetensors"))
    assert isinstance(loaded, Iris) and loaded.epochs == agent.epochs
    stored = agent.state_dict()
    assert stored.keys() == loaded.state_dict().keys()
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, stored[name], err_msg=name)
    agent.train(env, steps=200)
    loaded.train(Iris.make_env(loaded.config, GAME), steps=200)
    assert agent.actor_critic_steps > 0
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, agent.state_dict()[name], err_msg=name)


def test_agent_command_trains_and_resumes(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    lists = {key: value for key, value in TINY.items() if isinstance(value, list)}
    overrides = [f"{key}={value}" for key, value in TINY.items() if key not in lists] + [f"{key}=[{','.join(map(str, value))}]" for key, value in lists.items()]
    assert main(["agent", "iris", "--env", GAME, *overrides, "steps=100", "--out", str(out)]) == 0
    first = list(csv.DictReader((out / "metrics.csv").open()))
    assert main(["agent", "iris", "--env", GAME, *overrides, "steps=320", "--out", str(out)]) == 0
    assert "resuming iris" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows[: len(first)] == first and int(rows[-1]["total_steps"]) > int(first[-1]["total_steps"])
