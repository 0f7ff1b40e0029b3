"""Actions as tokens of a world model's sequence: one action, one embedding, as IRIS embeds its
Atari actions ([14] Micheli et al. 2023, Sec. 2.2), for the three kinds of action space the
recorded episodes hold (`reverie.shards.episodes`):

    {"kind": "discrete", "n": 18}            (..,) int64 in [0, n)      -> Embedding(n)
    {"kind": "multi_discrete", "nvec": [..]} (.., K) int64, each in [0, nvec[k]) -> sum_k Embedding_k(nvec[k])
    {"kind": "continuous", "dim": 2}         (.., dim) float            -> Linear(dim)

`check` refuses actions that do not fit the space (shape, dtype, range) with an `ActionSpaceError`
naming them; it is a `ContextError`, what the world-model interface raises for bad input.
"""

from __future__ import annotations

import torch
from torch import nn

from reverie.nn.world_model import ContextError

KINDS = ("discrete", "multi_discrete", "continuous")
SIZE_FIELDS = {"discrete": "n", "multi_discrete": "nvec", "continuous": "dim"}


class ActionSpaceError(ContextError):
    """Actions that do not fit a model's action space, or a space description it cannot embed; names them."""


class ActionEmbedding(nn.Module):
    """(.., *action_shape) actions -> (.., width) tokens, for one action space (see the module docstring)."""

    def __init__(self, space: dict, width: int):
        super().__init__()
        kind = space.get("kind")
        if kind not in KINDS or SIZE_FIELDS[kind] not in space:
            raise ActionSpaceError(
                f"action_space {space}: give one of "
                + ", ".join(f'{{"kind": "{name}", "{size}": ...}}' for name, size in SIZE_FIELDS.items())
            )
        self.kind = kind
        if kind == "continuous":
            self.shape = (int(space["dim"]),)
            self.projection = nn.Linear(self.shape[0], width)
        else:
            self.sizes = [int(space["n"])] if kind == "discrete" else [int(n) for n in space["nvec"]]
            self.shape = () if kind == "discrete" else (len(self.sizes),)
            self.tables = nn.ModuleList(nn.Embedding(size, width) for size in self.sizes)

    def describe(self) -> str:
        if self.kind == "continuous":
            return f"a continuous action space of dim {self.shape[0]}"
        if self.kind == "discrete":
            return f"a discrete action space of {self.sizes[0]} actions"
        return f"a multi-discrete action space of nvec {self.sizes}"

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        if self.kind == "continuous":
            return self.projection(actions.to(self.projection.weight.dtype))
        if self.kind == "discrete":
            return self.tables[0](actions)
        return sum(table(actions[..., index]) for index, table in enumerate(self.tables))

    def none(self, batch: int, device: torch.device) -> torch.Tensor:
        """(B, 0, *action_shape): the actions of a context of one frame."""
        return torch.zeros(batch, 0, *self.shape, dtype=torch.float32 if self.kind == "continuous" else torch.int64, device=device)

    def check(self, actions: torch.Tensor, leading: tuple[int, ...], what: str) -> None:
        """ActionSpaceError naming how `actions`, expected (*leading, *action_shape), do not fit."""
        expected = (*leading, *self.shape)
        if not torch.is_tensor(actions) or tuple(actions.shape) != expected:
            shape = tuple(actions.shape) if torch.is_tensor(actions) else type(actions).__name__
            raise ActionSpaceError(f"{what} of shape {shape}: expected {expected} for {self.describe()}")
        if self.kind == "continuous":
            if not actions.is_floating_point():
                raise ActionSpaceError(f"{what} of dtype {actions.dtype}: {self.describe()} takes floats")
            return
        if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
            raise ActionSpaceError(f"{what} of dtype {actions.dtype}: {self.describe()} takes integer codes")
        high = torch.tensor(self.sizes if self.shape else self.sizes[0], device=actions.device)
        outside = (actions < 0) | (actions >= high)
        if bool(outside.any()):
            raise ActionSpaceError(f"{what}: {actions[outside][0].item()} is outside {self.describe()} (codes 0 to n - 1)")
