"""`reverie train`: build the Lightning Trainer a config asks for and fit, resuming when it can.

The run folder holds the resolved `config.yaml`, `metrics.csv`, TensorBoard logs under `tb/`, and
`checkpoints/` (`step-XXXXXXXX.ckpt`, the newest `keep` of them, and `last.ckpt` linking to the
newest). Starting the same command again resumes from the newest checkpoint that loads: after a
kill, a crash, or the stop signal SLURM sends before pre-emption (see `StepCheckpoints`).

Before any work, and before it writes any file, `fit` takes the run folder's lock (one writer per
folder: a second copy of the command stops with `FolderLockedError`), refuses a config that differs
from the stored one (`check_resumable`), and lists the data; each refusal is a `RunInputError`.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from reverie.nn.model_folder import MODELS
from reverie.shards.folder_lock import FolderLock
from reverie.training.callbacks import LoaderPosition, MetricsCSV, RNGState, StepCheckpoints
from reverie.training.checkpoint_io import AtomicCheckpointIO, DataOnlyDeepSpeedStrategy, DataOnlyFSDPStrategy, checkpoint_problem
from reverie.training.config import RunInputError, check_resumable, save_config
from reverie.training.registry import DATAMODULES, TASKS

# Where launchers put a process's rank before any process group exists: torchrun, srun, and
# Lightning's own launcher of the other local processes.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")


def build_strategy(config: DictConfig, blocks: tuple[type, ...]):
    """The distributed strategy from `trainer.strategy` (FSDP wraps and checkpoints `blocks`). FSDP
    and DeepSpeed load their checkpoints as data (`reverie.training.checkpoint_io`)."""
    name = config.trainer.strategy
    if name == "fsdp":
        checkpointing = set(blocks) if config.trainer.activation_checkpointing else None
        return DataOnlyFSDPStrategy(auto_wrap_policy=set(blocks) or None, activation_checkpointing_policy=checkpointing, state_dict_type="full")
    if name.startswith("deepspeed"):
        from lightning.pytorch.strategies import StrategyRegistry

        if importlib.util.find_spec("deepspeed") is None:
            raise RuntimeError(f"trainer.strategy={name} needs DeepSpeed: pip install deepspeed")
        known = [known for known in StrategyRegistry if known.startswith("deepspeed")]
        if name not in known:
            raise ValueError(f"trainer.strategy={name}: unknown; known: {', '.join(known)}")
        return DataOnlyDeepSpeedStrategy(**StrategyRegistry[name]["init_params"])
    if name == "ddp" and not torch.cuda.is_available():
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(process_group_backend="gloo")
    return name


def apply_activation_checkpointing(model: torch.nn.Module, blocks: tuple[type, ...]) -> None:
    """Recompute the activations of every `blocks` module in the backward pass."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing as wrap

    wrap(model, check_fn=lambda module: isinstance(module, blocks))


def resume_checkpoint(run_dir: Path, say: Callable[[str], None] = print) -> str | None:
    """The run's newest checkpoint that loads, or None for a new run. Found by name rather than
    through `last.ckpt`, which a kill can catch between unlinking and relinking. A newer one that
    does not load (cut short by a copy, or holding more than data) is skipped, with a line to `say`;
    a run none of whose checkpoints loads is a RunInputError, not a new run."""
    steps = sorted(Path(run_dir, "checkpoints").glob("step-*.ckpt"))  # zero-padded: name order is step order
    problems = []
    for path in reversed(steps):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        say(f"skipping {path}: {problem}")
        problems.append(f"{path.name}: {problem}")
    if problems:
        raise RunInputError(f"{Path(run_dir, 'checkpoints')}: no checkpoint loads ({'; '.join(problems)}); move them away to start over")
    return None


def launched_as_rank_zero() -> bool:
    """Whether this process is rank 0 of its run, as its launcher said (`RANK_VARIABLES`), before
    the trainer is built: the one process that locks the run folder and writes its config."""
    return all(os.environ.get(name, "0") in ("", "0") for name in RANK_VARIABLES)


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
    """Train (or resume) the run `config` describes; return its run folder. Raises
    FolderLockedError or RunInputError before it writes anything (see the module docstring)."""
    run_dir = Path(config.run.dir)
    rank_zero = launched_as_rank_zero()
    with FolderLock(run_dir) if rank_zero else nullcontext():  # held to the end of the run
        check_resumable(config, run_dir)
        datamodule = DATAMODULES.get(config.data.name)(OmegaConf.to_object(config.data), seed=config.run.seed)
        checkpoint = resume_checkpoint(run_dir, say=print if rank_zero else lambda line: None)
        if rank_zero:
            save_config(config, run_dir / "config.yaml")
        L.seed_everything(config.run.seed, workers=True, verbose=False)
        task = TASKS.get(config.task)(OmegaConf.to_container(config.model), config.optim, config.trainer.max_steps)
        if config.trainer.activation_checkpointing and config.trainer.strategy != "fsdp":
            apply_activation_checkpointing(task.model, block_types(config))
        trainer = build_trainer(config, run_dir, [LoaderPosition()])
        if config.trainer.compile:
            task.model.compile()  # in place: the state_dict keys stay those of the plain model
        if checkpoint and trainer.is_global_zero:
            print(f"resuming {run_dir} from {checkpoint}", flush=True)
        trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    return run_dir
