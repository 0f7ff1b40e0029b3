"""Run configs: a YAML file under `configs/`, merged over typed defaults, then `key=value` overrides.

    cfg = load_config("configs/autoencoder/tiny.yaml", ["trainer.max_steps=50", "optim.lr=1e-3"])

Unknown keys are errors (OmegaConf structured configs), so a typo in an override fails loudly
instead of being ignored. `model` and `data` are free-form: the registered task and data module
read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


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
class RunSettings:
    dir: str = "runs/${run.name}"
    name: str = "run"
    seed: int = 0
    wandb: bool = False  # log to Weights & Biases too (when it is installed)


@dataclass
class TrainConfig:
    task: str = "???"  # a name registered in reverie.training.registry.TASKS
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    ema: float | None = 0.999  # decay of the exponential moving average of the weights; null: off
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    run: RunSettings = field(default_factory=RunSettings)


def load_config(path: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """The config at `path` over the defaults, with `key=value` overrides applied, resolved."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config {path} not found")
    schema = OmegaConf.structured(TrainConfig)
    try:
        config = OmegaConf.merge(schema, OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides or [])))
        OmegaConf.resolve(config)
    except OmegaConfBaseException as error:
        where = f"{error.full_key}: " if getattr(error, "full_key", None) else ""
        raise ValueError(f"config {path}: {where}{str(error).splitlines()[0]}") from error
    return config


def save_config(config: DictConfig, path: Path) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(OmegaConf.to_yaml(config, resolve=True))
    partial.replace(path)
