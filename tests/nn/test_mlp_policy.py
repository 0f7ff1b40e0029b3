"""The `mlp_policy` model folder: layer sizes from its config, discrete actions as the argmax from
the space's start, box actions squashed into their bounds, and a save and reload that acts the same."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.nn.policies import MLPPolicy, MLPPolicyConfig
from reverie.shards.episodes import describe_space

BOX = gym.spaces.Box(np.array([-1.0, 0.0, 2.0], np.float32), np.array([1.0, 4.0, 3.0], np.float32))


def policy(action_space: gym.Space, observation_dim: int = 5, hidden=(8, 8), seed: int = 0) -> MLPPolicy:
    torch.manual_seed(seed)
    return MLPPolicy(MLPPolicyConfig(observation_dim, describe_space(action_space), list(hidden))).eval()


def observations(count: int, dim: int = 5) -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 2.0, size=(count, dim))


def test_layers_follow_the_config():
    linears = [layer for layer in policy(BOX, hidden=(7, 3)).net if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(5, 7), (7, 3), (3, 3)]
    assert [(layer.in_features, layer.out_features) for layer in policy(gym.spaces.Discrete(4), hidden=()).net] == [(5, 4)]


def test_discrete_actions_are_the_argmax_counted_from_the_spaces_start():
    model = policy(gym.spaces.Discrete(4, start=10))
    actions = []
    for observation in observations(50):
        logits = model(torch.as_tensor(observation, dtype=torch.float32)[None])[0]
        action = model.act(observation)
        assert isinstance(action, int) and action == int(logits.argmax()) + 10
        actions.append(action)
    assert set(actions) <= set(range(10, 14)) and len(set(actions)) > 1


def test_box_actions_are_squashed_into_the_bounds():
    model = policy(BOX)
    actions = np.stack([model.act(observation) for observation in 100 * observations(50)])  # large inputs saturate tanh
    assert actions.shape == (50, 3) and actions.dtype == np.float32
    assert (actions >= BOX.low).all() and (actions <= BOX.high).all()
    last = model.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 20.0, -20.0]))  # tanh: 0, 1, -1
    np.testing.assert_allclose(model.act(np.zeros(5)), [0.0, 4.0, 2.0], atol=1e-6)  # the middle, the top, the bottom


def test_box_actions_keep_the_spaces_shape():
    model = policy(gym.spaces.Box(-1.0, 1.0, (2, 3)))
    assert model.act(np.zeros(5)).shape == (2, 3)


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), BOX], ids=["discrete", "box"])
def test_a_saved_and_reloaded_policy_acts_identically(tmp_path, action_space):
    model = policy(action_space, seed=3)
    folder = save_model_folder(model, tmp_path / "policy")
    assert json.loads((folder / "config.json").read_text())["model"] == "mlp_policy"
    loaded = load_model_folder(folder)
    assert type(loaded) is MLPPolicy and loaded.config == model.config and not loaded.training
    for observation in observations(20):
        np.testing.assert_array_equal(loaded.act(observation), model.act(observation))
    other = policy(action_space, seed=4)  # guards the check above: another policy acts otherwise
    assert any(not np.array_equal(other.act(observation), model.act(observation)) for observation in observations(20))


def test_the_model_registry_finds_the_policy_by_name():
    assert MODELS.get("mlp_policy") is MLPPolicy
