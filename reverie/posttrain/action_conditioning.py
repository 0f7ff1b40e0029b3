"""Action post-training of a video world model: the step by which Cosmos ([25] NVIDIA 2025, Sec. 6,
"post-training ... for robotic manipulation") and UniSim ([17] Yang et al. 2024) turn a model
pretrained on video into a simulator that a robot's actions drive.

The pretrained model is a latent diffusion world model (`reverie.pretrain.latent_diffusion`, the
Oasis [24] / Cosmos latent DiT with diffusion forcing) trained on video without actions: every
frame of its training took the null action. Post-training replaces its action embedding by
UniSim's unified action space (`reverie.posttrain.unified_actions`): one small encoder per action
space into a shared embedding, mapped to the conditioning by a zero-initialised layer on top of
the pretrained null embedding. At step 0 the post-trained model is therefore the pretrained one,
exactly, whatever the actions; the training loss is the pretrained model's own (diffusion
forcing's v-prediction), now on windows with their actions (dropped with probability
`action_dropout`, for classifier-free guidance).

Two ways to train, as `lora_rank` chooses:
- full post-training (`lora_rank: 0`): every weight of the DiT, and the action encoders, train;
- LoRA (Hu et al. 2021) through peft (`reverie.posttrain.lora`): low-rank adapters on the DiT's
  linear layers named in `lora_targets` train with the action encoders; the pretrained weights stay
  frozen.
`from_scratch: true` builds a fresh DiT of the pretrained architecture over the same frozen
tokenizer: the baseline that shows what pretraining on video brings to the same post-training.

Datasets. A sample's action space is named by the field `space_field` of its metadata:
`robot_type`, which LeRobot datasets carry (`reverie ingest` keeps it), by default. With one entry
in `action_spaces` every sample takes it. A batch that mixes spaces trains each space's windows
through its own encoder, the loss the windows' mean. A batch without some space leaves that
space's encoder without a gradient, which DDP refuses: with several spaces on several GPUs, train
with `trainer.strategy=ddp_find_unused_parameters_true` (Lightning's name for it).

As a world model (`reverie.nn.world_model`) it acts in `play_space` (default: the first of
`action_spaces`); `using(name)` acts in another inside a block. Its folder holds the pretrained
model's config (the record in `pretrained`) and all its weights, so it loads without the folder
it was post-trained from.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from reverie.nn.dit_block import DiTBlock
from reverie.nn.model_folder import MODELS, load_model_folder, read_config
from reverie.nn.world_model import WorldModel, WorldStep
from reverie.posttrain.lora import add_lora
from reverie.posttrain.unified_actions import UnifiedActionEmbedding
from reverie.pretrain.action_tokens import ActionSpaceError
from reverie.pretrain.latent_diffusion import LatentDiffusionConfig, LatentDiffusionWorldModel
from reverie.shards.clip_tensors import stack_or_list

DIT_LINEARS = ["qkv", "proj", "mlp.0", "mlp.2", "to_modulation"]  # attention, MLP and adaLN layers of the DiT blocks


@dataclass
class ActionConditioningConfig:
    pretrained: str | dict | None = None  # a latent_diffusion_world_model's folder (trained on video); its record once built
    from_scratch: bool = False  # True: a fresh DiT of the pretrained architecture, the same tokenizer (the no-pretraining baseline)
    action_spaces: dict = field(default_factory=dict)  # name -> action space (reverie.pretrain.action_tokens), one encoder each
    space_field: str = "robot_type"  # the sample metadata field that names its action space
    play_space: str | None = None  # the space start/step take; default: the first of action_spaces
    encoder_width: int = 64  # U, the shared width of the unified action embedding
    action_dropout: float = 0.1  # probability that a window trains with the null action (for guidance)
    lora_rank: int = 0  # >0: train LoRA adapters of this rank on the DiT (and the action encoders), nothing else
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: list(DIT_LINEARS))

    @property
    def frame_size(self) -> list[int]:
        return self.pretrained["config"]["frame_size"]

    @property
    def action_space(self) -> dict:
        return self.action_spaces[self.play_space]


class ActionConditioningError(ValueError):
    """A config that cannot build the post-trained model, or a batch it cannot train on; names the field, shard or space."""


def check_config(config: ActionConditioningConfig) -> None:
    if config.pretrained is None:
        raise ActionConditioningError("pretrained: not set; give the model folder of a latent_diffusion_world_model trained on video (model.pretrained=PATH)")
    if not config.action_spaces:
        raise ActionConditioningError("action_spaces: empty; name each dataset's action space, e.g. {my_robot: {kind: continuous, dim: 7}}")
    if config.play_space is not None and config.play_space not in config.action_spaces:
        raise ActionConditioningError(f"play_space {config.play_space!r}: not one of action_spaces ({', '.join(config.action_spaces)})")
    if config.lora_rank < 0 or config.encoder_width < 1:
        raise ActionConditioningError(f"lora_rank {config.lora_rank}, encoder_width {config.encoder_width}: lora_rank >= 0, encoder_width >= 1")


def pretrained_world_model(source: str | Path | dict, from_scratch: bool) -> tuple[LatentDiffusionWorldModel, dict]:
    """The pretrained model (its weights, or fresh ones from scratch or from a record) and its record."""
    if isinstance(source, dict):
        if source.get("model") != LatentDiffusionWorldModel.registry_name or "config" not in source:
            raise ActionConditioningError(f"pretrained record {sorted(source)}: give a latent_diffusion_world_model's folder or a post-trained model's record")
        return LatentDiffusionWorldModel(LatentDiffusionConfig(**source["config"])), source
    folder = Path(source)
    if not (folder / "config.json").is_file():
        raise ActionConditioningError(f"pretrained {folder}: not a model folder (no config.json)")
    model_class, fields = read_config(folder / "config.json")
    if model_class is not LatentDiffusionWorldModel:
        raise ActionConditioningError(f"pretrained {folder}: holds {model_class.registry_name}; action post-training takes a latent_diffusion_world_model")
    world = load_model_folder(folder)
    if from_scratch:  # a fresh DiT over the same frozen tokenizer
        pretrained_tokenizer = world.tokenizer.state_dict()
        world = model_class(model_class.config_class(**fields))
        world.tokenizer.load_state_dict(pretrained_tokenizer)
    return world, {"model": world.registry_name, "config": dataclasses.asdict(world.config), "from": str(folder), "from_scratch": from_scratch}


@MODELS.register("action_conditioned_world_model")
class ActionConditionedWorldModel(nn.Module, WorldModel):
    registry_name = "action_conditioned_world_model"
    config_class = ActionConditioningConfig
    checkpoint_blocks = (DiTBlock,)

    def __init__(self, config: ActionConditioningConfig):
        super().__init__()
        check_config(config)
        self.world, config.pretrained = pretrained_world_model(config.pretrained, config.from_scratch)
        config.play_space = config.play_space or next(iter(config.action_spaces))
        self.config = config
        self.max_context = self.world.max_context
        self.world.config.action_dropout = config.action_dropout
        network = self.world.network
        if config.lora_rank:  # before the new embedding goes in: the adapters go into the pretrained layers only
            add_lora(network, config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets)
        width = network.null_action.shape[0]
        network.action_embedding = UnifiedActionEmbedding(config.action_spaces, width, config.encoder_width, network.null_action)
        self.use(config.play_space)

    @property
    def actions(self) -> UnifiedActionEmbedding:
        return self.world.network.action_embedding

    def use(self, name: str) -> None:
        """Read actions in the space `name` (the inner model checks recorded spaces against it)."""
        self.actions.select(name)
        self.world.config.action_space = self.config.action_spaces[name]

    @contextmanager
    def using(self, name: str) -> Iterator[None]:
        """Act in the action space `name` inside the block (ActionSpaceError for one without an encoder)."""
        before = self.actions.active
        self.use(name)
        try:
            yield
        finally:
            self.use(before)

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The pretrained model's loss on each action space's windows of the batch, weighted by their count."""
        groups = self.space_groups(batch)
        size = sum(len(rows) for rows in groups.values())
        loss = 0.0
        for (name, _), rows in groups.items():
            with self.using(name):
                loss = loss + self.world.training_losses(batch_rows(batch, rows, size))["loss"] * (len(rows) / size)
        return {"loss": loss}

    def space_groups(self, batch: dict) -> dict[tuple[str, bool], list[int]]:
        """The batch's windows by (the action space they take, whether they have actions); windows
        without actions take play_space."""
        metas = batch.get("meta") or [{}] * batch_size(batch)
        has_actions = torch.as_tensor(batch.get("has_actions", "actions" in batch)).reshape(-1).expand(len(metas))
        shards = batch.get("shard") or ["?"] * len(metas)
        keys = batch.get("key") or ["?"] * len(metas)
        groups: dict[tuple[str, bool], list[int]] = {}
        for row, (meta, with_actions) in enumerate(zip(metas, has_actions.tolist())):
            name = self.space_of(meta or {}, f"{shards[row]}: sample {keys[row]}") if with_actions else self.config.play_space
            groups.setdefault((name, with_actions), []).append(row)
        return groups

    def space_of(self, meta: dict, where: str) -> str:
        if len(self.config.action_spaces) == 1:
            return self.config.play_space
        name = meta.get(self.config.space_field)
        if name is None:
            raise ActionConditioningError(f"{where}: its metadata has no {self.config.space_field!r} naming its action space (model.space_field)")
        if name not in self.config.action_spaces:
            raise ActionSpaceError(
                f"{where}: {self.config.space_field} {name!r} has no action encoder; this model has encoders for "
                f"{', '.join(self.config.action_spaces)} (model.action_spaces)"
            )
        return name

    def start(self, context_frames: torch.Tensor, context_actions: torch.Tensor | None, generator: torch.Generator | None = None) -> None:
        self.world.start(context_frames, context_actions, generator)

    def step(self, action: torch.Tensor | None) -> WorldStep:
        return self.world.step(action)

    def generate(self, actions: torch.Tensor | None, frames: int | None = None, **overrides) -> torch.Tensor:
        """The pretrained model's `generate`, in the active action space."""
        return self.world.generate(actions, frames, **overrides)


def batch_size(batch: dict) -> int:
    """B, from the batch's frames, latents or tokens."""
    for name in ("frames", "latents", "tokens"):
        if torch.is_tensor(batch.get(name)):
            return batch[name].shape[0]
    raise ActionConditioningError(f"a batch of {', '.join(sorted(batch))}: needs frames, latents or tokens (B, T, ...)")


def batch_rows(batch: dict, rows: list[int], size: int) -> dict:
    """The batch's windows `rows` (of `size`): per-window tensors and lists cut to them, the rest kept."""
    index = torch.tensor(rows)
    picked = {}
    for name, value in batch.items():
        if torch.is_tensor(value) and value.ndim and value.shape[0] == size:
            picked[name] = value[index.to(value.device)]
        elif isinstance(value, list) and len(value) == size:
            picked[name] = stack_or_list([value[row] for row in rows])
        else:
            picked[name] = value
    return picked


def trainable_share(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters) of `model`."""
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)
