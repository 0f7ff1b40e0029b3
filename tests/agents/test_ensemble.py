"""The probabilistic ensemble: its loss falls on a known system, it is less sure off the data, its
log-variance stays inside the learned bounds; and the replay buffer round-trips."""

from __future__ import annotations

import numpy as np
import torch

from reverie.agents.ensemble import EnsembleConfig, ProbabilisticEnsemble
from reverie.agents.replay import ReplayBuffer


def spring_data(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(position, velocity, force) -> change of state of a damped spring over 0.1 s, plus noise."""
    inputs = torch.rand(count, 3, generator=generator) * 2 - 1  # inside [-1, 1]^3
    position, velocity, force = inputs.unbind(-1)
    acceleration = -2.0 * position - 0.5 * velocity + force
    deltas = torch.stack([0.1 * velocity, 0.1 * acceleration], dim=-1)
    return inputs, deltas + 0.01 * torch.randn(deltas.shape, generator=generator)


def small_ensemble(**overrides) -> ProbabilisticEnsemble:
    torch.manual_seed(0)
    return ProbabilisticEnsemble(3, 2, EnsembleConfig(members=4, hidden=32, layers=2, batch_size=32, **overrides))


def test_loss_falls_and_variance_grows_off_the_data():
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    inputs, targets = spring_data(512, generator)
    ensemble = small_ensemble()
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=3e-3)
    ensemble.set_normaliser(inputs, targets)
    batch = (inputs.expand(4, -1, -1), targets.expand(4, -1, -1))
    before = ensemble.loss(*batch).item()
    ensemble.fit(inputs, targets, epochs=30, generator=generator, optimizer=optimizer)
    assert ensemble.loss(*batch).item() < before - 10  # NLL summed over 4 members and 2 outputs
    with torch.no_grad():
        near, _ = spring_data(256, generator)
        far = near * 4  # well outside the training box
        def spread(points):  # epistemic (members' disagreement) plus aleatoric variance
            mean, variance = ensemble.predict(points.expand(4, -1, -1))
            return (mean.var(0) + variance.mean(0)).mean().item()
        assert spread(far) > 3 * spread(near)


def test_log_variance_stays_inside_its_bounds():
    ensemble = small_ensemble()
    with torch.no_grad():
        ensemble.output_layer.bias.fill_(0)
        ensemble.output_layer.bias[..., 2:] = 50.0  # raw log-variance far above the max
        _, high = ensemble(torch.randn(4, 8, 3))
        ensemble.output_layer.bias[..., 2:] = -50.0
        _, low = ensemble(torch.randn(4, 8, 3))
    assert (high <= ensemble.max_logvar + 1e-3).all() and (low >= ensemble.min_logvar - 1e-3).all()  # soft bounds
    assert torch.allclose(high, ensemble.max_logvar.expand_as(high), atol=1e-3)


def test_members_train_on_their_own_bootstraps_and_holdout_stops_early():
    generator = torch.Generator().manual_seed(1)
    inputs, targets = spring_data(256, generator)
    ensemble = small_ensemble(holdout=0.25, patience=2)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=3e-3)
    result = ensemble.fit(inputs, targets, epochs=200, generator=generator, optimizer=optimizer)
    assert result["steps"] < 200 * 6 and result["holdout_mse"] < 0.5
    weights = ensemble.hidden_layers[0].weight
    assert not torch.allclose(weights[0], weights[1])


def test_replay_buffer_wraps_and_round_trips(tmp_path):
    buffer = ReplayBuffer(observation_dim=3, action_dim=1, capacity=4)
    for step in range(6):
        buffer.add(np.full(3, step), [step], float(step), np.full(3, step + 1), step == 5)
    assert len(buffer) == 4 and sorted(buffer.arrays()["rewards"].tolist()) == [2, 3, 4, 5]
    buffer.save(tmp_path / "replay.safetensors")
    loaded = ReplayBuffer.load(tmp_path / "replay.safetensors")
    assert loaded.added == 6
    for name, array in buffer.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array)
    batch = loaded.sample(5, np.random.default_rng(0))
    assert batch["observations"].shape == (5, 3) and batch["terminated"].dtype == bool
