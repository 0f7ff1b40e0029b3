"""The RSSM of PlaNet and Dreamer: shapes, the Gaussian KL against torch.distributions in float64,
one-hot categorical samples with straight-through gradients and unimix, resets at episode starts,
KL balancing's split of the gradient, and free bits."""

from __future__ import annotations

import pytest
import torch

from reverie.nn.rssm import RSSM, RSSMConfig


def model(latent: str, **changes) -> RSSM:
    torch.manual_seed(0)
    return RSSM(RSSMConfig(embedding=6, actions=3, deterministic=8, hidden=16, latent=latent, stochastic=4, groups=3, classes=5, **changes))


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_observe_gives_a_posterior_and_prior_per_step(latent):
    rssm = model(latent)
    posteriors, priors = rssm.observe(torch.randn(2, 5, 6), torch.randn(2, 5, 3), torch.zeros(2, 5, dtype=torch.bool))
    assert len(posteriors) == len(priors) == 5
    assert posteriors[-1].features().shape == (2, rssm.feature_size) == (2, 8 + (4 if latent == "gaussian" else 15))
    assert torch.equal(posteriors[2].deterministic, priors[2].deterministic)  # h_t is shared; only z_t differs


def test_gaussian_kl_matches_torch_distributions():
    rssm = model("gaussian").double()
    posterior = torch.cat([torch.randn(7, 4), torch.rand(7, 4) + 0.1], -1).double()
    prior = torch.cat([torch.randn(7, 4), torch.rand(7, 4) + 0.1], -1).double()
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(*posterior.chunk(2, -1)), normal(*prior.chunk(2, -1))).sum(-1)
    torch.testing.assert_close(rssm.kl(posterior, prior), expected)


def test_categorical_samples_are_one_hot_with_straight_through_gradients_and_unimix_keeps_every_class():
    rssm = model("categorical", unimix=0.01)
    logits = torch.full((4, 15), -50.0)
    logits[:, 0] = 50.0
    statistics = rssm.statistics_of(logits.requires_grad_())
    assert float(statistics.detach().min()) >= 0.01 / 5 - 1e-7  # no class below the uniform's share
    sample = rssm.sample(statistics)
    assert torch.equal(sample.detach().view(4, 3, 5).sum(-1), torch.ones(4, 3))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    (sample * torch.arange(15.0)).sum().backward()
    assert logits.grad.abs().sum() > 0  # gradients reach the logits through the one-hot sample


def test_an_episode_start_forgets_the_state_and_the_previous_action():
    rssm = model("gaussian")
    embeddings, actions = torch.randn(2, 4, 6), torch.randn(2, 4, 3)
    is_first = torch.tensor([[True, False, True, False], [True, False, True, False]])
    torch.manual_seed(1)
    posteriors, _ = rssm.observe(embeddings, actions, is_first)
    torch.manual_seed(1)
    rssm.observe(embeddings[:, :2], actions[:, :2], is_first[:, :2])  # the same draws for the first two steps
    restarted, _ = rssm.observe(embeddings[:, 2:], torch.randn(2, 2, 3), is_first[:, 2:])  # another previous action at the start
    torch.testing.assert_close(restarted[0].deterministic, posteriors[2].deterministic)
    torch.testing.assert_close(restarted[0].statistics, posteriors[2].statistics)


def test_kl_balancing_splits_the_gradient_and_free_nats_stop_it():
    rssm = model("gaussian")
    posterior = torch.cat([torch.randn(5, 4), torch.rand(5, 4) + 0.5], -1).requires_grad_()
    prior = torch.cat([torch.randn(5, 4), torch.rand(5, 4) + 0.5], -1).requires_grad_()
    rssm.kl_loss(posterior, prior, prior_weight=0.8, posterior_weight=0.2).backward()
    plain_posterior, plain_prior = posterior.detach().clone().requires_grad_(), prior.detach().clone().requires_grad_()
    rssm.kl(plain_posterior, plain_prior).mean().backward()
    torch.testing.assert_close(prior.grad, 0.8 * plain_prior.grad)
    torch.testing.assert_close(posterior.grad, 0.2 * plain_posterior.grad)
    posterior.grad = prior.grad = None
    high = float(rssm.kl(posterior, prior).max()) + 1
    loss = rssm.kl_loss(posterior, prior, 0.5, 0.1, free_nats=high)
    assert float(loss) == pytest.approx(0.6 * high)
    loss.backward()
    assert float(posterior.grad.abs().sum()) == float(prior.grad.abs().sum()) == 0.0
