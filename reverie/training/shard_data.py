"""The data module `reverie train` uses by default: clips streamed from shards by `ClipLoader`.

Config (`data:` in a train YAML): `shards` (a folder, glob or list of them; a list of
`{shards, weight}` mappings mixes sources), `window` (frames per sample), `batch_size`,
`num_workers`, `shuffle_buffer`, `samples_per_epoch`.
"""

from __future__ import annotations

import lightning as L

from reverie.shards.loader import ClipDataset, ClipLoader
from reverie.shards.sample_order import Source, as_source
from reverie.training.registry import DATAMODULES


def _sources(shards) -> list[Source]:
    entries = shards if isinstance(shards, list) else [shards]
    return [as_source(e["shards"], e.get("weight", 1.0)) if isinstance(e, dict) else as_source(e) for e in entries]


@DATAMODULES.register("shards")
class ShardDataModule(L.LightningDataModule):
    def __init__(self, config: dict, seed: int = 0):
        super().__init__()
        self.config, self.seed = config, seed
        self.loader: ClipLoader | None = None

    def setup(self, stage: str) -> None:
        if self.loader is not None:
            return
        dataset = ClipDataset(
            _sources(self.config["shards"]),
            window=self.config.get("window"),
            seed=self.seed,
            shuffle_buffer=self.config.get("shuffle_buffer", 64),
            samples_per_epoch=self.config.get("samples_per_epoch"),
        )
        self.loader = ClipLoader(
            dataset,
            batch_size=self.config.get("batch_size", 8),
            num_workers=self.config.get("num_workers", 0),
            record_on_yield=False,  # LoaderPosition records the batches training starts on
        )

    def train_dataloader(self) -> ClipLoader:
        return self.loader
