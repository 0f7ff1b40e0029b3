"""The DIAMOND agent on RoadRunner at 16 px with tiny models: its schedule, its world and reward
models' losses falling, exact checkpoints and resume, the `reverie agent diamond` command, and its
refusals of spaces it cannot play."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

from reverie.agents.base import seeded
from reverie.agents.diamond import Diamond, DiamondConfig
from reverie.agents.registry import load_agent
from reverie.cli.main import main

GAME = "ALE/RoadRunner-v5"
TINY = dict(
    frame_size=16, replay_capacity=3000, first_epoch_steps=80, steps_per_epoch=40, batch_size=4, actor_channels=[8, 8], lstm=16,
    horizon=3, channels=[8, 8], res_blocks=1, cond_channels=16, denoising_steps=1, reward_channels=8, reward_width=16,
    first_world_model_updates=4, world_model_updates=2, first_reward_updates=4, reward_updates=2, first_actor_updates=3,
    actor_updates=2, warmup_updates=2,
)  # fmt: skip


def make_agent(seed: int = 0, **changes) -> tuple[Diamond, gym.Env]:
    config = DiamondConfig(**{**TINY, **changes}, seed=seed)
    env = Diamond.make_env(config, GAME)
    return Diamond(config, env.observation_space, env.action_space), env


def test_schedule_acts_at_random_then_trains_an_epoch_every_steps_per_epoch():
    torch.set_num_threads(1)
    agent, env = make_agent()
    rows = agent.train(env, steps=79)
    assert agent.epochs == 0 and agent.world_model_steps == 0
    rows += agent.train(env, steps=205)  # epochs at steps 80, 120, 160 and 200
    assert agent.epochs == 4
    assert (agent.world_model_steps, agent.reward_model_steps, agent.actor_critic_steps) == (4 + 3 * 2, 4 + 3 * 2, 3 + 3 * 2)
    finished = sum(row["steps"] + 1 for row in rows)  # each step's frame and each episode's last, of the finished episodes
    assert len(agent.replay) - finished < agent.total_steps - sum(row["steps"] for row in rows) + 1  # and the rows of the one under way
    assert agent.replay.finished == finished


def test_world_and_reward_models_learn_from_the_replay():
    torch.set_num_threads(1)
    agent, env = make_agent(seed=1, first_world_model_updates=0, first_reward_updates=0, first_actor_updates=0)
    agent.train(env, steps=300)
    with seeded(0):
        held_out = agent.replay.sample(32, 5)

    def losses() -> tuple[float, float]:
        with seeded(1), torch.no_grad():
            world = agent.world_model.training_losses(held_out)["loss"].item()
            reward = agent.reward_model.training_losses(held_out)["loss"].item()
        return world, reward

    before = losses()
    agent.config.world_model_updates = agent.config.reward_updates = 60
    agent.config.world_model_learning_rate = agent.config.reward_learning_rate = 3e-3
    agent.epochs = 1  # later epochs' counts
    with seeded(2):
        agent.train_epoch()
    after = losses()
    assert after[0] < 0.8 * before[0], (before, after)
    assert after[1] < 0.8 * before[1], (before, after)


def test_checkpoint_round_trips_and_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    agent, env = make_agent(seed=2)
    agent.train(env, steps=150)  # stops mid-episode: the unfinished episode is played again
    loaded = load_agent(agent.save(tmp_path / "diamond.safetensors"))
    assert isinstance(loaded, Diamond) and loaded.task_id == GAME and loaded.epochs == agent.epochs
    stored = agent.state_dict()
    assert stored.keys() == loaded.state_dict().keys()
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, stored[name], err_msg=name)
    agent.train(env, steps=250)
    loaded.train(Diamond.make_env(loaded.config, GAME), steps=250)
    assert agent.epochs >= 4
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, agent.state_dict()[name], err_msg=name)


def test_evaluation_plays_whole_games_and_leaves_training_untouched():
    torch.set_num_threads(1)
    agent, env = make_agent(seed=3)
    agent.train(env, steps=100)
    before = {name: value.copy() for name, value in agent.state_dict().items()}
    whole_games = Diamond.make_env(DiamondConfig(**TINY, life_loss_ends=False), GAME)
    returns = agent.evaluate(whole_games, episodes=1, seed=7)
    assert len(returns) == 1 and returns == agent.evaluate(whole_games, episodes=1, seed=7)
    for name, value in agent.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_agent_command_trains_and_resumes(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    overrides = [f"{key}={value}" for key, value in TINY.items() if not isinstance(value, list)] + ["actor_channels=[8,8]", "channels=[8,8]"]
    assert main(["agent", "diamond", "--env", GAME, *overrides, "steps=120", "--out", str(out)]) == 0
    first = list(csv.DictReader((out / "metrics.csv").open()))
    assert main(["agent", "diamond", "--env", GAME, *overrides, "steps=200", "--out", str(out)]) == 0
    assert "resuming diamond" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows[: len(first)] == first and int(rows[-1]["total_steps"]) > int(first[-1]["total_steps"])
    assert int(rows[-1]["backups"]) > 0  # actor-critic updates in imagination


def test_refuses_spaces_it_cannot_play():
    config = DiamondConfig(**TINY)
    with pytest.raises(TypeError, match="square RGB frames"):
        Diamond(config, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    with pytest.raises(TypeError, match="configured for 16 px"):
        Diamond(config, gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), gym.spaces.Discrete(2))
    with pytest.raises(TypeError, match="Discrete action space"):
        Diamond(config, gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), gym.spaces.Box(-1, 1, (2,)))
