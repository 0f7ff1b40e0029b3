"""Running standardisation: exact statistics over batches, the same mapping in training and
evaluation, frozen statistics outside training, and a round trip through the state dict."""

from __future__ import annotations

import pytest
import torch

from reverie.nn.running_standardizer import RunningStandardizer


def test_statistics_over_batches_equal_those_of_all_the_data():
    data = torch.randn(103, 4, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.1, 1.0, 5.0]) + 2.0
    standardizer = RunningStandardizer((4, 3)).train()
    for batch in data.split(10):
        standardizer(batch)
    torch.testing.assert_close(standardizer.mean.float(), data.mean(0))
    torch.testing.assert_close(standardizer.std.float(), data.std(0, unbiased=False), rtol=1e-4, atol=1e-5)
    standardized = standardizer.eval()(data)
    torch.testing.assert_close(standardized.mean(0), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardized.std(0, unbiased=False), torch.ones(4, 3), atol=1e-3, rtol=0)


def test_evaluation_leaves_the_statistics_alone_and_they_survive_a_state_dict_round_trip():
    standardizer = RunningStandardizer((2,)).train()
    standardizer(torch.tensor([[0.0, 1.0], [2.0, 5.0]]))
    standardizer.eval()
    before = standardizer.state_dict()
    standardizer(torch.full((5, 2), 100.0))
    assert all(torch.equal(before[name], value) for name, value in standardizer.state_dict().items())
    copy = RunningStandardizer((2,))
    copy.load_state_dict(before)
    values = torch.tensor([[1.0, 3.0]])
    torch.testing.assert_close(copy.eval()(values), standardizer(values))
    torch.testing.assert_close(standardizer(values), torch.zeros(1, 2))


def test_an_untrained_standardizer_refuses_to_guess():
    with pytest.raises(RuntimeError, match="seen no data"):
        RunningStandardizer((2,)).eval()(torch.ones(1, 2))
