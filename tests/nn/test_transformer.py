"""The shared transformer block: shapes, block-causal masking, the key/value cache, rotary
positions seen only through offsets, and reverie 0.1's V-JEPA state-dict keys."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from reverie.nn.attention_masks import block_causal_mask
from reverie.nn.rotary import Rotary3D
from reverie.nn.transformer import Attention, TransformerBlock
from reverie.posttrain.ac_predictor import VJEPAACConfig

WIDTH, HEADS, FRAMES, TOKENS_PER_FRAME = 24, 2, 4, 3


def make_block(seed: int = 0) -> TransformerBlock:
    torch.manual_seed(seed)
    return TransformerBlock(WIDTH, HEADS, mlp_ratio=2.0).double().eval()


def random_tokens(batch: int = 2, seed: int = 1) -> torch.Tensor:
    """(batch, FRAMES * TOKENS_PER_FRAME, WIDTH) float64."""
    return torch.randn(batch, FRAMES * TOKENS_PER_FRAME, WIDTH, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def rotation_of(coordinates: torch.Tensor):
    """(B, L, 3) float64 coordinates -> the float64 rotation of a head of WIDTH // HEADS dims."""
    return Rotary3D(WIDTH // HEADS).double().rotation(coordinates)


def grid_coordinates(batch: int) -> torch.Tensor:
    """(batch, FRAMES * TOKENS_PER_FRAME, 3): frame t's tokens at time t, in row 0, columns 0..2."""
    time = torch.arange(FRAMES).repeat_interleave(TOKENS_PER_FRAME)
    column = torch.arange(TOKENS_PER_FRAME).repeat(FRAMES)
    coordinates = torch.stack([time, torch.zeros_like(time), column], dim=-1).double()
    return coordinates.expand(batch, -1, -1)


def test_shapes_of_outputs_and_keys_and_values():
    block = make_block()
    tokens = random_tokens()
    output, (keys, values) = block(tokens)
    assert output.shape == tokens.shape
    assert keys.shape == values.shape == (2, HEADS, FRAMES * TOKENS_PER_FRAME, WIDTH // HEADS)
    more, (keys, values) = block(tokens[:, :TOKENS_PER_FRAME], past=(keys, values))
    assert more.shape == (2, TOKENS_PER_FRAME, WIDTH)
    assert keys.shape == values.shape == (2, HEADS, (FRAMES + 1) * TOKENS_PER_FRAME, WIDTH // HEADS)
    with pytest.raises(ValueError, match="width 10 does not split into 4 heads"):
        Attention(10, 4)


def test_the_block_causal_mask_hides_later_frames():
    block = make_block()
    tokens = random_tokens()
    mask = block_causal_mask(FRAMES, TOKENS_PER_FRAME)
    before, _ = block(tokens, mask=mask)
    changed = slice(2 * TOKENS_PER_FRAME, 3 * TOKENS_PER_FRAME)  # frame 2
    tokens[:, changed] = random_tokens(seed=2)[:, changed]  # not a constant shift, which LayerNorm would undo
    after, _ = block(tokens, mask=mask)
    torch.testing.assert_close(after[:, : changed.start], before[:, : changed.start], rtol=0, atol=1e-12)
    assert (after[:, changed.start :] - before[:, changed.start :]).abs().amax(dim=-1).min() > 1e-3
    unmasked, _ = block(tokens)
    assert (unmasked[:, : changed.start] - after[:, : changed.start]).abs().max() > 1e-3  # without it, they see frame 2


@pytest.mark.parametrize("rotary", [False, True])
def test_frames_one_at_a_time_against_the_cache_equal_the_whole_sequence(rotary):
    blocks = [make_block(seed) for seed in range(2)]
    tokens = random_tokens()
    rotation = rotation_of(grid_coordinates(2)) if rotary else None
    whole = tokens
    for block in blocks:
        whole, _ = block(whole, rotation, block_causal_mask(FRAMES, TOKENS_PER_FRAME))

    caches = [None] * len(blocks)
    stepped = []
    for frame in range(FRAMES):
        frame_tokens = slice(frame * TOKENS_PER_FRAME, (frame + 1) * TOKENS_PER_FRAME)
        hidden = tokens[:, frame_tokens]
        frame_rotation = None if rotation is None else tuple(part[:, :, frame_tokens] for part in rotation)
        mask = block_causal_mask(1, TOKENS_PER_FRAME, past_frames=frame)
        for index, block in enumerate(blocks):
            hidden, caches[index] = block(hidden, frame_rotation, mask, caches[index])
        stepped.append(hidden)
    torch.testing.assert_close(torch.cat(stepped, dim=1), whole, rtol=0, atol=1e-12)


def test_rotation_changes_outputs_only_through_relative_positions():
    block = make_block()
    tokens = random_tokens()
    coordinates = grid_coordinates(2)
    output, _ = block(tokens, rotation_of(coordinates))
    shifted, _ = block(tokens, rotation_of(coordinates + torch.tensor([5.0, -3.0, 7.0], dtype=torch.float64)))
    torch.testing.assert_close(shifted, output, rtol=0, atol=1e-10)
    stretched, _ = block(tokens, rotation_of(2 * coordinates))  # other offsets: other outputs
    assert (stretched - output).abs().max() > 1e-3
    unrotated, _ = block(tokens)
    assert (unrotated - output).abs().max() > 1e-3


def legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict under reverie 0.1's V-JEPA block names: `mlp.0.*`, `mlp.2.*` for `fc1.*`, `fc2.*`."""
    return {name.replace(".fc1.", ".mlp.0.").replace(".fc2.", ".mlp.2."): tensor for name, tensor in state.items()}


def test_reverie_0_1_mlp_keys_load_into_the_block():
    model = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ModuleList([make_block(0), make_block(1)]))
    old_state = legacy_keys(model.state_dict())
    assert "1.0.mlp.0.weight" in old_state and not any(".fc1." in name for name in old_state)
    fresh = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ModuleList([make_block(2), make_block(3)]))
    fresh.load_state_dict(old_state)  # strict: no key missing, none left over
    assert all(torch.equal(tensor, model.state_dict()[name]) for name, tensor in fresh.state_dict().items())

    copied = copy.deepcopy(fresh)  # as V-JEPA builds its target encoder
    copied.load_state_dict(legacy_keys(nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ModuleList([make_block(4), make_block(5)])).state_dict()))
    assert not torch.equal(copied[1][0].fc1.weight, fresh[1][0].fc1.weight)  # the copy loaded, the original did not
    assert torch.equal(fresh[1][0].fc1.weight, model[1][0].fc1.weight)


def test_the_linear_layers_are_named_as_lora_targets_them():
    names = {name.rsplit(".", 1)[-1] for name, module in make_block().named_modules() if isinstance(module, nn.Linear)}
    assert names == set(VJEPAACConfig().lora_targets)
