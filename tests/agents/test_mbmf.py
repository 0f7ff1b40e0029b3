"""MB-MF: the residual model, random-shooting MPC, the aggregation loop, exact checkpoints, the
imitation and its hand-over to PPO, and the `reverie agent mbmf` command."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

from reverie.envs.model_tasks import model_task
from reverie.agents.mbmf import MBMF, MBMFConfig, ResidualDynamics, shooting_cost
from reverie.agents.mbmf_finetune import FinetuneConfig, GaussianMLPPolicy, behavioural_cloning, copy_into_sb3_actor, imitate, ppo_from_policy
from reverie.agents.registry import load_agent
from reverie.cli.main import main

CHEETAH = "HalfCheetah-v5"
SHORT = 100  # steps per episode in the fast tests
TINY = dict(horizon=3, samples=32, hidden=32, layers=2, batch_size=64, epochs=3, random_episodes=2)


def short_cheetah() -> gym.Env:
    return gym.make(CHEETAH, max_episode_steps=SHORT)


def spaces_of(env: gym.Env) -> tuple[gym.Space, gym.Space]:
    return env.observation_space, env.action_space


def test_half_cheetah_reward_tracks_the_env_reward():
    env, rng = gym.make(CHEETAH), np.random.default_rng(0)
    observation, _ = env.reset(seed=0)
    known, true = [], []
    for _ in range(300):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        next_observation, reward, *_ = env.step(action)
        tensors = [torch.as_tensor(value, dtype=torch.float32) for value in (observation, action, next_observation)]
        known.append(model_task(CHEETAH).reward_fn(*tensors).item())
        true.append(reward)
        observation = next_observation
    window = np.ones(10)
    assert np.corrcoef(np.convolve(known, window, "valid"), np.convolve(true, window, "valid"))[0, 1] > 0.98


def test_residual_model_adds_the_denormalised_delta():
    model = ResidualDynamics(3, 1, hidden=8, layers=1)
    observations, actions = torch.randn(5, 3), torch.randn(5, 1)
    next_observations = observations + 2.0 + 0.1 * torch.randn(5, 3)
    model.set_normaliser(observations, actions, next_observations)
    assert torch.allclose(model.delta_mean, (next_observations - observations).mean(0))
    expected = observations + model(observations, actions) * model.delta_std + model.delta_mean
    torch.testing.assert_close(model.next_observation(observations, actions), expected)


def test_shooting_cost_sums_the_known_reward_and_random_shooting_picks_the_best_sequence():
    env = gym.make(CHEETAH)
    agent = MBMF(MBMFConfig(**TINY), env.observation_space, env.action_space, task=CHEETAH)
    state = torch.zeros(17)
    sequences = torch.rand(4, 3, 6) * 2 - 1
    cost = shooting_cost(agent.model, agent.task, state, sequences)
    states, total = state.expand(4, 17), torch.zeros(4)
    for step in range(3):
        next_states = agent.model.next_observation(states, sequences[:, step])
        total += agent.task.reward_fn(states, sequences[:, step], next_states)
        states = next_states
    torch.testing.assert_close(cost, -total)
    planned = agent.planner.optimize(lambda candidates: shooting_cost(agent.model, agent.task, state, candidates))
    assert agent.planner.config.iterations == 1
    assert planned.energy.item() == pytest.approx(planned.energy_trace.min().item())


def test_train_aggregates_lowers_model_loss_and_checkpoint_round_trips(tmp_path):
    torch.set_num_threads(1)
    env = short_cheetah()
    agent = MBMF(MBMFConfig(**TINY, seed=2), env.observation_space, env.action_space)
    rows = agent.train(env, episodes=4)
    assert [row["mpc"] for row in rows] == [False, False, True, True]
    assert len(agent.random_data) == 2 * SHORT and len(agent.rl_data) == 2 * SHORT and agent.total_steps == 4 * SHORT
    first = agent.fit_model(epochs=1)["loss"]
    assert agent.fit_model(epochs=15)["loss"] < 0.7 * first
    path = agent.save(tmp_path / "mbmf.safetensors")
    loaded = load_agent(path)
    assert isinstance(loaded, MBMF) and loaded.task_id == CHEETAH and loaded.model_steps == agent.model_steps
    for name, value in agent.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)
    observation, _ = env.reset(seed=5)
    for _ in range(3):  # same model and random streams: the same MPC actions
        action = agent.act(observation)
        np.testing.assert_array_equal(loaded.act(observation), action)
        observation, *_ = env.step(action)


def test_resumed_training_matches_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    config = MBMFConfig(**{**TINY, "random_episodes": 1}, seed=4)
    straight = MBMF(config, *spaces_of(short_cheetah()))
    straight.train(short_cheetah(), episodes=3)
    first = MBMF(config, *spaces_of(short_cheetah()))
    first.train(short_cheetah(), episodes=2)
    resumed = load_agent(first.save(tmp_path / "mbmf.safetensors"))
    resumed.train(short_cheetah(), episodes=3)
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)


def test_paper_config_builds_and_plans_one_step():
    torch.set_num_threads(1)
    env = gym.make(CHEETAH)
    agent = MBMF(MBMFConfig(), env.observation_space, env.action_space, task=CHEETAH)  # K = 1000, H = 10, 2 x 500
    observation, _ = env.reset(seed=0)
    action = agent.mpc_action(observation)
    assert env.action_space.contains(action.astype(np.float32))
    assert agent.planner.config.samples == 1000 and agent.planner.config.horizon == 10


def test_imitation_clones_the_expert_and_hands_the_policy_to_ppo():
    torch.set_num_threads(1)
    env = short_cheetah()
    expert = MBMF(MBMFConfig(**TINY), env.observation_space, env.action_space)
    expert.train(env, episodes=3)
    config = FinetuneConfig(hidden=16, epochs=20, dagger_iterations=2, label_every=4)
    policy, rows = imitate(expert, env, config)
    assert [row["total_steps"] for row in rows] == [4 * SHORT, 5 * SHORT]
    data = expert.rl_data.arrays()
    fresh = GaussianMLPPolicy(17, 6, hidden=16, layers=2, log_std=-1.0)
    losses = behavioural_cloning(fresh, torch.as_tensor(data["observations"]), torch.as_tensor(data["actions"]), config, torch.Generator())
    assert losses[-1] < 0.6 * losses[0]
    model = ppo_from_policy(policy, env, seed=0, n_steps=64, batch_size=32)
    observations = torch.randn(8, 17) * 3
    with torch.no_grad():
        sb3_mean = model.policy.get_distribution(observations).distribution.mean
    torch.testing.assert_close(sb3_mean, policy(observations), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.policy.log_std, policy.log_std)


def test_copy_into_sb3_actor_rejects_other_layer_sizes():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", short_cheetah(), device="cpu")
    with pytest.raises(ValueError, match="PPO actor layers"):
        copy_into_sb3_actor(GaussianMLPPolicy(17, 6, hidden=32, layers=2, log_std=0.0), model.policy)


def test_agent_command_runs_mbmf(tmp_path):
    tiny = [f"{key}={value}" for key, value in TINY.items()]
    assert main(["agent", "mbmf", "--env", CHEETAH, "steps=2100", *tiny, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(row["episode"]) for row in rows] == [1, 2]
    agent = load_agent(tmp_path / "checkpoint.safetensors")
    assert agent.episodes == 2 and agent.model_steps > 0 and len(agent.random_data) == 2000


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_half_cheetah_mb_needs_fewer_samples_and_mbmf_beats_ppo_from_scratch():
    """The paper's two claims at the benchmark's "full" budget (benchmarks/agents/mbmf.py), as all 3
    benchmark seeds met them: PPO from scratch never reaches the model-based phase's final return in
    its whole run (51k real steps, over 4x MB's 12k; the paper: about 100x), and MB-MF ends the
    shared budget above PPO from scratch. A final return is the mean of the last 3 episodes. Seed 2,
    where the first claim holds by the least (benchmarks/results/mbmf.json: MB 132.5 against PPO's
    best episode, -137.2); the second holds there about as narrowly as on seed 0 (MB-MF 263.3
    against PPO's -264.1; seed 0: 230.3 against -294.2). The benchmark's seed 2 took 78 minutes
    (MB and MB-MF 71, PPO 7)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("mbmf_benchmark", Path(__file__).parents[2] / "benchmarks/agents/mbmf.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    torch.set_num_threads(1)
    budget, checkpoints = benchmark.BUDGETS["full"]
    runs = benchmark.run_seed(2, budget)
    comparison = benchmark.summarise({f"{method}:2": run for method, run in runs.items()}, checkpoints)["comparisons"][0]
    assert comparison["ppo_steps_to_mb_final"] is None, comparison
    assert comparison["mbmf_final_return"] > comparison["ppo_final_return"], comparison
