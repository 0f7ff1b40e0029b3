"""Tasks (Lightning modules) and data modules that `reverie train` builds by name.

A task class takes `(model_config: dict, optim: OptimSettings, total_steps: int)`; a data module
takes `(data_config: DataSettings, seed: int)` (both settings in `reverie.training.config`). Their
modules are imported when a config names them, so the CLI does not import every model up front.
"""

from __future__ import annotations

from reverie.registry import Registry

TASKS = Registry("task", lazy={"model": "reverie.training.model_task"})
DATAMODULES = Registry("datamodule", lazy={"shards": "reverie.training.shard_data"})
