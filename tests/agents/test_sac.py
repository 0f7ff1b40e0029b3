"""SAC: the squashed-Gaussian log-likelihood, the Polyak step, learning a one-step task, and an
exact restore of the learner."""

from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from reverie.agents.sac import SAC, SACConfig

TINY = SACConfig(hidden=32, layers=2, learning_rate=3e-3)


def make_sac(seed: int = 0, config: SACConfig = TINY) -> SAC:
    return SAC(config, observation_dim=2, low=np.array([-2.0], np.float32), high=np.array([2.0], np.float32), generator=torch.Generator().manual_seed(seed))


def bandit_batch(generator: torch.Generator, size: int = 128) -> dict[str, torch.Tensor]:
    """One-step episodes: reward -(a - 1)^2 whatever the observation, then the episode ends."""
    actions = torch.rand(size, 1, generator=generator) * 4 - 2
    return {
        "observations": torch.randn(size, 2, generator=generator), "actions": actions,
        "rewards": -((actions[:, 0] - 1.0) ** 2), "next_observations": torch.randn(size, 2, generator=generator),
        "terminated": torch.ones(size, dtype=torch.bool),
    }


def test_log_prob_matches_a_tanh_transformed_gaussian():
    sac = make_sac()
    observations = torch.randn(64, 2)
    actions, log_prob = sac.actor(observations, torch.Generator().manual_seed(1))
    mean, log_std = sac.actor.body(observations).chunk(2, dim=-1)
    reference = TransformedDistribution(Normal(mean, log_std.clamp(-5, 2).exp()), TanhTransform())
    torch.testing.assert_close(log_prob, reference.log_prob(actions.clamp(-0.999999, 0.999999)).sum(-1), atol=1e-3, rtol=1e-3)
    assert actions.abs().max() < 1


def test_target_critic_moves_by_tau_toward_the_critic():
    sac = make_sac(config=SACConfig(hidden=16, tau=0.1))
    old_target = [value.clone() for value in sac.target_critic.parameters()]
    sac.update(bandit_batch(torch.Generator().manual_seed(0)))
    for old, target, value in zip(old_target, sac.target_critic.parameters(), sac.critic.parameters()):
        torch.testing.assert_close(target, 0.9 * old + 0.1 * value)


def test_learns_the_best_action_of_a_one_step_task():
    torch.set_num_threads(1)
    sac = make_sac()
    data = torch.Generator().manual_seed(2)
    losses = [sac.update(bandit_batch(data))["critic_loss"] for _ in range(400)]
    assert np.mean(losses[-50:]) < 0.2 * np.mean(losses[:50])
    best = sac.act(torch.randn(32, 2), deterministic=True)
    assert (best - 1.0).abs().max() < 0.25, best.squeeze()
    assert sac.alpha < 1.0  # the entropy term gave way as the policy sharpened


def test_restored_learner_acts_and_updates_identically():
    sac, data = make_sac(seed=3), torch.Generator().manual_seed(4)
    for _ in range(5):
        sac.update(bandit_batch(data))
    restored = make_sac(seed=99)
    restored.load_state_dict({name: value.copy() for name, value in sac.state_dict().items()})
    observations = torch.randn(8, 2)
    torch.testing.assert_close(restored.act(observations), sac.act(observations), rtol=0, atol=0)
    batch = bandit_batch(data)
    assert restored.update(batch) == sac.update(batch)
    for name, value in sac.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[name], value, err_msg=name)
