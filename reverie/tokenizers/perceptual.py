"""The perceptual term of reverie's video tokenizers: LPIPS (Zhang et al. 2018, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", eq. 1), as the Cosmos tokenizers ([25]
NVIDIA 2025, Sec. 4) and VQGAN (Esser et al. 2021, Sec. 3.2) train with one beside the pixel loss:

    d(x, x^) = sum_l 1 / (H_l W_l) sum_{h,w} || w_l * (y^l_{hw} - y^l^_{hw}) ||^2,

y^l the unit-normalised features of layer l of a frozen ImageNet trunk (VGG16, AlexNet or
SqueezeNet) and w_l learned linear heads; here averaged over every frame of the batch.

It runs the `lpips` package's network, built offline. That package fetches the trunk's ImageNet
weights from the internet when it is built pretrained (its own files hold only the heads w_l), so
here it is built with random weights and then given the whole state, trunk and heads, from one
local file, `lpips_weights`: a `state_dict()` of `lpips.LPIPS(net=network)` (`.pth`, read with
`weights_only=True`, or `.safetensors`). One is made where the internet is reachable with

    torch.save(lpips.LPIPS(net="vgg").state_dict(), "lpips_vgg.pth")

The term is off unless `lpips_weights` is set. A missing file, or one without the trunk, is an
error naming it. `lpips` needs torchvision built for the installed torch; PyPI's torchvision is
CUDA-built and does not load beside a CPU-only torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

NETWORKS = ("vgg", "alex", "squeeze")


@dataclass
class PerceptualConfig:
    lpips_weights: str | None = None  # local LPIPS state dict; None turns the perceptual term off
    network: str = "vgg"  # the trunk those weights are of: vgg | alex | squeeze
    weight: float = 1.0  # the term's weight in the tokenizer's reconstruction loss (VQGAN's 1.0)


class PerceptualConfigError(ValueError):
    """A perceptual config field that cannot build the term; names the field."""


class PerceptualWeightsError(ValueError):
    """An LPIPS weights file that cannot be read into the network; names the file and why."""


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: LPIPS weights file not found (perceptual lpips_weights); the term needs it, nothing is downloaded")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def build_lpips(network: str) -> nn.Module:
    """An LPIPS network with random weights: nothing is downloaded."""
    try:
        import lpips
    except (ImportError, RuntimeError) as error:  # RuntimeError: a torchvision built for another torch
        raise ImportError(f"the perceptual term needs the lpips package and a torchvision built for torch {torch.__version__}: {error}") from error
    return lpips.LPIPS(pretrained=False, net=network, pnet_rand=True, verbose=False)


class PerceptualLoss(nn.Module):
    """`weight` times the mean LPIPS distance between frames and their reconstructions, through a
    frozen network; a tokenizer adds it to its reconstruction loss (the L_rec of eq. 7 of
    `reverie.tokenizers.adversarial`)."""

    def __init__(self, config: PerceptualConfig):
        super().__init__()
        if config.network not in NETWORKS:
            raise PerceptualConfigError(f"perceptual network={config.network!r}: unknown; known: {', '.join(NETWORKS)}")
        if config.lpips_weights is None:
            raise PerceptualConfigError("perceptual lpips_weights: not set; build PerceptualLoss only when the term is on")
        path = Path(config.lpips_weights)
        state = read_weights(path)
        self.config = config
        self.network = build_lpips(config.network)
        missing = sorted(set(self.network.state_dict()) - set(state))
        if missing:
            trunk = " (the trunk: the lpips package's own files hold the heads only)" if any(name.startswith("net.") for name in missing) else ""
            raise PerceptualWeightsError(f"{path}: no weights for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}{trunk}; see reverie.tokenizers.perceptual")
        try:
            self.network.load_state_dict(state)
        except RuntimeError as error:
            raise PerceptualWeightsError(f"{path}: not an LPIPS {config.network} state dict: {' '.join(str(error).split())}") from error
        self.network.requires_grad_(False)
        self.network.eval()

    def train(self, mode: bool = True) -> "PerceptualLoss":
        """The network stays in eval mode: its heads' dropout never samples."""
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
        """real, reconstructed: (B, T, C, H, W) in [0, 1] -> the scalar weighted mean distance."""
        real_frames = rearrange(real, "b t c h w -> (b t) c h w")
        reconstructed_frames = rearrange(reconstructed, "b t c h w -> (b t) c h w")
        return self.config.weight * self.network(reconstructed_frames, real_frames, normalize=True).mean()
