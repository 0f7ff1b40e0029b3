"""The Lightning module that trains any registered model with a `training_losses(batch)` method.

`reverie train` configs name the model (`model.name`) and its config fields beside it; this module
builds it, steps AdamW with a warmup + cosine schedule, and logs every loss term. A model with an
`after_optimizer_step(step, total_steps)` method has it called after every optimizer step (an EMA
target encoder updates there). Parallelism,
precision, EMA and checkpoints are the trainer's business (`reverie.training.trainer`), not the
model's.
"""

from __future__ import annotations

import dataclasses
import math

import lightning as L
import torch

from reverie.nn.model_folder import MODELS
from reverie.shards.clip_tensors import PAYLOADS
from reverie.training.config import OptimSettings
from reverie.training.registry import TASKS


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1 over `warmup_steps`, then cosine decay to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@TASKS.register("model")
class ModelTask(L.LightningModule):
    def __init__(self, model_config: dict, optim: OptimSettings, total_steps: int):
        super().__init__()
        config = dict(model_config)
        model_class = MODELS.get(config.pop("name"))
        self.model = model_class(model_class.config_class(**config))
        self.optim, self.total_steps = optim, total_steps

    def training_step(self, batch: dict, batch_index: int) -> dict:
        terms = self.model.training_losses(batch)
        detached = {name: value.detach() for name, value in terms.items()}
        batch_size = len(next(batch[name] for name in PAYLOADS if name in batch))  # frames, or a latent shard's latents or tokens
        self.log_dict({f"train/{name}": value for name, value in detached.items()}, prog_bar=True, batch_size=batch_size)
        return {"loss": terms["loss"], "terms": detached}  # Lightning divides "loss" under accumulation, not "terms"

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The built model's own config (what `config.json` of an export holds): a model that
        resolves paths or sizes when it is built records the result, so export needs nothing else."""
        checkpoint["model_config"] = {"model": self.model.registry_name, "config": dataclasses.asdict(self.model.config)}

    def on_train_batch_end(self, outputs, batch: dict, batch_index: int) -> None:
        update = getattr(self.model, "after_optimizer_step", None)
        if update is not None and (batch_index + 1) % self.trainer.accumulate_grad_batches == 0:
            update(self.trainer.global_step, self.total_steps)

    def configure_optimizers(self):
        decay = [p for p in self.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.optim.lr,
            betas=tuple(self.optim.betas),
        )
        if self.optim.schedule == "constant":
            multiplier = lambda step: min(1.0, (step + 1) / max(1, self.optim.warmup_steps))  # noqa: E731
        else:
            multiplier = lambda step: warmup_cosine(step, self.optim.warmup_steps, self.total_steps, self.optim.min_lr_ratio)  # noqa: E731
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
