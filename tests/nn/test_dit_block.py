"""The spatiotemporal DiT block (`reverie.nn.dit_block`): the identity at init, causal in time,
mixing within a frame, conditioned per frame, and equal with its key/value cache to one pass."""

from __future__ import annotations

import pytest
import torch

from reverie.nn.dit_block import DiTBlock

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDTH, HEADS, BATCH, FRAMES, TOKENS_PER_FRAME = 24, 2, 2, 5, 3


def make_block(seed: int = 0, zero_modulation: bool = False) -> DiTBlock:
    """A float64 block; unless `zero_modulation`, its adaLN Linear is random, so every gate is open."""
    torch.manual_seed(seed)
    block = DiTBlock(WIDTH, HEADS, mlp_ratio=2.0).double()
    if not zero_modulation:
        torch.nn.init.normal_(block.modulation.to_modulation.weight, std=0.3)
        torch.nn.init.normal_(block.modulation.to_modulation.bias, std=0.3)
    return block


def random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def random_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (BATCH, FRAMES, TOKENS_PER_FRAME, WIDTH) and conditioning (BATCH, FRAMES, WIDTH), float64."""
    return random(BATCH, FRAMES, TOKENS_PER_FRAME, WIDTH, seed=seed), random(BATCH, FRAMES, WIDTH, seed=seed + 100)


def frame_change(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(FRAMES,): the smallest change of a frame's outputs over its batch elements and tokens."""
    return (after - before).abs().amax(dim=-1).amin(dim=(0, 2))


def test_at_init_the_block_returns_its_input_exactly():
    tokens, conditioning = random_inputs()
    output, (keys, values) = make_block(zero_modulation=True)(tokens, conditioning)
    assert torch.equal(output, tokens)
    assert keys.shape == values.shape == (BATCH * TOKENS_PER_FRAME, HEADS, FRAMES, WIDTH // HEADS)
    assert (make_block()(tokens, conditioning)[0] - tokens).abs().max() > 1e-2  # open gates: not the identity


def test_later_frames_do_not_reach_earlier_ones_and_the_first_reaches_all():
    block = make_block()
    tokens, conditioning = random_inputs()
    before, _ = block(tokens, conditioning)
    changed_tokens, changed_conditioning = tokens.clone(), conditioning.clone()
    changed_tokens[:, 2], changed_conditioning[:, 2] = random(BATCH, TOKENS_PER_FRAME, WIDTH, seed=2), random(BATCH, WIDTH, seed=3)
    after, _ = block(changed_tokens, changed_conditioning)
    torch.testing.assert_close(after[:, :2], before[:, :2], rtol=0, atol=1e-12)
    assert frame_change(before, after)[2:].min() > 1e-3

    changed_tokens = tokens.clone()
    changed_tokens[:, 0] = random(BATCH, TOKENS_PER_FRAME, WIDTH, seed=4)
    after, _ = block(changed_tokens, conditioning)
    assert frame_change(before, after).min() > 1e-3


def test_one_token_reaches_the_other_tokens_of_its_frame():
    block = make_block()
    tokens, conditioning = random_inputs()
    before, _ = block(tokens, conditioning)
    changed = tokens.clone()
    changed[:, 2, 0] = random(BATCH, WIDTH, seed=5)
    after, _ = block(changed, conditioning)
    assert (after[:, 2, 1:] - before[:, 2, 1:]).abs().amax(dim=-1).min() > 1e-3
    torch.testing.assert_close(after[:, :2], before[:, :2], rtol=0, atol=1e-12)


def test_a_frames_conditioning_reaches_that_frame_and_later_ones_only():
    block = make_block()
    tokens, conditioning = random_inputs()
    before, _ = block(tokens, conditioning)
    changed = conditioning.clone()
    changed[:, 2] = random(BATCH, WIDTH, seed=6)
    after, _ = block(tokens, changed)
    torch.testing.assert_close(after[:, :2], before[:, :2], rtol=0, atol=1e-12)
    assert frame_change(before, after)[2:].min() > 1e-3


@pytest.mark.parametrize("split", [1, 3])
def test_frames_after_the_cache_equal_one_pass_over_all_frames(split):
    blocks = [make_block(seed) for seed in range(2)]
    tokens, conditioning = random_inputs()
    whole = tokens
    for block in blocks:
        whole, _ = block(whole, conditioning)

    first, later = tokens[:, :split], tokens[:, split:]
    for block in blocks:
        first, cache = block(first, conditioning[:, :split])
        later, _ = block(later, conditioning[:, split:], past=cache)
    torch.testing.assert_close(torch.cat([first, later], dim=1), whole, rtol=0, atol=1e-12)


def test_a_trimmed_cache_at_its_frames_times_equals_a_pass_over_the_kept_frames_alone():
    block = make_block()
    tokens, conditioning = random_inputs()
    _, cache = block(tokens[:, :-1], conditioning[:, :-1])
    kept = tuple(part[:, :, 1:] for part in cache)  # drop frame 0, keep frames 1 .. FRAMES - 2
    newest, _ = block(tokens[:, -1:], conditioning[:, -1:], past=kept, first_frame=FRAMES - 1)
    window, _ = block(tokens[:, 1:], conditioning[:, 1:])  # the same frames at times 0 .. FRAMES - 2
    torch.testing.assert_close(newest[:, 0], window[:, -1], rtol=0, atol=1e-12)
    misplaced, _ = block(tokens[:, -1:], conditioning[:, -1:], past=kept)  # at time FRAMES - 2, beside frame FRAMES - 2
    assert (misplaced[:, 0] - window[:, -1]).abs().max() > 1e-3


def test_gradients_reach_every_parameter():
    block = make_block()
    tokens, conditioning = random_inputs()
    output, _ = block(tokens, conditioning)
    (output**2).sum().backward()
    for name, parameter in block.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().max() > 0, name
