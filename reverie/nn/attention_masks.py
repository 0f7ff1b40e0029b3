"""Attention masks for transformers over frame sequences, in `scaled_dot_product_attention`'s
convention: a bool matrix (queries, keys), True where the query may attend to the key.

Block-causal: the tokens of frame t see every token of frames <= t (their own frame included, in
both directions) and none of a later frame. Frame-causal world models use it: V-JEPA 2-AC's
predictor, and any video model that is causal in time and full in space.
"""

from __future__ import annotations

import torch


def frame_of_token(frames: int, tokens_per_frame: int, first_frame: int = 0, device=None) -> torch.Tensor:
    """(frames * tokens_per_frame,) int64: the frame index of each token, frames laid out one after another."""
    return torch.arange(first_frame, first_frame + frames, device=device).repeat_interleave(tokens_per_frame)


def block_causal_mask(frames: int, tokens_per_frame: int, past_frames: int = 0, device=None) -> torch.Tensor:
    """(frames * F, (past_frames + frames) * F) bool, F = tokens_per_frame: queries are the tokens of
    frames past_frames .. past_frames + frames - 1, keys those of frames 0 .. past_frames + frames - 1
    (the past ones from a key/value cache)."""
    query_frame = frame_of_token(frames, tokens_per_frame, past_frames, device)
    key_frame = frame_of_token(past_frames + frames, tokens_per_frame, 0, device)
    return query_frame[:, None] >= key_frame[None, :]
