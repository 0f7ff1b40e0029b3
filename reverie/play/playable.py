"""Any generative world model's folder as something to play: the one adapter between reverie's
model configs and the play loop, read from the config's fields, not from a list of model names.

    frame size      config.frame_size [H, W]  (pixel, latent, token models; maskgit_dynamics)
                    config.height, config.width  (last_frame_world_model)
    action space    config.num_actions -> discrete |A|  (Genie's latent actions, maskgit_dynamics)
                    config.action_space {"kind": "discrete", "n": N}, {"kind": "multi_discrete", "nvec": [...]}
                    or {"kind": "continuous", "dim": D} (kept for the learned env, refused by play)
                    config.actions false (a token model trained on video alone) -> none: step(None)
                    none of these (last_frame_world_model) -> none: step(zeros), which it ignores

Play takes one integer action a step, an index in [0, count). A multi-discrete space of nvec
(n_0, .., n_{K-1}) is played as the one discrete space of its n_0 * .. * n_{K-1} joint actions,
index i standing for the components `numpy.unravel_index(i, nvec)` (the first component the most
significant), so `--actions`, `--idle-action` and the keys take joint indices. A continuous space
cannot be played from keys and is refused by `load_playable`; `playable_of` keeps it for the
learned gymnasium env (`reverie.envs.learned`), which steps with vectors. A model without actions
has one action, index 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reverie.nn.model_folder import load_model_folder
from reverie.nn.world_model import WorldModel


class PlayError(ValueError):
    """Input that cannot be played: names the model, file, flag or key and why, in one line."""


@dataclass
class Playable:
    model: WorldModel
    name: str  # the registry name, e.g. pixel_diffusion_world_model
    frame_size: tuple[int, int]  # (H, W)
    kind: str  # discrete, multi_discrete, continuous (the learned env only) or none
    nvec: tuple[int, ...]  # the sizes of the components: (n,) for discrete, () for none
    steps_without_action: bool = False  # True: step(None) (trained without actions); False: step(codes)

    @property
    def action_count(self) -> int:
        """How many action indices there are: n, the product of nvec, or 1 for none."""
        return int(np.prod(self.nvec)) if self.nvec else 1

    def check_action(self, index: int, what: str) -> int:
        """`index`, or PlayError naming `what` (e.g. "--actions entry 3") when it is out of range."""
        if not 0 <= index < self.action_count:
            raise PlayError(f"{what}: action {index} is out of range; {self.name} takes actions 0 to {self.action_count - 1} ({self.describe_actions()})")
        return index

    def describe_actions(self) -> str:
        if self.kind == "discrete":
            return f"{self.nvec[0]} {'latent ' if self.name == 'maskgit_dynamics' else ''}actions"
        if self.kind == "multi_discrete":
            return f"the {self.action_count} joint actions of multi-discrete nvec {list(self.nvec)}"
        return "no actions (play steps it with action 0)"

    def action_tensor(self, index: int, device: torch.device) -> torch.Tensor | None:
        """The model's action for one world (1, *action_shape) int64, or None for step(None)."""
        if self.steps_without_action:
            return None
        if self.kind == "multi_discrete":
            components = np.unravel_index(index, self.nvec)
            return torch.tensor([[int(component) for component in components]], dtype=torch.int64, device=device)
        return torch.tensor([index], dtype=torch.int64, device=device)


def load_playable(folder: str | Path, device: str) -> Playable:
    """The model folder's world model on `device`, with its frame size and action space; PlayError
    for a folder that is missing, unreadable, not a world model's, or of a continuous action space."""
    model = loaded_model(folder)
    playable = playable_of(model, str(folder), device)
    if playable.kind == "continuous":
        raise PlayError(f"{playable.name}: action_space {model.config.action_space}: play takes discrete or multi-discrete actions from keys, not a continuous space")
    return playable


def loaded_model(folder: str | Path) -> torch.nn.Module:
    """The model of a model folder; PlayError for a folder that is missing or unreadable."""
    try:
        return load_model_folder(Path(folder))
    except (FileNotFoundError, ValueError) as error:  # ModelFolderError, or a config its model refuses
        raise PlayError(str(error)) from error


def playable_of(model, where: str, device: str) -> Playable:
    """A loaded model (`where` names it in messages: its folder) as a Playable on `device`; PlayError
    when it is not a world model. A continuous action space is kept (kind "continuous", nvec
    (dim,)) for callers that step with vectors; `load_playable` refuses it."""
    name = model.registry_name
    if not isinstance(model, WorldModel):
        raise PlayError(f"{where}: its model {name} is not a world model (it has no start/step); play needs a world model's folder")
    config = model.config
    kind, nvec, without = action_space_of(name, config)
    return Playable(model.to(device), name, frame_size_of(where, name, config), kind, nvec, without)


def frame_size_of(where: str, name: str, config) -> tuple[int, int]:
    if hasattr(config, "frame_size"):
        height, width = config.frame_size
    elif hasattr(config, "height") and hasattr(config, "width"):
        height, width = config.height, config.width
    else:
        raise PlayError(f"{where}: {name}'s config has no frame_size (or height and width); play cannot tell the size of its frames")
    return int(height), int(width)


def action_space_of(name: str, config) -> tuple[str, tuple[int, ...], bool]:
    """(kind, nvec, steps without an action) for a model config; see the module docstring."""
    if hasattr(config, "num_actions"):
        return "discrete", (int(config.num_actions),), False
    if not hasattr(config, "action_space"):
        return "none", (), False
    if not getattr(config, "actions", True):
        return "none", (), True
    space = config.action_space
    if space.get("kind") == "discrete":
        return "discrete", (int(space["n"]),), False
    if space.get("kind") == "multi_discrete":
        return "multi_discrete", tuple(int(n) for n in space["nvec"]), False
    if space.get("kind") == "continuous":
        return "continuous", (int(space["dim"]),), False
    raise PlayError(f"{name}: action_space {space}: not a discrete, multi-discrete or continuous space")

