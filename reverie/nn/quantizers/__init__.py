"""Discrete bottlenecks for reverie's tokenizers, behind one interface (`base.py`): FSQ ("fsq"),
VQ ("vq") and LFQ ("lfq") in `QUANTIZERS`, built by `build_quantizer(name, dim, **options)`, and
`usage` for their codebook metrics."""

from reverie.nn.quantizers.base import QUANTIZERS, Quantized, Quantizer, QuantizerError, build_quantizer
from reverie.nn.quantizers.fsq import COSMOS_LEVELS, FiniteScalarQuantizer, FSQConfig
from reverie.nn.quantizers.lfq import LFQConfig, LookupFreeQuantizer
from reverie.nn.quantizers.usage import usage
from reverie.nn.quantizers.vq import VectorQuantizer, VQConfig

__all__ = [
    "COSMOS_LEVELS",
    "FSQConfig",
    "FiniteScalarQuantizer",
    "LFQConfig",
    "LookupFreeQuantizer",
    "QUANTIZERS",
    "Quantized",
    "Quantizer",
    "QuantizerError",
    "VQConfig",
    "VectorQuantizer",
    "build_quantizer",
    "usage",
]
