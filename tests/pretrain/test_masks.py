"""Multi-block 3D masks: tubes through every frame, disjoint context and target, the expected ratio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reverie.pretrain.masks import LONG_RANGE, SHORT_RANGE, MaskSpec, equal_count_indices, sample_masks, sample_target_masks

GRID = (4, 16, 16)  # tubelets: time, rows, columns


@pytest.mark.parametrize("entry", [SHORT_RANGE, LONG_RANGE], ids=["short_range", "long_range"])
def test_blocks_are_tubes_through_every_frame(entry):
    masks = sample_target_masks(MaskSpec.from_dict(entry), 32, GRID, torch.Generator().manual_seed(0))
    assert masks.shape == (32, *GRID) and masks.dtype == torch.bool
    assert torch.equal(masks, masks[:, :1].expand_as(masks))
    assert masks.flatten(1).any(dim=1).all() and not masks.flatten(1).all(dim=1).any()  # some target, some context


@pytest.mark.parametrize("entry", [SHORT_RANGE, LONG_RANGE], ids=["short_range", "long_range"])
def test_context_and_target_are_disjoint_and_cover_every_token(entry):
    count = GRID[0] * GRID[1] * GRID[2]
    for seed in range(20):
        masks = sample_masks(MaskSpec.from_dict(entry), 1, GRID, torch.Generator().manual_seed(seed))
        context, target = masks.context[0], masks.target[0]
        assert torch.equal(torch.cat([context, target]).sort().values, torch.arange(count))
        assert torch.equal(context, context.sort().values) and torch.equal(target, target.sort().values)


def test_a_batch_keeps_equally_many_tokens_per_clip_and_stays_disjoint():
    masks = sample_masks(MaskSpec.from_dict(SHORT_RANGE), 16, GRID, torch.Generator().manual_seed(1))
    assert masks.context.shape[0] == masks.target.shape[0] == 16
    assert masks.context.shape[1] + masks.target.shape[1] <= GRID[0] * GRID[1] * GRID[2]
    for context, target in zip(masks.context, masks.target):
        assert not set(context.tolist()) & set(target.tolist())
        assert len(set(context.tolist())) == len(context)


def test_thinning_picks_only_selected_tokens():
    selected = torch.tensor([[1, 1, 0, 1, 0, 1], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    indices = equal_count_indices(selected, torch.Generator().manual_seed(0))
    assert indices.shape == (2, 2)
    assert torch.equal(indices[1], torch.tensor([1, 2]))
    assert set(indices[0].tolist()) <= {0, 1, 3, 5}


def test_the_masked_fraction_matches_its_expectation():
    """Square 8x8 blocks (scale 1/4, aspect 1) on a 16x16 grid: a cell in row i is covered by one
    block with probability p_i q_j (the fraction of the 9 top rows whose block spans row i, times
    the same for columns), and by the union of n independent blocks with 1 - (1 - p_i q_j)^n."""
    spec = MaskSpec(num_blocks=3, spatial_scale=(0.25, 0.25), aspect_ratio=(1.0, 1.0))
    starts = np.arange(9)
    covered = np.array([np.mean((starts <= i) & (i < starts + 8)) for i in range(16)])
    expected = np.mean(1 - (1 - np.outer(covered, covered)) ** spec.num_blocks)
    masks = sample_target_masks(spec, 4000, (1, 16, 16), torch.Generator().manual_seed(0))
    assert abs(masks.float().mean().item() - expected) < 0.01


def test_vjepa_mask_sets_mask_most_of_the_clip():
    short = sample_target_masks(MaskSpec.from_dict(SHORT_RANGE), 2000, (8, 16, 16), torch.Generator().manual_seed(0))
    long = sample_target_masks(MaskSpec.from_dict(LONG_RANGE), 2000, (8, 16, 16), torch.Generator().manual_seed(0))
    assert 0.55 < short.float().mean() < 0.7 < long.float().mean() < 0.9


def test_a_mask_set_that_leaves_no_context_is_named():
    with pytest.raises(RuntimeError, match="num_blocks=2.*1x1 token grid"):
        sample_target_masks(MaskSpec.from_dict(LONG_RANGE), 2, (2, 1, 1))
