"""The data module `reverie train` uses by default: clips streamed from shards by `ClipLoader`.

Config (`data:` in a train YAML, the fields of `reverie.training.config.DataSettings`): `shards` (a
folder, glob or list of them; a list of `{shards, weight}` mappings mixes sources), `window` (frames
per sample), `batch_size`, `num_workers`, `shuffle_buffer`, `samples_per_epoch`. The shards are
listed when the module is built, so a path that is not there stops the run before any work.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from reverie.shards.loader import ClipDataset, ClipLoader
from reverie.shards.sample_order import Source, as_source
from reverie.training.config import DataSettings, RunInputError
from reverie.training.registry import DATAMODULES


def _sources(shards) -> list[Source]:
    """The sources `data.shards` names; RunInputError naming a path that is not there."""
    if not shards:
        raise RunInputError("data.shards: not set; give a shard folder, a glob, or a list of them")
    entries = shards if isinstance(shards, list) else [shards]
    try:
        sources = [as_source(e["shards"], e.get("weight", 1.0)) if isinstance(e, dict) else as_source(e) for e in entries]
    except FileNotFoundError as error:
        raise RunInputError(f"data.shards: {error}") from error
    local = [shard for source in sources for shard in source.shards if "://" not in shard and not shard.startswith("pipe:")]
    missing = next((shard for shard in local if not Path(shard).exists()), None)
    if missing:
        raise RunInputError(f"data.shards: {missing} does not exist")
    return sources


@DATAMODULES.register("shards")
class ShardDataModule(L.LightningDataModule):
    def __init__(self, config: DataSettings, seed: int = 0):
        super().__init__()
        self.config, self.seed = config, seed
        self.sources = _sources(config.shards)
        self.loader: ClipLoader | None = None

    def setup(self, stage: str) -> None:
        if self.loader is not None:
            return
        dataset = ClipDataset(
            self.sources,
            window=self.config.window,
            seed=self.seed,
            shuffle_buffer=self.config.shuffle_buffer,
            samples_per_epoch=self.config.samples_per_epoch,
        )
        self.loader = ClipLoader(
            dataset,
            batch_size=self.config.batch_size,
            num_workers=self.config.num_workers,
            record_on_yield=False,  # LoaderPosition records the batches training starts on
        )

    def train_dataloader(self) -> ClipLoader:
        return self.loader
