"""UniSim's unified action space ([17] Yang et al. 2024, Sec. 2.1): datasets whose actions live in
different spaces (one robot's joint targets, another's torques, a game's keys) condition one video
world model through one shared embedding. Each space s has a small encoder of its own into a shared
width U (`encoder_width`),

    u = phi_s(a) = W_s silu(E_s(a)),    E_s: `reverie.pretrain.action_tokens.ActionEmbedding` of space s

and one map, shared by all spaces, takes u to the world model's conditioning width:

    A(a) = o + W u,    o <- the pretrained null-action embedding,  W <- 0.

With W zero-initialised, A(a) = o, the embedding the pretrained model gave "no action", for every
action at the start: post-training a model pretrained on video without actions starts from that
model exactly (the zero-initialised conditioning of ControlNet, Zhang et al. 2023, which Cosmos [25]
Sec. 6 uses to add action control). W, o and the encoders then train; the pretrained null embedding
itself stays what frames without an action take.

One space is active at a time (`select`): the world model reads `check`, `none` and `shape` of the
active space's `ActionEmbedding`, as it reads its own single space's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reverie.pretrain.action_tokens import ActionEmbedding, ActionSpaceError


class SpaceEncoder(nn.Module):
    """phi_s: one action space's actions (.., *action_shape) -> (.., U)."""

    def __init__(self, space: dict, width: int):
        super().__init__()
        self.embedding = ActionEmbedding(space, width)
        self.out = nn.Linear(width, width)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        return self.out(F.silu(self.embedding(actions)))


class UnifiedActionEmbedding(nn.Module):
    """Actions of any of `spaces` (name -> action space) -> (.., width) conditioning; see the module docstring."""

    def __init__(self, spaces: dict[str, dict], width: int, encoder_width: int, null_embedding: torch.Tensor):
        super().__init__()
        if not spaces:
            raise ActionSpaceError("action_spaces: empty; name at least one action space (name -> {kind: ..., ...})")
        self.encoders = nn.ModuleDict({name: SpaceEncoder(space, encoder_width) for name, space in spaces.items()})
        self.to_condition = nn.Linear(encoder_width, width, bias=False)
        nn.init.zeros_(self.to_condition.weight)
        self.offset = nn.Parameter(null_embedding.detach().clone())
        self.active = next(iter(spaces))

    def select(self, name: str) -> None:
        """Make `name` the active space; ActionSpaceError for a space without an encoder."""
        if name not in self.encoders:
            raise ActionSpaceError(f"action space {name!r}: no encoder for it; this model has encoders for {', '.join(self.encoders)} (model.action_spaces)")
        self.active = name

    @property
    def space(self) -> ActionEmbedding:
        """The active space's ActionEmbedding (its shape, checks and descriptions)."""
        return self.encoders[self.active].embedding

    @property
    def shape(self) -> tuple[int, ...]:
        return self.space.shape

    def describe(self) -> str:
        return f"{self.space.describe()} ({self.active!r})"

    def check(self, actions: torch.Tensor, leading: tuple[int, ...], what: str) -> None:
        self.space.check(actions, leading, what)

    def none(self, batch: int, device: torch.device) -> torch.Tensor:
        return self.space.none(batch, device)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        return self.offset + self.to_condition(self.encoders[self.active](actions))
