"""Block-causal masks: a token sees its own frame and earlier ones, never a later frame."""

from __future__ import annotations

import torch

from reverie.nn.attention_masks import block_causal_mask, frame_of_token


def test_no_token_sees_a_future_frame():
    frames, tokens_per_frame = 4, 3
    mask = block_causal_mask(frames, tokens_per_frame)
    assert mask.shape == (12, 12) and mask.dtype == torch.bool
    frame = frame_of_token(frames, tokens_per_frame)
    for query in range(12):
        for key in range(12):
            assert mask[query, key] == (frame[key] <= frame[query])
    assert mask[:3, :3].all()  # within a frame attention is full, in both directions


def test_queries_after_a_cache_see_all_of_it():
    mask = block_causal_mask(frames=2, tokens_per_frame=3, past_frames=2)
    assert mask.shape == (6, 12)
    assert mask[:, :6].all()  # the cached frames 0 and 1
    assert mask[:3, 6:9].all() and not mask[:3, 9:].any()  # frame 2 sees itself, not frame 3
    assert mask[3:, 6:].all()
    assert torch.equal(block_causal_mask(2, 3, past_frames=2), block_causal_mask(4, 3)[6:])
