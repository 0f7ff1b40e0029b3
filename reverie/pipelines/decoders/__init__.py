"""Decode backends behind one interface. `DECODERS.get(name)()` gives a `Decoder`.

The default is the backend that `benchmarks/ingest.py` measured fastest on this project's
reference inputs (see `benchmarks/results/ingest.json`).
"""

from reverie.pipelines.decoders.base import DECODERS, Decoder, available_decoders
from reverie.pipelines.decoders import pyav_decoder as _pyav  # noqa: F401  (registers "pyav")
from reverie.pipelines.decoders import decord_decoder as _decord  # noqa: F401  (registers "decord")
from reverie.pipelines.decoders import torchcodec_decoder as _torchcodec  # noqa: F401  (registers "torchcodec")

DEFAULT_DECODER = "pyav"

__all__ = ["DECODERS", "DEFAULT_DECODER", "Decoder", "available_decoders"]
