"""`reverie train`: build the Lightning Trainer a config asks for and fit, resuming when it can.

The run folder holds the resolved `config.yaml`, `metrics.csv`, TensorBoard logs under `tb/`, and
`checkpoints/` (`step-XXXXXXXX.ckpt`, the newest `keep` of them, and `last.ckpt` linking to the
newest). Starting the same command again resumes from the newest checkpoint: after a kill, a
crash, or the stop signal SLURM sends before pre-emption (see `StepCheckpoints`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from reverie.nn.model_folder import MODELS
from reverie.training.callbacks import LoaderPosition, MetricsCSV, RNGState, StepCheckpoints
from reverie.training.checkpoint_io import AtomicCheckpointIO
from reverie.training.config import save_config
from reverie.training.registry import DATAMODULES, TASKS


def build_strategy(config: DictConfig, blocks: tuple[type, ...]):
    """The distributed strategy from `trainer.strategy` (FSDP wraps and checkpoints `blocks`)."""
    name = config.trainer.strategy
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        checkpointing = set(blocks) if config.trainer.activation_checkpointing else None
        return FSDPStrategy(auto_wrap_policy=set(blocks) or None, activation_checkpointing_policy=checkpointing, state_dict_type="full")
    if name.startswith("deepspeed"):
        if importlib.util.find_spec("deepspeed") is None:
            raise RuntimeError(f"trainer.strategy={name} needs DeepSpeed: pip install deepspeed")
        return name
    if name == "ddp" and not torch.cuda.is_available():
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(process_group_backend="gloo")
    return name


def apply_activation_checkpointing(model: torch.nn.Module, blocks: tuple[type, ...]) -> None:
    """Recompute the activations of every `blocks` module in the backward pass."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing as wrap

    wrap(model, check_fn=lambda module: isinstance(module, blocks))


def resume_checkpoint(run_dir: Path) -> str | None:
    """The run's newest complete checkpoint, or None for a new run. Found by name rather than
    through `last.ckpt`, which a kill can catch between unlinking and relinking."""
    steps = sorted((run_dir / "checkpoints").glob("step-*.ckpt"))  # zero-padded: name order is step order
    return str(steps[-1]) if steps else None


def build_trainer(config: DictConfig, run_dir: Path, callbacks: list[L.Callback]) -> L.Trainer:
    settings = config.trainer
    checkpoints = StepCheckpoints(
        dirpath=run_dir / "checkpoints",
        filename="step-{step:08d}",
        auto_insert_metric_name=False,
        every_n_train_steps=config.checkpoint.every_n_steps,
        save_top_k=config.checkpoint.keep,
        monitor="step",
        mode="max",
        save_last="link",
    )
    callbacks = [checkpoints, RNGState(), MetricsCSV(run_dir / "metrics.csv"), RichProgressBar(), *callbacks]
    if config.ema:
        callbacks.append(EMAWeightAveraging(decay=config.ema))
    loggers = [TensorBoardLogger(run_dir, name="tb", version="")]
    if config.run.wandb and importlib.util.find_spec("wandb"):
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project="reverie", name=config.run.name, save_dir=str(run_dir)))
    plugins = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():  # ranks from SLURM; StepCheckpoints handles the requeue signal
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return L.Trainer(
        default_root_dir=run_dir,
        max_steps=settings.max_steps,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=build_strategy(config, block_types(config)),
        precision=settings.precision,
        accumulate_grad_batches=settings.accumulate_grad_batches,
        gradient_clip_val=settings.gradient_clip_val,
        log_every_n_steps=settings.log_every_n_steps,
        deterministic=settings.deterministic,
        callbacks=callbacks,
        logger=loggers,
        plugins=plugins,
        enable_model_summary=False,
        use_distributed_sampler=False,  # the shard loader splits by rank itself
    )


def block_types(config: DictConfig) -> tuple[type, ...]:
    """The model's repeated blocks: what FSDP wraps and activation checkpointing recomputes."""
    return tuple(getattr(MODELS.get(config.model.name), "checkpoint_blocks", ())) if "name" in config.model else ()


def fit(config: DictConfig) -> Path:
    """Train (or resume) the run `config` describes; return its run folder."""
    run_dir = Path(config.run.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    L.seed_everything(config.run.seed, workers=True, verbose=False)
    task = TASKS.get(config.task)(OmegaConf.to_container(config.model), config.optim, config.trainer.max_steps)
    if config.trainer.activation_checkpointing and config.trainer.strategy != "fsdp":
        apply_activation_checkpointing(task.model, block_types(config))
    datamodule = DATAMODULES.get(config.data.get("name", "shards"))(OmegaConf.to_container(config.data), seed=config.run.seed)
    trainer = build_trainer(config, run_dir, [LoaderPosition()])
    if config.trainer.compile:
        task.model.compile()  # in place: the state_dict keys stay those of the plain model
    checkpoint = resume_checkpoint(run_dir)
    if checkpoint and trainer.is_global_zero:
        print(f"resuming {run_dir} from {checkpoint}", flush=True)
    trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    return run_dir
