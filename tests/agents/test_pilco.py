"""PILCO: the cart-pole's physics and cost, moment matching against sampling, the analytic policy
gradient against finite differences, a short training run, exact checkpoints, and the
`reverie agent pilco` command."""

from __future__ import annotations

import csv
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from reverie.envs.model_tasks import MODEL_TASKS
from reverie.envs.pilco_cartpole import integrate, pilco_cartpole_model_input
from reverie.agents.gp import ExactGP, squared_exponential
from reverie.agents.pilco import PILCO, PILCO_TASKS, PILCOConfig, PILCOModel, RBFPolicy, append_sin_cos
from reverie.agents.registry import load_agent
from reverie.cli.main import main

CARTPOLE = "reverie/PilcoCartpole-v0"
TINY = dict(policy_evaluations=6, gp_iterations=30, horizon=10)
DOUBLE = torch.float64


def gaussian(dim: int, seed: int, scale: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    factor = scale * torch.randn(dim, dim, generator=generator, dtype=DOUBLE)
    return torch.randn(dim, generator=generator, dtype=DOUBLE) * 0.5, factor @ factor.T + 0.01 * torch.eye(dim, dtype=DOUBLE)


def sampled_moments(samples: torch.Tensor, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    centred_in, centred_out = samples - samples.mean(0), outputs - outputs.mean(0)
    return outputs.mean(0), torch.cov(outputs.T).reshape(outputs.shape[1], -1), centred_in.T @ centred_out / len(samples)


def test_env_integrates_finely_and_rewards_the_upright_tip():
    state = np.array([0.1, -0.3, 2.0, 1.5])
    fine, coarse = integrate(state, 4.0, substeps=200), integrate(state, 4.0, substeps=10)
    np.testing.assert_allclose(coarse, fine, atol=1e-5)
    env = gym.make(CARTPOLE)
    env.reset(seed=0)
    upright = np.array([0.0, 0.0, math.pi, 0.0])  # over the origin: a fixed point
    env.unwrapped.state = upright
    observation, reward, *_ = env.step(np.zeros(1))
    assert reward == pytest.approx(1.0) and np.abs(observation - upright).max() < 1e-9
    observation, _ = env.reset(seed=1)
    steps = 0
    for steps in range(1, 100):
        _, _, terminated, truncated, _ = env.step(np.array([10.0]))
        if terminated or truncated:
            break
    assert steps == 40 and not terminated  # 4 s of 0.1 s steps, then truncated


def test_model_features_match_the_task_model_input():
    model = PILCOModel(PILCO_TASKS[CARTPOLE], 4, torch.tensor([10.0], dtype=DOUBLE))
    states = torch.randn(7, 4, dtype=DOUBLE)
    torch.testing.assert_close(model.features(states), pilco_cartpole_model_input(states))
    torch.testing.assert_close(MODEL_TASKS[CARTPOLE].model_input(states), pilco_cartpole_model_input(states))
    upright = torch.tensor([[0.0, 0.0, math.pi, 0.0], [0.3, 0.0, 0.0, 0.0]], dtype=DOUBLE)
    torch.testing.assert_close(model.cost_distance(upright), torch.tensor([0.0, math.hypot(0.3, 1.2)], dtype=DOUBLE))


def test_trig_moments_match_sampling():
    mean, covariance = gaussian(3, seed=0, scale=0.6)
    joint_mean, joint_cov = append_sin_cos(mean, covariance, index=1, scale=2.0)
    samples = torch.distributions.MultivariateNormal(mean, covariance).sample((400_000,))
    angles = samples[:, 1:2]
    joint_samples = torch.cat([samples, 2 * torch.sin(angles), 2 * torch.cos(angles)], dim=1)
    torch.testing.assert_close(joint_mean, joint_samples.mean(0), atol=0.01, rtol=0)
    torch.testing.assert_close(joint_cov, torch.cov(joint_samples.T), atol=0.02, rtol=0)


def test_gp_moment_matching_matches_sampling():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(50, 3, generator=generator, dtype=DOUBLE)
    targets = torch.stack([torch.sin(inputs[:, 0]) + 0.5 * inputs[:, 1], torch.cos(inputs[:, 1]) * inputs[:, 2]], dim=1)
    gp = ExactGP(3, 2)
    gp.fit(inputs, targets + 0.01 * torch.randn(50, 2, generator=generator, dtype=DOUBLE), iterations=50)
    posterior = gp.posterior()
    mean, covariance = gaussian(3, seed=1)
    matched = posterior.moment_match(mean, covariance)
    samples = torch.distributions.MultivariateNormal(mean, covariance).sample((100_000,))
    predicted = posterior.mean(samples)
    sampled_mean, sampled_cov, sampled_cross = sampled_moments(samples, predicted)
    log_lengthscales, log_signal, _ = gp.unpack(gp.log_hyperparameters)
    kernel = squared_exponential(samples, inputs, log_lengthscales, log_signal)  # (E, B, N)
    latent_variance = torch.exp(2 * log_signal)[:, None] - torch.einsum("ebn,enm,ebm->eb", kernel, posterior.inverse_gram, kernel)
    torch.testing.assert_close(matched.mean, sampled_mean, atol=0.01, rtol=0)
    torch.testing.assert_close(matched.covariance, sampled_cov + torch.diag(latent_variance.mean(1)), atol=0.01, rtol=0)
    torch.testing.assert_close(covariance @ matched.input_output, sampled_cross, atol=0.01, rtol=0)


def test_expected_saturating_cost_matches_sampling():
    model = PILCOModel(PILCO_TASKS[CARTPOLE], 4, torch.tensor([10.0], dtype=DOUBLE))
    mean = torch.tensor([0.1, 0.0, 2.9, 0.2], dtype=DOUBLE)
    tiny = 1e-10 * torch.eye(4, dtype=DOUBLE)
    exact = 1 - math.exp(-model.cost_distance(mean).item() ** 2 / (2 * 0.25**2))
    assert model.expected_cost(mean, tiny).item() == pytest.approx(exact, abs=1e-6)
    covariance = torch.diag(torch.tensor([0.01, 0.1, 0.0025, 0.1], dtype=DOUBLE))
    samples = torch.distributions.MultivariateNormal(mean, covariance).sample((200_000,))
    sampled = (1 - torch.exp(-model.cost_distance(samples) ** 2 / (2 * 0.25**2))).mean()
    assert model.expected_cost(mean, covariance).item() == pytest.approx(sampled.item(), abs=0.01)


def test_policy_gradient_is_the_analytic_derivative_of_the_predicted_cost():
    torch.set_num_threads(1)
    env = gym.make(CARTPOLE)
    agent = PILCO(PILCOConfig(**TINY, seed=1), env.observation_space, env.action_space)
    agent.train(env, episodes=1)
    dynamics = agent.dynamics.posterior()
    centres, pseudo_targets, log_lengthscales = agent.policy.parameters()

    def cost(targets: torch.Tensor) -> torch.Tensor:
        return agent.model.trial_cost(agent.policy.posterior([centres, targets, log_lengthscales]), dynamics, horizon=4, recompute=True)

    # float64 throughout. The gradient's entries are 3e-5 to 2e-3, and the cost carries rounding of
    # about 1e-12: a step of 1e-4 keeps both it and the truncation error near 1e-8, well inside
    # atol 1e-7 (a step of 1e-6 turns that rounding into errors of 7e-7, which the old atol 1e-5 hid)
    assert torch.autograd.gradcheck(cost, (pseudo_targets.clone().requires_grad_(True),), eps=1e-4, atol=1e-7, rtol=1e-4)


def test_train_lowers_losses_and_checkpoint_round_trips(tmp_path):
    torch.set_num_threads(1)
    env = gym.make(CARTPOLE)
    agent = PILCO(PILCOConfig(**TINY, seed=3), env.observation_space, env.action_space)
    rows = agent.train(env, episodes=2)  # one random trial, one with the learned policy
    assert [row["steps"] for row in rows] == [40, 40] and agent.total_steps == 80
    for row in rows:
        assert row["model_loss"] < row["model_loss_before"]  # the marginal likelihood rose
    assert rows[-1]["predicted_cost"] < agent.config.horizon and agent.policy_evaluations > 0
    assert rows[-1]["interaction_seconds"] == pytest.approx(8.0)
    path = agent.save(tmp_path / "pilco.safetensors")
    loaded = load_agent(path)
    assert isinstance(loaded, PILCO) and loaded.task_id == CARTPOLE and len(loaded.replay) == 80
    for name, array in agent.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], array, err_msg=name)
    observation, _ = env.reset(seed=11)
    for _ in range(5):  # the same policy: the same actions
        action = agent.act(observation)
        np.testing.assert_array_equal(loaded.act(observation), action)
        assert env.action_space.contains(action.astype(np.float32))
        observation, *_ = env.step(action)
    assert loaded.predicted_cost() == agent.predicted_cost()  # same GP data and hyperparameters


def test_policy_improvement_lowers_the_predicted_cost():
    torch.set_num_threads(1)
    env = gym.make(CARTPOLE)
    agent = PILCO(PILCOConfig(**TINY, seed=0), env.observation_space, env.action_space)
    agent.train(env, episodes=1)
    agent.policy = RBFPolicy(agent.model, 10, 0.01, torch.Generator().manual_seed(5))
    result = agent.improve_policy()
    assert result["cost"] < result["cost_before"] - 1e-3
    assert agent.predicted_cost() == pytest.approx(result["cost"])


def test_agent_command_runs_pilco(tmp_path):
    overrides = [f"{key}={value}" for key, value in TINY.items()]
    assert main(["agent", "pilco", "--env", CARTPOLE, "episodes=2", *overrides, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(row["episode"]) for row in rows] == [1, 2] and int(rows[-1]["total_steps"]) == 80
    agent = load_agent(tmp_path / "checkpoint.safetensors")
    assert agent.episodes == 2 and agent.config.horizon == 10 and agent.policy_evaluations > 0


@pytest.mark.slow
@pytest.mark.timeout(12 * 3600)
def test_cartpole_swings_up_within_15_trials_in_3_of_5_seeds():
    """The paper's claim (its cart-pole experiment): one random trial, then the learned policy swings the pole up and
    holds it (tip within 0.15 m of upright over the trial's last second) within 15 trials, here in
    at least 3 of 5 seeds. Hours on a CPU; `benchmarks/agents/pilco.py` runs the same and reports
    (benchmarks/results/pilco.json; with at most 100 L-BFGS evaluations per improvement, seeds 0
    and 2 succeeded at trial 6, i.e. after 24 s of interaction)."""
    torch.set_num_threads(1)
    env = gym.make(CARTPOLE)
    successes = 0
    for seed in range(5):
        agent = PILCO(PILCOConfig(seed=seed), env.observation_space, env.action_space)
        while agent.episodes < 16:  # trial 1 is random, trials 2..16 the 15 learned ones
            row = agent.train(env, episodes=agent.episodes + 1)[-1]
            if row["episode"] > 1 and row["success"]:
                successes += 1
                break
    assert successes >= 3
