"""SVG: Pendulum's known reward, noise inference that reproduces real data, the value gradient of
SVG(inf) against finite differences, short training runs of both variants, exact checkpoints, and
the `reverie agent svg` command."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

from reverie.envs.model_tasks import model_task
from reverie.agents.registry import load_agent
from reverie.agents.svg import SVG, SVGConfig, at_data, infer_model_noise, model_step
from reverie.cli.main import main

PENDULUM = "Pendulum-v1"
TINY = dict(hidden=16, layers=1, model_hidden=32, model_layers=2, batch_size=32, learning_starts=100)


def make_agent(**changes) -> tuple[SVG, gym.Env]:
    torch.set_num_threads(1)
    env = gym.make(PENDULUM)
    return SVG(SVGConfig(**{**TINY, **changes}), env.observation_space, env.action_space, task=PENDULUM), env


def test_pendulum_reward_matches_the_environment():
    env, task = gym.make(PENDULUM), model_task(PENDULUM)
    observation, _ = env.reset(seed=0)
    for action in np.linspace(-2, 2, 7, dtype=np.float32)[:, None]:
        next_observation, reward, *_ = env.step(action)
        predicted = task.reward_fn(torch.as_tensor(observation), torch.as_tensor(action), torch.as_tensor(next_observation))
        assert predicted.item() == pytest.approx(reward, abs=1e-5)
        observation = next_observation


def test_inferred_noise_reproduces_actions_and_transitions():
    agent, env = make_agent(members=3)
    agent.train(env, episodes=1)
    data = {name: torch.as_tensor(array) for name, array in agent.replay.arrays().items()}
    states, actions, next_states = data["observations"], data["actions"], data["next_observations"]
    with torch.no_grad():
        policy_noise = agent.policy.infer_noise(states, actions)
        torch.testing.assert_close(agent.policy.act(states, policy_noise), actions, atol=1e-4, rtol=0)
        model_noise = infer_model_noise(agent.model, agent.model_inputs(states, actions), next_states - states)
        assert model_noise.shape == (3, 200, 3)
        replayed = model_step(agent.model, agent.task, states, actions, model_noise)
    torch.testing.assert_close(replayed, next_states.expand(3, -1, -1), atol=1e-4, rtol=0)


def test_at_data_keeps_values_and_passes_gradients():
    parameter = torch.tensor(2.0, requires_grad=True)
    value = at_data(parameter**2, torch.tensor(5.0))
    value.backward()
    assert value.item() == 5.0 and parameter.grad.item() == 4.0


@pytest.mark.parametrize("window", [0, 4])
def test_svg_inf_gradient_is_the_derivative_of_the_model_return(window):
    """On a trajectory the model generated itself, the backpropagated value gradient equals the
    finite-difference derivative of the return of re-running model and policy with the same noise;
    with a backprop window, each block of `window` steps is re-run from the trajectory's own state
    at the block's start. The agent trains its episode in float32, then the check runs in float64 so
    that it tests the gradient, not rounding: central differences of step 1e-5 agree with it to
    about 1e-8 relative there, where float32's (step 1e-3) were up to 5% off."""
    agent, env = make_agent(variant="svg_inf", backprop_window=window)
    agent.train(env, episodes=1)
    agent.policy.double()
    agent.model.double()
    generator, double, horizon = torch.Generator().manual_seed(0), torch.float64, 15
    policy_noise = torch.randn(horizon, 1, generator=generator, dtype=double)
    model_noise = torch.randn(1, horizon, 3, generator=generator, dtype=double)
    recorded: dict = {}

    def model_return() -> tuple[torch.Tensor, dict]:
        state = torch.as_tensor(agent.replay.observations[:1], dtype=double)
        total, rows = 0.0, {"observations": [], "actions": [], "next_observations": []}
        for step in range(horizon):
            if recorded and window and step % window == 0:
                state = recorded["observations"][step : step + 1]
            action = agent.policy.act(state, policy_noise[step])
            next_state = model_step(agent.model, agent.task, state, action, model_noise[:, step : step + 1])[0]
            total = total + agent.config.discount**step * agent.task.reward_fn(state, action, next_state)
            for name, value in zip(rows, (state, action, next_state)):
                rows[name].append(value[0].detach())
            state = next_state
        return total.sum() / horizon, {name: torch.stack(values) for name, values in rows.items()}

    with torch.no_grad():
        _, trajectory = model_return()
    recorded.update(trajectory)
    weight = agent.policy.net[-1].weight  # (2A, hidden): the mean's and the log std's rows
    agent.config.grad_clip, agent.config.entropy_weight = 1e9, 0.0
    before = {name: value.clone() for name, value in agent.policy.state_dict().items()}
    agent.optimizers["policy"] = torch.optim.SGD(agent.policy.parameters(), lr=1.0)
    agent.svg_inf_update(trajectory)
    gradient = -(weight.detach() - before["net.2.weight"])  # one SGD step of lr 1 on the loss -return
    agent.policy.load_state_dict(before)
    finite_differences, epsilon = torch.zeros_like(gradient), 1e-5
    with torch.no_grad():
        for index in np.ndindex(*weight.shape):
            original = weight[index].item()
            weight[index] = original + epsilon
            upper, _ = model_return()
            weight[index] = original - epsilon
            lower, _ = model_return()
            weight[index] = original
            finite_differences[index] = -(upper - lower) / (2 * epsilon)
    torch.testing.assert_close(gradient, finite_differences, rtol=1e-6, atol=1e-8)


def test_model_likelihood_steps_lower_the_model_loss():
    agent, env = make_agent(learning_starts=10**9)  # collect one episode without learning
    agent.train(env, episodes=1)
    agent.set_normaliser()
    before = agent.model_loss()
    losses = [agent.update_model() for _ in range(300)]
    assert agent.model_loss() < before - 1 and np.mean(losses[-50:]) < np.mean(losses[:50])


def test_a_policy_step_with_a_gradient_that_overflowed_is_skipped():
    agent, _ = make_agent()
    before = [parameter.detach().clone() for parameter in agent.policy.parameters()]
    mean, _ = agent.policy(torch.ones(4, 3))
    agent.policy_step((mean * torch.tensor(float("inf"))).sum(), torch.ones(4, 3))  # an infinite gradient
    assert agent.updates == 0
    for parameter, old in zip(agent.policy.parameters(), before):
        torch.testing.assert_close(parameter.detach(), old)
    mean, _ = agent.policy(torch.ones(4, 3))
    agent.policy_step(mean.sum(), torch.ones(4, 3))  # a finite one is taken
    assert agent.updates == 1 and all(torch.isfinite(parameter).all() for parameter in agent.policy.parameters())


def test_mean_penalty_pulls_a_saturated_mean_back_where_tanh_has_a_slope():
    """At a pre-squash mean of 15 the action sits at its bound and tanh' is about 1e-13: the value
    gradient through it is nil, and only the penalty moves the mean back."""
    states = torch.ones(4, 3)
    moved = {}
    for penalty in (0.0, 1e-3):
        agent, _ = make_agent(mean_penalty=penalty)
        with torch.no_grad():
            agent.policy.net[-1].bias[0] = 15.0
            before = agent.policy(states)[0].mean().item()
        for _ in range(50):
            agent.policy_step(agent.policy.act(states, torch.zeros(4, 1)).sum(), states)
        moved[penalty] = agent.policy(states)[0].mean().item() - before
    assert abs(moved[0.0]) < 1e-3 and moved[1e-3] < -0.05, moved


@pytest.mark.parametrize("variant", ["svg_1", "svg_inf"])
def test_train_lowers_model_loss_and_checkpoint_round_trips(tmp_path, variant):
    agent, env = make_agent(variant=variant, seed=2)
    rows = agent.train(env, episodes=3)
    assert [row["total_steps"] for row in rows] == [200, 400, 600] and agent.updates > 0
    assert rows[-1]["model_loss"] < rows[0]["model_loss"]
    path = agent.save(tmp_path / "svg.safetensors")
    loaded = load_agent(path)
    assert isinstance(loaded, SVG) and loaded.config.variant == variant and len(loaded.replay) == 600
    for name, array in agent.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], array, err_msg=name)
    observation, _ = env.reset(seed=11)
    for _ in range(3):  # same networks and random streams: the same actions
        action, _ = agent.act(observation)
        np.testing.assert_array_equal(loaded.act(observation)[0], action)
        assert env.action_space.contains(action)
        observation, *_ = env.step(action)


@pytest.mark.parametrize("changes", [{}, {"variant": "svg_inf", "backprop_window": 25}])
def test_resumed_training_matches_an_uninterrupted_run(tmp_path, changes):
    straight, _ = make_agent(seed=5, **changes)
    straight_rows = straight.train(gym.make(PENDULUM), episodes=2)
    first, _ = make_agent(seed=5, **changes)
    first.train(gym.make(PENDULUM), episodes=1)
    resumed = load_agent(first.save(tmp_path / "svg.safetensors"))
    resumed_rows = resumed.train(gym.make(PENDULUM), episodes=2)
    assert resumed_rows[-1]["return"] == straight_rows[-1]["return"]
    np.testing.assert_array_equal(resumed.state_dict()["policy.net.0.weight"], straight.state_dict()["policy.net.0.weight"])


def test_config_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="svg_2"):
        SVGConfig(variant="svg_2")


def test_agent_command_runs_svg(tmp_path):
    tiny = [f"{key}={value}" for key, value in TINY.items()]
    assert main(["agent", "svg", "--env", PENDULUM, "episodes=1", "variant=svg_inf", *tiny, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(row["episode"]) for row in rows] == [1] and int(rows[0]["steps"]) == 200
    agent = load_agent(tmp_path / "checkpoint.safetensors")
    assert agent.episodes == 1 and agent.config.variant == "svg_inf" and agent.updates == 1


def pendulum_run(config: SVGConfig, steps: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Train on Pendulum-v1 for `steps` steps: (episode returns, their 10-episode running means)."""
    torch.set_num_threads(1)
    env = gym.make(PENDULUM)
    agent = SVG(config, env.observation_space, env.action_space)
    returns = np.array([row["return"] for row in agent.train(env, steps=steps)])
    return returns, np.convolve(returns, np.ones(10) / 10, mode="valid")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_svg_1_learns_the_pendulum_swing_up():
    """SVG(1)-ER's claim at small scale, the bars all 3 benchmark seeds met: the 10-episode mean
    return reaches -200 (a swing-up held) within 20k real steps (100 episodes), and the last 10
    episodes average at least -300. The benchmark's settings (policy_lr 1e-3, log-std floor -1) on
    seed 2, the seed that reached -200 last (benchmarks/results/svg.json: at 10.0k steps, against
    8.0k and 9.4k on seeds 0 and 1; its last 10 episodes -249, against -145 and -147); random and
    early policies score -1000 to -1700. 20k steps: about 5 CPU minutes."""
    returns, ten_episode_means = pendulum_run(SVGConfig(policy_lr=1e-3, min_log_std=-1.0, seed=2))
    assert ten_episode_means.max() >= -200 and returns[-10:].mean() >= -300, returns.round().tolist()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_svg_inf_learns_the_pendulum_swing_up():
    """SVG(inf)'s bar, met by all 3 benchmark seeds: the 10-episode mean return reaches -200 within
    20k real steps. The benchmark's settings (10 policy steps per trajectory, 25-step backprop
    blocks, mean penalty 0.01) on seed 1, the seed that reached it last (benchmarks/results/svg.json:
    at 15.0k steps, against 12.6k and 12.4k on seeds 0 and 2). No bar on the last 10 episodes: the
    earlier one, -400, held on seeds 0 and 2 only (-238 / -410 / -207). 20k steps: about 12 CPU
    minutes."""
    config = SVGConfig(variant="svg_inf", policy_lr=1e-3, updates_per_episode=10, backprop_window=25, mean_penalty=0.01, seed=1)
    returns, ten_episode_means = pendulum_run(config)
    assert ten_episode_means.max() >= -200, returns.round().tolist()
