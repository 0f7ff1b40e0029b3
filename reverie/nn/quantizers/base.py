"""The discrete bottleneck of reverie's tokenizers: one interface over FSQ, VQ and LFQ.

A video tokenizer's encoder ([25] Cosmos' causal tokenizer, [18] Genie's ST-ViViT, [14] IRIS'
discrete autoencoder) gives channel-first latents (B, D, *grid) on a grid of any rank: (n,) for a
sequence, (h, w) for an image, (t, h, w) for a video. A `Quantizer` maps the D-vector at every
position to one of `codebook_size` codes and returns a `Quantized`:

- `latents` (B, D, *grid): the chosen codes in the encoder's width D. In training mode the
  gradient passes straight through to the input (Bengio et al. 2013; VQ-VAE's estimator).
- `indices` (B, *grid) int64: the code at each position, in [0, codebook_size).
- `losses`: name -> scalar, the bottleneck's own terms, already weighted, for the tokenizer to
  add to its loss. They are computed in training mode only and are empty in eval mode.

`indices_to_latents` (B, *grid) -> (B, D, *grid) is how the decoder gets in: for the indices
`forward` gave, it returns the same latents (up to float rounding).

Quantizers register by name in `QUANTIZERS`; `build_quantizer(name, dim, **options)` builds one
from its dataclass config. An unknown or invalid option is a `QuantizerError` that names the
quantizer and the option. A subclass works on flat vectors, `quantize` (B, N, D) and `lookup`
(B, N); this class moves the channels last and flattens the grid (row-major, so position
`(t * H + h) * W + w` of a (T, H, W) grid) with einops and puts them back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from einops import pack, rearrange, unpack
from torch import Tensor, nn

from reverie.registry import Registry

QUANTIZERS: Registry[type["Quantizer"]] = Registry("quantizer")


class QuantizerError(ValueError):
    """A bad quantizer option or input; the message names the quantizer and what is wrong."""


def require(ok: bool, quantizer: str, message: str) -> None:
    if not ok:
        raise QuantizerError(f"quantizer {quantizer!r}: {message}")


@dataclass
class Quantized:
    latents: Tensor  # (B, D, *grid) the chosen codes, straight-through gradients in training
    indices: Tensor  # (B, *grid) int64 code per position
    losses: dict[str, Tensor]  # name -> weighted scalar; empty in eval mode


class Quantizer(nn.Module):
    """Base of every bottleneck: the layout and the checks; subclasses quantize flat vectors."""

    name: ClassVar[str]  # its name in QUANTIZERS
    config_class: ClassVar[type]  # its dataclass config, with a `dim` field
    dim: int  # D, the channel width it takes and gives back
    codebook_size: int

    def quantize(self, vectors: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """vectors (B, N, D) -> codes (B, N, D), indices (B, N), losses."""
        raise NotImplementedError

    def lookup(self, indices: Tensor) -> Tensor:
        """indices (B, N) int64 -> codes (B, N, D)."""
        raise NotImplementedError

    def forward(self, latents: Tensor) -> Quantized:
        require(
            latents.ndim >= 3 and latents.shape[1] == self.dim,
            self.name,
            f"latents must be (B, {self.dim}, *grid) with at least one grid dimension, got {tuple(latents.shape)}",
        )
        vectors, grid = pack([rearrange(latents, "b d ... -> b ... d")], "b * d")
        codes, indices, losses = self.quantize(vectors)
        [codes] = unpack(codes, grid, "b * d")
        [indices] = unpack(indices, grid, "b *")
        return Quantized(rearrange(codes, "b ... d -> b d ..."), indices.long(), losses)

    def indices_to_latents(self, indices: Tensor) -> Tensor:
        require(
            indices.ndim >= 2 and not indices.dtype.is_floating_point,
            self.name,
            f"indices must be integer (B, *grid), got {indices.dtype} {tuple(indices.shape)}",
        )
        # out of range, VQ's lookup is a device-side assert on a GPU and FSQ's silently another code
        require(
            indices.numel() == 0 or (0 <= int(indices.min()) and int(indices.max()) < self.codebook_size),
            self.name,
            f"indices must lie in [0, {self.codebook_size}), got {int(indices.min())}..{int(indices.max())}",
        )
        flat, grid = pack([indices.long()], "b *")
        [codes] = unpack(self.lookup(flat), grid, "b * d")
        return rearrange(codes, "b ... d -> b d ...")


def register(quantizer_class: type[Quantizer]) -> type[Quantizer]:
    """Class decorator: adds a Quantizer subclass to QUANTIZERS under its `name`."""
    return QUANTIZERS.register(quantizer_class.name)(quantizer_class)


def build_quantizer(name: str, dim: int, **options) -> Quantizer:
    """The quantizer registered as `name`, taking `dim` channels, with its config's `options`."""
    quantizer_class = QUANTIZERS.get(name)
    known = sorted(field.name for field in dataclasses.fields(quantizer_class.config_class) if field.name != "dim")
    unknown = sorted(set(options) - set(known))
    require(not unknown, name, f"unknown option {', '.join(map(repr, unknown))}; its options: {', '.join(known)}")
    return quantizer_class(quantizer_class.config_class(dim=dim, **options))
