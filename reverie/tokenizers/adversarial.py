"""The adversarial term of reverie's video tokenizers: a patch discriminator (PatchGAN, Isola et al.
2017, pix2pix, Sec. 3.2.2) and VQGAN's adaptive weight (Esser et al. 2021, eq. 7), as the Cosmos
tokenizers ([25] NVIDIA 2025, Sec. 4) are fine-tuned with an adversarial loss beside their
reconstruction and perceptual ones, and as Genie's ST-ViViT tokenizer ([18] Bruce et al. 2024)
can be.

The discriminator D scores patches of frames, real x or reconstructed x^: `2d` scores each frame
alone, over (B T, C, H, W); `3d` scores space-time patches, over (B, C, T, H, W). Its losses
(`loss`):

    hinge:           L_D = 1/2 (E[relu(1 - D(x))] + E[relu(1 + D(x^))]),   L_GAN = -E[D(x^)]
    non_saturating:  L_D = 1/2 (E[softplus(-D(x))] + E[softplus(D(x^))]),  L_GAN = E[softplus(-D(x^))]

(hinge is what VQGAN's released code trains with). The generator term is weighted by eq. 7,

    lambda = weight * clamp(||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + 1e-4), 0, 1e4),  detached,

where G_L is the weight of the decoder's last layer and L_rec the reconstruction loss (perceptual
term included, as VQGAN's). Both terms are zero before `start_step` (the autoencoder warms up
first) and always when `weight` is 0.

One loss, one backward. reverie trains a model with one optimizer over all its parameters and one
backward of `training_losses(batch)["loss"]` (`reverie.training.model_task`), so GAN's two
players share it: adding `generator + discriminator` to the loss gives
- D's parameters the gradient of L_D alone: L_D sees the frames detached;
- the tokenizer's parameters the gradient of lambda L_GAN alone: L_GAN goes through D called with
  its parameters detached (`torch.func.functional_call`), so it reaches the reconstruction and not D.
Deviation from pix2pix and VQGAN: GroupNorm in place of BatchNorm, so that a frame's score never
depends on the other frames of its batch and the generator's pass through D changes no running
statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.func import functional_call

DISCRIMINATORS = ("2d", "3d")
DELTA = 1e-4  # eq. 7's delta
MAX_WEIGHT = 1e4  # the clamp of VQGAN's code


@dataclass
class AdversarialConfig:
    weight: float = 0.0  # base weight of the generator term; 0 turns the adversarial term off
    start_step: int = 0  # optimizer step from which both terms count
    discriminator: str = "2d"  # 2d: per frame | 3d: space-time patches
    discriminator_channels: int = 64  # width of D's first conv (pix2pix's ndf)
    discriminator_layers: int = 3  # D's stride-2 convs (pix2pix's n_layers)
    loss: str = "hinge"  # hinge | non_saturating


class AdversarialConfigError(ValueError):
    """A config field of the adversarial term that names no known choice; names the field."""


class DiscriminatorInputError(ValueError):
    """Frames the discriminator cannot score; names their shape and what it needs."""


class AdaptiveWeightError(ValueError):
    """A loss that does not reach the decoder's last layer, so eq. 7 has no gradient to measure."""


def hinge_discriminator(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_generator(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.mean()


def non_saturating_discriminator(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def non_saturating_generator(logits_fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-logits_fake).mean()


LOSSES = {
    "hinge": (hinge_discriminator, hinge_generator),
    "non_saturating": (non_saturating_discriminator, non_saturating_generator),
}


class PatchDiscriminator(nn.Module):
    """pix2pix's NLayerDiscriminator: `layers` stride-2 convs (widths c, 2c, 4c, 8c, 8c, ...), a
    stride-1 conv, and a stride-1 conv to one logit per patch; kernels of 4 in space. `dims=3`
    makes each conv a Conv3d with a kernel of 3 in time (stride 2 where the space stride is 2), so
    any clip length, one frame included, goes through."""

    def __init__(self, image_channels: int, channels: int, layers: int, dims: int = 2):
        super().__init__()
        self.layers, self.dims = layers, dims
        widths = [channels * min(2**n, 8) for n in range(layers + 1)]
        blocks = [self.conv(image_channels, widths[0], stride=2), nn.LeakyReLU(0.2)]
        for n in range(1, layers + 1):
            stride = 2 if n < layers else 1
            blocks += [self.conv(widths[n - 1], widths[n], stride, bias=False), nn.GroupNorm(math.gcd(32, widths[n]), widths[n]), nn.LeakyReLU(0.2)]
        blocks.append(self.conv(widths[layers], 1, stride=1))
        self.blocks = nn.Sequential(*blocks)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.normal_(module.weight, 0.0, 0.02)  # pix2pix's and VQGAN's init

    def conv(self, fan_in: int, fan_out: int, stride: int, bias: bool = True) -> nn.Module:
        if self.dims == 2:
            return nn.Conv2d(fan_in, fan_out, kernel_size=4, stride=stride, padding=1, bias=bias)
        return nn.Conv3d(fan_in, fan_out, kernel_size=(3, 4, 4), stride=stride, padding=1, bias=bias)

    def patches(self, size: int) -> int:
        """Patches per side that a frame side of `size` pixels gives (at least 1 to be scored)."""
        for _ in range(self.layers):
            size = (size - 2) // 2 + 1
        return size - 2

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (N, C, H, W) for 2d, (B, C, T, H, W) for 3d -> logits of the same layout, one channel."""
        height, width = frames.shape[-2:]
        if min(self.patches(height), self.patches(width)) < 1:
            smallest = next(size for size in range(1, 2 ** (self.layers + 3)) if self.patches(size) >= 1)
            raise DiscriminatorInputError(
                f"frames of {height}x{width}: too small for a {self.layers}-layer patch discriminator "
                f"(needs at least {smallest}x{smallest}; lower discriminator_layers)"
            )
        return self.blocks(frames)


def adaptive_weight(reconstruction_loss: torch.Tensor, generator_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """Eq. 7's ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta), clamped to [0, 1e4] and
    detached; the graph is kept for the training backward."""
    gradients = []
    for name, loss in (("reconstruction_loss", reconstruction_loss), ("generator loss", generator_loss)):
        (gradient,) = torch.autograd.grad(loss, last_layer, retain_graph=True, allow_unused=True)
        if gradient is None:
            raise AdaptiveWeightError(f"the {name} does not depend on last_layer (a {tuple(last_layer.shape)} tensor); pass the weight of the decoder's last layer")
        gradients.append(gradient)
    reconstruction_gradient, generator_gradient = gradients
    return (reconstruction_gradient.norm() / (generator_gradient.norm() + DELTA)).clamp(0.0, MAX_WEIGHT).detach()


class AdversarialLoss(nn.Module):
    """The discriminator and both adversarial terms; a tokenizer holds one and adds its
    `generator + discriminator` to its loss."""

    def __init__(self, config: AdversarialConfig, image_channels: int = 3):
        super().__init__()
        if config.discriminator not in DISCRIMINATORS:
            raise AdversarialConfigError(f"discriminator={config.discriminator!r}: unknown; known: {', '.join(DISCRIMINATORS)}")
        if config.loss not in LOSSES:
            raise AdversarialConfigError(f"loss={config.loss!r}: unknown; known: {', '.join(LOSSES)}")
        self.config = config
        dims = 2 if config.discriminator == "2d" else 3
        self.discriminator = PatchDiscriminator(image_channels, config.discriminator_channels, config.discriminator_layers, dims)
        self.discriminator_loss, self.generator_loss = LOSSES[config.loss]

    def active(self, step: int) -> bool:
        return self.config.weight > 0 and step >= self.config.start_step

    def discriminator_input(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5:
            raise DiscriminatorInputError(f"frames of shape {tuple(frames.shape)}: the adversarial term takes (B, T, C, H, W)")
        if self.config.discriminator == "2d":
            return rearrange(frames, "b t c h w -> (b t) c h w")
        return rearrange(frames, "b t c h w -> b c t h w")

    def frozen_discriminator(self, frames: torch.Tensor) -> torch.Tensor:
        """D's logits with its parameters detached: a gradient reaches the frames, never D."""
        detached = {name: parameter.detach() for name, parameter in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, detached, (frames,))

    def forward(
        self,
        real: torch.Tensor,  # (B, T, C, H, W) frames of the batch
        reconstructed: torch.Tensor,  # (B, T, C, H, W) the tokenizer's reconstruction of them
        reconstruction_loss: torch.Tensor,  # scalar L_rec, in the graph of last_layer
        last_layer: torch.Tensor,  # G_L: the weight of the decoder's last layer
        step: int,  # the optimizer step, for start_step
    ) -> dict[str, torch.Tensor]:
        """{"generator": lambda L_GAN, "discriminator": L_D, "adversarial_weight": lambda}, scalars.
        Outside autograd (under `torch.no_grad`) eq. 7 has no gradient and lambda is 0, as in VQGAN."""
        real_input, fake_input = self.discriminator_input(real), self.discriminator_input(reconstructed)
        if not self.active(step):
            return self.inactive(real)
        logits_real, logits_fake = self.discriminator(torch.cat([real_input.detach(), fake_input.detach()])).chunk(2)
        discriminator_loss = self.discriminator_loss(logits_real, logits_fake)
        generator_loss = self.generator_loss(self.frozen_discriminator(fake_input))
        if torch.is_grad_enabled() and generator_loss.requires_grad:
            weight = self.config.weight * adaptive_weight(reconstruction_loss, generator_loss, last_layer)
        else:
            weight = generator_loss.new_zeros(())
        return {"generator": weight * generator_loss, "discriminator": discriminator_loss, "adversarial_weight": weight}

    def inactive(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """Zero terms; the discriminator's still holds each of its parameters (times 0), so every
        parameter takes part in every backward, as DistributedDataParallel requires."""
        zero = real.new_zeros(())
        touched = sum(parameter.sum() for parameter in self.discriminator.parameters()) * 0.0
        return {"generator": zero, "discriminator": touched, "adversarial_weight": zero}
