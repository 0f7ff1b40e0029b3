"""The action-conditioned predictor network of V-JEPA 2-AC ([26] Assran et al. 2025, sec. 3.1): a
block-causal transformer (`reverie.nn.transformer.TransformerBlock`, LayerNorm eps 1e-5) over frozen
per-frame encoder features.

Frame t enters as an action token, a state token (when the data has states) and the frame's N patch
features, each embedded by its own linear input head. Every token gets a learned embedding of its
time step and one of its slot in the frame (action, state, patch 0..N-1). Attention is block-causal
(`reverie.nn.attention_masks`): frame t's tokens see frames <= t and never a later one, so the
output at frame t's patch slots, projected back to the feature width, is the prediction of frame
t + 1's features from frames, actions and states up to t. With `normalize_output` the prediction is
layer-normed (no affine), like the targets it is trained against.

Because a frame's outputs depend on earlier frames only, the keys and values of earlier frames can
be kept: `forward(..., past=cache)` runs only new frames against a cache of earlier ones, which is
how rollouts step one frame at a time. A cache is a list, one `(keys, values)` pair per block, each
(B, heads, past tokens, head width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.nn.attention_masks import block_causal_mask
from reverie.nn.running_standardizer import RunningStandardizer
from reverie.nn.transformer import KeyValues, TransformerBlock


class ACPredictor(nn.Module):
    """Features, actions (and states) of frames 0..T-1 -> predicted features of frames 1..T."""

    def __init__(
        self,
        feature_dim: int,
        action_dim: int,
        state_dim: int,
        tokens_per_frame: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        max_frames: int,
        normalize_output: bool = True,
        standardize_actions: bool = False,
    ):
        super().__init__()
        self.tokens_per_frame, self.max_frames, self.normalize_output = tokens_per_frame, max_frames, normalize_output
        self.feature_in = nn.Linear(feature_dim, width)
        self.action_in = nn.Linear(action_dim, width)
        # actions in units of their spread in the training data, whatever units the robot uses
        self.action_statistics = RunningStandardizer((action_dim,)) if standardize_actions else None
        self.state_in = nn.Linear(state_dim, width) if state_dim else None
        self.conditioning_tokens = 1 + int(state_dim > 0)
        self.slot_embedding = nn.Parameter(0.02 * torch.randn(self.frame_tokens, width))
        self.time_embedding = nn.Parameter(0.02 * torch.randn(max_frames, width))
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.feature_out = nn.Linear(width, feature_dim)

    @property
    def frame_tokens(self) -> int:
        """Tokens per frame in the sequence: action, state (if any), patches."""
        return self.conditioning_tokens + self.tokens_per_frame

    def embed(self, features: torch.Tensor, actions: torch.Tensor, states: torch.Tensor | None, first_frame: int) -> torch.Tensor:
        """(B, T, N, D), (B, T, A), (B, T, S) -> tokens (B, T * frame_tokens, width)."""
        if (states is None) != (self.state_in is None):
            raise ValueError(
                f"the predictor was built with state_dim={0 if self.state_in is None else self.state_in.in_features} "
                f"but {'no' if states is None else 'some'} states were given; set state_dim to the data's state width (0: none)"
            )
        if features.shape[2] != self.tokens_per_frame:
            raise ValueError(f"features have {features.shape[2]} tokens per frame, the predictor was built for {self.tokens_per_frame}")
        frames = features.shape[1]
        if first_frame + frames > self.max_frames:
            raise ValueError(f"{first_frame + frames} frames exceed the predictor's max_frames={self.max_frames}")
        if self.action_statistics is not None:
            actions = self.action_statistics(actions)
        parts = [self.action_in(actions)[:, :, None]]
        if states is not None:
            parts.append(self.state_in(states)[:, :, None])
        parts.append(self.feature_in(features))
        tokens = torch.cat(parts, dim=2) + self.slot_embedding + self.time_embedding[first_frame : first_frame + frames, None]
        return rearrange(tokens, "b t f c -> b (t f) c")

    def forward(
        self,
        features: torch.Tensor,  # (B, T, N, D) features of frames P..P+T-1, P = frames in `past`
        actions: torch.Tensor,  # (B, T, A) the action taken at each of these frames
        states: torch.Tensor | None = None,  # (B, T, S)
        past: list[KeyValues] | None = None,
    ) -> tuple[torch.Tensor, list[KeyValues]]:
        """-> predicted features of frames P+1..P+T (B, T, N, D), and the cache of frames 0..P+T-1."""
        frames = features.shape[1]
        past_frames = 0 if past is None else past[0][0].shape[2] // self.frame_tokens
        tokens = self.embed(features, actions, states, past_frames)
        # one frame against a cache sees everything: no mask lets attention take its fused path
        mask = None if frames == 1 else block_causal_mask(frames, self.frame_tokens, past_frames, tokens.device)
        present = []
        for index, block in enumerate(self.blocks):
            tokens, key_values = block(tokens, mask=mask, past=None if past is None else past[index])
            present.append(key_values)
        tokens = rearrange(self.out_norm(tokens), "b (t f) c -> b t f c", t=frames)
        predicted = self.feature_out(tokens[:, :, self.conditioning_tokens :])
        if self.normalize_output:  # targets are layer-normed encoder features; so are fed-back predictions
            predicted = F.layer_norm(predicted, predicted.shape[-1:])
        return predicted, present


def first_frames_of(cache: list[KeyValues], frames: int, frame_tokens: int) -> list[KeyValues]:
    """The cache cut back to its first `frames` frames."""
    return [(keys[:, :, : frames * frame_tokens], values[:, :, : frames * frame_tokens]) for keys, values in cache]


def expand_cache(cache: list[KeyValues], batch: int) -> list[KeyValues]:
    """A cache of batch 1 (or `batch`) broadcast to `batch` rows, without copying."""
    return [(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)) for keys, values in cache]
