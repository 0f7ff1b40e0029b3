"""The pre-norm transformer block that reverie's transformers share (V-JEPA's video ViT and
predictor, V-JEPA 2-AC's predictor; [26] Assran et al. 2025):

    tokens = tokens + Attention(LN(tokens))
    tokens = tokens + fc2(GELU(fc1(LN(tokens))))

Attention is multi-head self-attention with three optional inputs, each used by some model:
- `rotation`: rotary positions (`reverie.nn.rotary`), applied to the queries and keys of the new tokens;
- `mask`: which keys each query may see, in `scaled_dot_product_attention`'s convention (a bool
  (queries, keys) matrix, True where the query may attend), e.g. `reverie.nn.attention_masks`;
- `past`: the keys and values of earlier tokens (a cache), which the new tokens attend to after them.

Every call also returns the keys and values of the past and the new tokens, the cache for the next
call. Cached keys are kept rotated, so a cache made with rotary positions needs no positions again.

State dicts: reverie 0.1's V-JEPA block held its MLP as `mlp = Sequential(Linear, GELU, Linear)`,
keys `mlp.0.*` and `mlp.2.*`; this block names them `fc1.*` and `fc2.*` (the names LoRA targets) and
renames the old keys when it loads them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.nn.rotary import Rotation, rotate

KeyValues = tuple[torch.Tensor, torch.Tensor]  # keys, values: (B, heads, tokens, head_dim)

LEGACY_MLP_NAMES = {"mlp.0.": "fc1.", "mlp.2.": "fc2."}  # reverie 0.1's V-JEPA block -> this one


class Attention(nn.Module):
    """Multi-head self-attention over (B, L, width) tokens, with optional rotation, mask and cache."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"attention width {width} does not split into {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(
        self,
        tokens: torch.Tensor,  # (B, L, width)
        rotation: Rotation | None = None,  # (cos, sin) of these L tokens, each (B, 1, L, rotated_dims / 2)
        mask: torch.Tensor | None = None,  # (L, P + L) bool, P = tokens in `past`; None: every key
        past: KeyValues | None = None,  # (B, heads, P, head_dim) each
    ) -> tuple[torch.Tensor, KeyValues]:
        """-> (B, L, width), and the keys and values of the past and these tokens, (B, heads, P + L, head_dim)."""
        queries, keys, values = rearrange(self.qkv(tokens), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        if rotation is not None:
            queries, keys = rotate(queries, rotation), rotate(keys, rotation)
        if past is not None:
            keys, values = torch.cat([past[0], keys], dim=2), torch.cat([past[1], values], dim=2)
        attended = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
        return self.proj(rearrange(attended, "b h l d -> b l (h d)")), (keys, values)


def rename_legacy_mlp_keys(block: nn.Module, state_dict: dict, prefix: str, *_) -> None:
    """Load-state-dict pre-hook of `TransformerBlock` (torch's hook signature): rename reverie 0.1's
    `{prefix}mlp.0.*` and `{prefix}mlp.2.*` keys to `{prefix}fc1.*` and `{prefix}fc2.*`, in place.

    A module-level function rather than a bound method, so that `copy.deepcopy` of a model keeps
    one hook per block that acts on the copy."""
    for old, new in LEGACY_MLP_NAMES.items():
        for key in [key for key in state_dict if key.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old) :]] = state_dict.pop(key)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: attention, then a GELU MLP, each added to the residual stream.

    `norm_eps` is the LayerNorms' epsilon: V-JEPA uses 1e-6, V-JEPA 2-AC's predictor PyTorch's 1e-5."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-5):
        super().__init__()
        hidden = int(width * mlp_ratio)
        # created in this order so that a seeded model gets the weights reverie 0.1 gave it
        self.attention_norm = nn.LayerNorm(width, eps=norm_eps)
        self.attention = Attention(width, heads)
        self.mlp_norm = nn.LayerNorm(width, eps=norm_eps)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.register_load_state_dict_pre_hook(rename_legacy_mlp_keys)

    def forward(
        self,
        tokens: torch.Tensor,  # (B, L, width)
        rotation: Rotation | None = None,
        mask: torch.Tensor | None = None,
        past: KeyValues | None = None,
    ) -> tuple[torch.Tensor, KeyValues]:
        """-> (B, L, width), and the keys and values of the past and these tokens (see `Attention`)."""
        attended, present = self.attention(self.attention_norm(tokens), rotation, mask, past)
        tokens = tokens + attended
        tokens = tokens + self.fc2(F.gelu(self.fc1(self.mlp_norm(tokens))))
        return tokens, present
