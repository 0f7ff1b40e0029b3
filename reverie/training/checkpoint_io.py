"""Checkpoint files that are never half-written and never unpickle code, on every strategy.

Saving goes to `NAME.tmp` and is renamed into place. Every load goes through `load_data`, that is
`torch.load(weights_only=True)`: a checkpoint holds only tensors and plain Python containers and
numbers, and a file holding anything else is refused before any of it runs. Two loads in the
libraries do otherwise, and are replaced here: Lightning's FSDP load of a full checkpoint unpickles
with its own lazy loader, which builds any object (`DataOnlyFSDPStrategy`), and DeepSpeed's engine
loads its files with `weights_only=False` (`DataOnlyDeepSpeedStrategy`, which allows DeepSpeed's
own state classes and nothing else).
"""

from __future__ import annotations

import importlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.strategies.fsdp import _get_full_state_dict_context
from lightning.fabric.strategies.model_parallel import _load_raw_module_state
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from lightning.pytorch.trainer.states import TrainerFn

# The classes DeepSpeed pickles into its own checkpoint files (its loss scalers, the ZeRO stage,
# parameter slice addresses): plain fields, rebuilt without running code of the file's choosing.
DEEPSPEED_STATE_CLASSES = {
    "deepspeed.runtime.fp16.loss_scaler": ("LossScaler", "DynamicLossScaler"),
    "deepspeed.runtime.zero.config": ("ZeroStageEnum",),
    "deepspeed.utils.tensor_fragment": ("fragment_address",),
}


class CheckpointError(ValueError):
    """A checkpoint that does not load as data: cut short, or holding more than tensors and plain data."""

    def __init__(self, path: _PATH, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def load_data(path: _PATH, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """`path` loaded with `torch.load(weights_only=True)` (its tensors mapped rather than read with
    `mmap`); CheckpointError naming it when it is cut short or holds pickled objects."""
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise CheckpointError(path, "truncated or not a checkpoint (no zip directory at its end: cut off while copied?)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise CheckpointError(path, f"holds pickled objects, not only tensors and plain data ({_what_was_refused(error)}); refused") from error


def _what_was_refused(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights_only message that says what the file asked for."""
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(" was not an allowed global")[0].strip()
    return str(error).splitlines()[0]


def checkpoint_problem(path: _PATH) -> str | None:
    """Why the checkpoint at `path` would not load as data, or None. Its tensors are mapped, not
    read, so this is quick at any size. A folder is a DeepSpeed checkpoint, whole once DeepSpeed
    has written its `latest` file (its last step of a save)."""
    path = Path(path)
    if path.is_dir():
        return None if (path / "latest").is_file() else "an incomplete DeepSpeed checkpoint (no `latest` file: its save was cut off)"
    try:
        load_data(path, mmap=True)
    except CheckpointError as error:
        return error.reason
    except Exception as error:  # whatever else stops it loading, in torch's words
        return f"does not load ({type(error).__name__}: {str(error).splitlines()[0]})"
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        with open(partial, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_data(path, map_location or "cpu")


class DataOnlyFSDPStrategy(FSDPStrategy):
    """FSDP whose full-checkpoint load reads the file with `load_data`, then puts the state into the
    wrapped model and the optimizers as Lightning's own `load_checkpoint` does. A folder (a sharded
    checkpoint) is refused: `reverie train` writes FSDP checkpoints whole (`state_dict_type="full"`)."""

    def load_checkpoint(self, checkpoint_path: _PATH, weights_only: bool | None = None) -> dict[str, Any]:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp import OptimStateKeyType

        path = Path(self.broadcast(checkpoint_path))
        if not path.is_file():
            raise CheckpointError(path, "not a full checkpoint file; reverie writes FSDP checkpoints whole")
        checkpoint = load_data(path, mmap=True)  # mapped: the ranks share one copy, in the page cache
        module = self.lightning_module
        _load_raw_module_state(checkpoint.pop("state_dict"), module=self.model, world_size=self.world_size, strict=module.strict_loading)
        optimizer_states = checkpoint.get("optimizer_states")
        if optimizer_states is None or module.trainer.state.fn != TrainerFn.FITTING:
            return checkpoint
        if len(optimizer_states) != len(self.optimizers):
            raise CheckpointError(path, f"holds {len(optimizer_states)} optimizer states for {len(self.optimizers)} optimizers")
        with _get_full_state_dict_context(self.model, world_size=self.world_size, rank0_only=False):
            for optimizer, state in zip(self.optimizers, optimizer_states):
                if isinstance(next(iter(state["state"]), None), int):  # saved from an optimizer outside FSDP
                    state = FSDP.rekey_optim_state_dict(state, OptimStateKeyType.PARAM_NAME, self.model)
                optimizer.load_state_dict(FSDP.optim_state_dict_to_load(optim_state_dict=state, model=self.model, optim=optimizer))
        return checkpoint


def deepspeed_state_classes() -> list[type]:
    """The classes of `DEEPSPEED_STATE_CLASSES` that the installed DeepSpeed has."""
    found = []
    for module_name, names in DEEPSPEED_STATE_CLASSES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [getattr(module, name) for name in names if hasattr(module, name)]
    return found


def load_deepspeed_file(path: _PATH, map_location: Any = None) -> Any:
    """One file of a DeepSpeed checkpoint, as data: `load_data` allowing DeepSpeed's state classes."""
    with torch.serialization.safe_globals(deepspeed_state_classes()):
        return load_data(path, map_location)


class DataOnlyDeepSpeedStrategy(DeepSpeedStrategy):
    """DeepSpeed whose engine reads every file of a checkpoint folder with `load_deepspeed_file`
    (its engine reads them through `checkpoint_engine.load`, by default `weights_only=False`)."""

    def load_checkpoint(self, checkpoint_path: _PATH, weights_only: bool | None = None) -> dict[str, Any]:
        self.deepspeed_engine.checkpoint_engine.load = load_deepspeed_file
        return super().load_checkpoint(checkpoint_path, weights_only=True)
