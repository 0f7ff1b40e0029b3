"""MBPO: per-row member sampling, a short run through Alg. 2's schedule on InvertedPendulum, the
model fit, exact checkpoints and resume, and the `reverie agent mbpo` command."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

from reverie.agents.mbpo import MBPO, MBPOConfig, sample_members
from reverie.agents.registry import load_agent
from reverie.cli.main import main

PENDULUM = "InvertedPendulum-v5"
TINY = dict(
    members=4, elites=3, hidden=32, layers=2, model_batch_size=64, model_epochs=2, model_every=100, random_steps=100,
    rollouts_per_step=4, rollout_length=2, model_retain_steps=200, updates_per_step=2, batch_size=64, sac_hidden=32,
)


class MemberIndex:
    """A stand-in ensemble: member b predicts b for every row."""

    members = 4

    def sample(self, inputs, generator=None):  # (E, B, F) -> (E, B, 1)
        return torch.arange(self.members, dtype=inputs.dtype).view(-1, 1, 1).expand(-1, inputs.shape[1], 1)


def make_agent(seed: int = 0, **changes) -> tuple[MBPO, gym.Env]:
    env = gym.make(PENDULUM)
    return MBPO(MBPOConfig(**{**TINY, **changes}, seed=seed), env.observation_space, env.action_space), env


def test_each_row_is_drawn_from_its_own_member():
    members = torch.tensor([2, 0, 2, 3, 2, 0, 1])
    drawn = sample_members(MemberIndex(), torch.randn(7, 5), members, None)
    torch.testing.assert_close(drawn[:, 0], members.float())


def test_config_rejects_more_elites_than_members():
    with pytest.raises(ValueError, match="elites=6"):
        MBPOConfig(members=5, elites=6)


def test_schedule_fills_the_model_buffer_and_drives_sac():
    torch.set_num_threads(1)
    agent, env = make_agent(seed=1, eval_every=150)
    agent.train(env, steps=250)
    config = agent.config
    assert len(agent.replay) == 250 and len(agent.elites) == config.elites
    # rounds at steps 100 and 200, each branching M * model_every rollouts of up to k steps
    assert 2 * config.rollouts_per_step * config.model_every <= len(agent.model_replay) <= config.rollouts_per_step * config.rollout_length * config.model_retain_steps
    assert agent.sac.updates == config.updates_per_step * 151  # G per step from the first model on
    assert [steps for steps, _ in agent.evaluations] == [150] and agent.evaluations[0][1] >= 1
    batch = agent.policy_batch()
    assert batch["observations"].shape == (config.batch_size, 4) and batch["rewards"].shape == (config.batch_size,)
    model_rows = agent.model_replay.arrays()  # known reward: 1 while the pole is up, else the rollout ends
    np.testing.assert_array_equal(model_rows["rewards"], (~model_rows["terminated"]).astype(np.float32))


def test_model_loss_falls_as_the_ensemble_fits_the_collected_data():
    torch.set_num_threads(1)
    agent, env = make_agent(seed=2, random_steps=300, model_every=300, model_epochs=1)
    agent.train(env, steps=300)  # one random-action collection, then the first fit
    first = agent.model_loss
    fits = [agent.fit_model() for _ in range(6)]
    assert fits[-1]["loss"] < first - 1.0, (first, [fit["loss"] for fit in fits])
    assert fits[-1]["holdout_mse"] < fits[0]["holdout_mse"]


def test_checkpoint_round_trips_and_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    agent, env = make_agent(seed=3)
    agent.train(env, steps=160)
    loaded = load_agent(agent.save(tmp_path / "mbpo.safetensors"))
    assert isinstance(loaded, MBPO) and loaded.task_id == PENDULUM and loaded.elites == agent.elites
    stored = agent.state_dict()
    assert stored.keys() == loaded.state_dict().keys()
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, stored[name], err_msg=name)
    observation, _ = env.reset(seed=5)
    for deterministic in (True, False, False):
        np.testing.assert_array_equal(loaded.act(observation, deterministic), agent.act(observation, deterministic))
    agent.train(env, steps=230)  # past a model refit and rollout round at step 200
    loaded.train(gym.make(PENDULUM), steps=230)
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, agent.state_dict()[name], err_msg=name)


def test_paper_config_fits_branches_and_updates():
    torch.set_num_threads(1)
    env = gym.make(PENDULUM)
    agent = MBPO(MBPOConfig(rollouts_per_step=2), env.observation_space, env.action_space, task=PENDULUM)  # 7 x (4 x 200) members
    observation, _ = env.reset(seed=0)
    for _ in range(300):
        action = agent.act(observation)
        next_observation, reward, terminated, truncated, _ = env.step(action)
        agent.replay.add(observation, action, reward, next_observation, terminated)
        observation = env.reset()[0] if terminated or truncated else next_observation
    agent.config.model_epochs = 1
    assert np.isfinite(agent.fit_model()["loss"]) and len(agent.elites) == 5
    assert agent.branch_rollouts() == 2 * 250
    metrics = agent.sac.update(agent.policy_batch())
    assert all(np.isfinite(value) for value in metrics.values())


def test_agent_command_runs_mbpo(tmp_path):
    tiny = [f"{key}={value}" for key, value in TINY.items()]
    assert main(["agent", "mbpo", "--env", PENDULUM, "steps=150", *tiny, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert rows and int(rows[-1]["total_steps"]) <= 150
    agent = load_agent(tmp_path / "checkpoint.safetensors")
    assert agent.total_steps == 150 and agent.config.hidden == 32 and agent.sac.updates == 2 * 51


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
def test_inverted_pendulum_reaches_900_within_15k_steps():
    """The issue's claim with the benchmark's CPU settings (`CPU` in benchmarks/agents/mbpo.py), as
    all 3 benchmark seeds met it: a deterministic evaluation of at least 900 within 15k environment
    steps. Seed 1, which with seed 2 reached it last (benchmarks/results/mbpo.json: first at 2.5k /
    3k / 3k steps on seeds 0-2, then 1000 at every evaluation to 15k)."""
    torch.set_num_threads(1)
    env = gym.make(PENDULUM)
    cpu = dict(hidden=64, layers=3, rollouts_per_step=100, updates_per_step=10, sac_hidden=64, target_entropy=-0.05)
    agent = MBPO(MBPOConfig(**cpu, eval_every=500, eval_episodes=3, seed=1), env.observation_space, env.action_space)
    agent.train(env, steps=15_000)
    assert max(value for _, value in agent.evaluations) >= 900, agent.evaluations
