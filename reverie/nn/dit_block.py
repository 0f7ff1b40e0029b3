"""The factorised spatiotemporal DiT block of the latent diffusion world models ([24] Oasis, [19]
Genie 2): DiT's adaLN-Zero block (Peebles & Xie 2023, Sec. 3.2; `reverie.nn.adaptive_layer_norm`)
with its attention split, as in Genie's ST-transformer, into space and time. Over tokens
(B, T, N, width), N tokens per frame, and per-frame conditioning c (B, T, width):

    tokens = tokens + gate_s * SpatialAttention(modulate(LN(tokens), shift_s, scale_s))   # within each frame
    tokens = tokens + gate_t * TemporalAttention(modulate(LN(tokens), shift_t, scale_t))  # per position, causal
    tokens = tokens + gate_m * MLP(modulate(LN(tokens), shift_m, scale_m))

Spatial attention is bidirectional among the N tokens of a frame. Temporal attention runs at each
of the N positions over the frames, causally: frame t sees frames <= t only, so the output of frame
t depends on the tokens and conditioning of frames 0 .. t alone, which is what diffusion forcing
(Chen et al. 2024) needs to denoise frame t with its past at other noise levels. Spatial positions
are the caller's (DiT adds fixed 2D sin-cos embeddings to its patches); temporal positions are
rotary, V-JEPA 2's `Rotary3D` at (time, 0, 0), as in `reverie.tokenizers.st_transformer`: the
first third of each head's dimensions rotates by time and the rest pass unrotated.

Key/value cache. Temporal attention returns the keys and values of every frame it saw, and takes
them back as `past`, a pair (keys, values), each (B * N, heads, P, width / heads) for P past frames,
indexed `b * N + n` (batch element b, spatial position n) as `rearrange(..., 'b t n d -> (b n) t d')`
orders them. Keys are stored rotated by their frame's time. A block's keys and values of frame t
depend only on frame t's tokens and conditioning and on its time, so a sampler may keep the last
W frames' cache (`keys[:, :, -W:]`) and pass the new frames' absolute time as `first_frame`. One
block then computes exactly what it would over those W frames alone; in a stack of blocks, the kept
keys of the higher blocks still carry what they saw of the dropped frames, as in any sliding cache.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from reverie.nn.adaptive_layer_norm import AdaLNZero
from reverie.nn.attention_masks import block_causal_mask
from reverie.nn.mlp import mlp
from reverie.nn.rotary import Rotary3D, Rotation
from reverie.nn.transformer import Attention, KeyValues

SUBLAYERS = 3  # spatial attention, temporal attention, MLP


class DiTBlock(nn.Module):
    """Spatial attention, causal temporal attention and a GELU MLP, each adaLN-Zero modulated and gated.

    `norm_eps` is the LayerNorms' epsilon (DiT's 1e-6). At init every gate is 0 and the block is the identity."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-6):
        super().__init__()
        self.modulation = AdaLNZero(width, SUBLAYERS, norm_eps)
        self.spatial_attention = Attention(width, heads)
        self.temporal_attention = Attention(width, heads)
        self.rotary = Rotary3D(width // heads)
        self.mlp = mlp(width, width, int(width * mlp_ratio), 1, nn.GELU)

    def time_rotation(self, first_frame: int, frames: int, device: torch.device) -> Rotation:
        """(cos, sin), each (1, 1, frames, rotated_dims / 2), of times first_frame .. first_frame + frames - 1."""
        times = torch.arange(first_frame, first_frame + frames, device=device, dtype=self.rotary.frequencies.dtype)
        coordinates = torch.stack([times, torch.zeros_like(times), torch.zeros_like(times)], dim=-1)
        return self.rotary.rotation(rearrange(coordinates, "t coordinate -> 1 t coordinate"))

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T, N, width)
        conditioning: torch.Tensor,  # (B, T, width), one vector per frame
        past: KeyValues | None = None,  # temporal keys and values of P earlier frames, each (B * N, heads, P, width / heads)
        first_frame: int | None = None,  # time of tokens[:, 0]; None: P, the frames right after the cached ones
    ) -> tuple[torch.Tensor, KeyValues]:
        """-> tokens (B, T, N, width), and the temporal keys and values of the past and these frames,
        each (B * N, heads, P + T, width / heads): the `past` of the next call."""
        batch, frames = tokens.shape[:2]
        past_frames = 0 if past is None else past[0].shape[2]
        first_frame = past_frames if first_frame is None else first_frame
        spatial, temporal, feedforward = self.modulation(conditioning)

        within_frames = rearrange(self.modulation.normalize(tokens, spatial), "b t n d -> (b t) n d")
        attended, _ = self.spatial_attention(within_frames)
        tokens = tokens + spatial.gate * rearrange(attended, "(b t) n d -> b t n d", b=batch)

        over_time = rearrange(self.modulation.normalize(tokens, temporal), "b t n d -> (b n) t d")
        rotation = self.time_rotation(first_frame, frames, tokens.device)
        causal_mask = block_causal_mask(frames, 1, past_frames, device=tokens.device)
        attended, present = self.temporal_attention(over_time, rotation, causal_mask, past)
        tokens = tokens + temporal.gate * rearrange(attended, "(b n) t d -> b t n d", b=batch)

        tokens = tokens + feedforward.gate * self.mlp(self.modulation.normalize(tokens, feedforward))
        return tokens, present
