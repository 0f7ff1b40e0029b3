"""Checkpoints written by reverie v0.1 still load: each agent restored from its fixture takes the
same next action as the agent that wrote it, and keeps its episode count.

The fixtures (`tests/fixtures/v0.1/agents/`) hold one checkpoint per agent and, in
`expected_actions.json`, the environment it ran on and the action it took next from
`env.reset(seed=observation_seed)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import reverie.envs  # noqa: F401  (registers the reverie/... environments)
from reverie.agents.registry import load_agent

FIXTURES = Path(__file__).parents[1] / "fixtures" / "v0.1" / "agents"
EXPECTED = json.loads((FIXTURES / "expected_actions.json").read_text())


@pytest.mark.parametrize("agent_name", sorted(EXPECTED))
def test_v0_1_checkpoint_takes_the_same_next_action(agent_name):
    expected = EXPECTED[agent_name]
    agent = load_agent(FIXTURES / f"{agent_name}.safetensors")
    env = gym.make(expected["env"], **expected["env_kwargs"])
    observation, _ = env.reset(seed=expected["observation_seed"])
    action = agent.act(observation)
    if isinstance(action, tuple):  # SVG: (action, behaviour log-density)
        action = action[0]
    assert agent.episodes == expected["episodes"]
    if isinstance(env.action_space, gym.spaces.Discrete):
        assert int(action) == expected["action"]
    else:
        np.testing.assert_allclose(np.asarray(action, np.float64), expected["action"], rtol=1e-5, atol=1e-6)
