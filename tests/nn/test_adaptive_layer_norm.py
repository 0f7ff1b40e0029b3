"""adaLN-Zero (`reverie.nn.adaptive_layer_norm`): DiT's modulation, zero at init, laid out as DiT's
chunks, and one set of parameters per frame."""

from __future__ import annotations

import pytest
import torch

from reverie.nn.adaptive_layer_norm import AdaLNZero, modulate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDTH, SUBLAYERS, BATCH, FRAMES, TOKENS_PER_FRAME = 8, 3, 2, 4, 5


def random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_modulate_scales_around_one_and_shifts():
    tokens = torch.tensor([[1.0, -2.0]])
    torch.testing.assert_close(modulate(tokens, torch.tensor([0.5, 0.0]), torch.tensor([1.0, -0.5])), torch.tensor([[2.5, -1.0]]))
    assert torch.equal(modulate(tokens, torch.zeros(2), torch.zeros(2)), tokens)


def test_at_init_every_shift_scale_and_gate_is_zero_and_the_norm_has_no_parameters():
    adaln = AdaLNZero(WIDTH, SUBLAYERS).double()
    modulations = adaln(random(BATCH, FRAMES, WIDTH, seed=0))
    assert len(modulations) == SUBLAYERS
    for modulation in modulations:
        for part in modulation:
            assert part.shape == (BATCH, FRAMES, 1, WIDTH)
            assert torch.equal(part, torch.zeros_like(part))
    assert [name for name, _ in adaln.named_parameters()] == ["to_modulation.weight", "to_modulation.bias"]
    tokens = random(BATCH, FRAMES, TOKENS_PER_FRAME, WIDTH, seed=1)
    normalized = adaln.normalize(tokens, modulations[0])
    torch.testing.assert_close(normalized.mean(dim=-1), torch.zeros(BATCH, FRAMES, TOKENS_PER_FRAME, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(normalized.var(dim=-1, unbiased=False), torch.ones(BATCH, FRAMES, TOKENS_PER_FRAME, dtype=torch.float64), rtol=0, atol=1e-5)


def test_outputs_are_laid_out_as_dits_chunks():
    adaln = AdaLNZero(WIDTH, SUBLAYERS).double()
    with torch.no_grad():
        adaln.to_modulation.bias.copy_(torch.arange(3 * SUBLAYERS * WIDTH, dtype=torch.float64))
    modulations = adaln(torch.zeros(1, 1, WIDTH, dtype=torch.float64))  # zero weight: the bias alone
    chunks = adaln.to_modulation.bias.chunk(3 * SUBLAYERS)  # DiT: shift_msa, scale_msa, gate_msa, shift_mlp, ...
    for index, chunk in enumerate(chunks):
        assert torch.equal(modulations[index // 3][index % 3][0, 0, 0], chunk)


def test_each_frames_conditioning_sets_that_frames_parameters_only():
    adaln = AdaLNZero(WIDTH, SUBLAYERS).double()
    torch.nn.init.normal_(adaln.to_modulation.weight, generator=torch.Generator().manual_seed(2))
    conditioning = random(BATCH, FRAMES, WIDTH, seed=3)
    before = adaln(conditioning)
    conditioning[:, 2] = random(BATCH, WIDTH, seed=4)
    after = adaln(conditioning)
    for old, new in zip(before, after):
        for old_part, new_part in zip(old, new):
            assert torch.equal(torch.cat([old_part[:, :2], old_part[:, 3:]], dim=1), torch.cat([new_part[:, :2], new_part[:, 3:]], dim=1))
            assert (old_part[:, 2] - new_part[:, 2]).abs().max() > 1e-3
