"""Run configs: a YAML file under `configs/`, merged over typed defaults, then `key=value` overrides.

    cfg = load_config("configs/autoencoder/tiny.yaml", ["trainer.max_steps=50", "optim.lr=1e-3"])

Unknown keys are errors that list the known ones (OmegaConf structured configs), so a typo in an
override fails loudly instead of being ignored. `model` is free-form in the file, and checked
against the config dataclass of the model it names (`check_model_config`).

A run folder keeps the config it was started with (`config.yaml`); running it again resumes, and
`check_resumable` refuses a config that differs from the stored one in anything but `RESUMABLE`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

# What a resumed run may change: its length, its logging, its checkpointing, and its layout on disk.
# `run.dir` is the folder itself (a copied or moved folder stored another), and `data.shards` is
# where the data lives now: the loader's resume state fingerprints the shards by name, weight and
# window, so other data is refused there, not here.
RESUMABLE = ("trainer.max_steps", "trainer.log_every_n_steps", "run.wandb", "checkpoint.*", "run.dir", "data.shards")


class RunInputError(ValueError):
    """A run `reverie train` refuses before any work: the config does not fit its run folder, or
    its data or checkpoints are not there. The message names the key or file and the reason."""


@dataclass
class TrainerSettings:
    max_steps: int = 1000
    strategy: str = "auto"  # auto | ddp | fsdp | deepspeed_stage_2 | deepspeed_stage_3
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0
    activation_checkpointing: bool = False
    compile: bool = False
    log_every_n_steps: int = 10
    deterministic: bool = False


@dataclass
class OptimSettings:
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1


@dataclass
class CheckpointSettings:
    every_n_steps: int = 500
    keep: int = 3


@dataclass
class DataSettings:
    """The data module `name` (in `reverie.training.registry.DATAMODULES`) and what it reads; the
    fields are those of the shard data module (`reverie.training.shard_data`)."""

    name: str = "shards"
    shards: Any = None  # a folder, a glob or brace pattern, or a list of them or of {shards, weight} mappings
    window: int | None = None  # frames per sample; None: each clip whole
    batch_size: int = 8
    num_workers: int = 0
    shuffle_buffer: int = 64  # samples
    samples_per_epoch: int | None = None  # None: counted from the shards


@dataclass
class RunSettings:
    dir: str = "runs/${run.name}"
    name: str = "run"
    seed: int = 0
    wandb: bool = False  # log to Weights & Biases too (when it is installed)


@dataclass
class TrainConfig:
    task: str = "???"  # a name registered in reverie.training.registry.TASKS
    model: dict = field(default_factory=dict)
    data: DataSettings = field(default_factory=DataSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    ema: float | None = 0.999  # decay of the exponential moving average of the weights; null: off
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    run: RunSettings = field(default_factory=RunSettings)


def load_config(path: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """The config at `path` over the defaults, with `key=value` overrides applied, resolved, and its
    model config checked (`check_model_config`). Raises ValueError naming the key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config {path} not found")
    try:
        config = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides or [])))
        OmegaConf.resolve(config)
    except OmegaConfBaseException as error:
        raise ValueError(f"config {path}: {describe(error)}") from error
    problem = check_model_config(config)
    if problem:
        raise ValueError(f"config {path}: {problem}")
    return config


def describe(error: OmegaConfBaseException) -> str:
    """OmegaConf's error in one line, naming the key; for an unknown key, the known ones too."""
    where = f"{error.full_key}: " if getattr(error, "full_key", None) else ""
    line = str(error).splitlines()[0]
    if isinstance(error, ConfigKeyError) and dataclasses.is_dataclass(getattr(error, "object_type", None)):
        line += "; known: " + ", ".join(field.name for field in dataclasses.fields(error.object_type))
    return where + line


def check_model_config(config: DictConfig) -> str | None:
    """Why `model` does not build the model it names, or None. Only the `model` task has a known
    schema: `model.name` (in `reverie.nn.model_folder.MODELS`) and that model's config fields."""
    if config.task != "model":
        return None
    from reverie.nn.model_folder import MODELS  # imports torch: only once a config is checked

    name = config.model.get("name")
    if name not in MODELS:
        return f"model.name: unknown model {name!r}; known: {', '.join(MODELS.names())}"
    known = [field.name for field in dataclasses.fields(MODELS.get(name).config_class)]
    unknown = [key for key in config.model if key != "name" and key not in known]
    if unknown:
        keys = ", ".join(f"model.{key}" for key in unknown)
        return f"{keys}: not a field of {name}'s config; known: {', '.join(known)}"
    return None


def save_config(config: DictConfig, path: Path) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(OmegaConf.to_yaml(config, resolve=True))
    partial.replace(path)


def check_resumable(config: DictConfig, run_dir: Path) -> None:
    """Raise RunInputError listing the differences when `run_dir` holds a run (its `config.yaml`)
    of another config than `config`, in anything but the keys `RESUMABLE` names."""
    stored_file = Path(run_dir) / "config.yaml"
    if not stored_file.exists():
        return
    try:
        stored = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(stored_file))
    except OmegaConfBaseException as error:
        raise RunInputError(f"{stored_file}: {describe(error)} (written by another reverie version?)") from error
    changed = [line for key, line in differences(leaves(stored), leaves(config)) if not any(fnmatch(key, free) for free in RESUMABLE)]
    if changed:
        allowed = ", ".join(RESUMABLE)
        raise RunInputError(
            f"{run_dir} holds a run of another config ({'; '.join(changed)}); only {allowed} may change when a run resumes: "
            f"run it with its stored config, use another run.dir, or remove {run_dir} to start over"
        )


def leaves(config: DictConfig) -> dict[str, Any]:
    """`dotted.key -> value` for every leaf of `config` (lists are values)."""
    flat = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(config, resolve=True), "")
    return flat


def differences(stored: dict[str, Any], asked: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, `key: stored -> asked`) for every key whose value differs, in key order."""
    keys = sorted(stored.keys() | asked.keys())
    return [(key, f"{key}: {stored.get(key)!r} -> {asked.get(key)!r}") for key in keys if stored.get(key) != asked.get(key)]
