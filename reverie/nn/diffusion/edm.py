"""EDM preconditioning, training noise and Euler sampling, as [16] DIAMOND (Alonso et al. 2024,
"Diffusion for World Modeling: Visual Details Matter in Atari") uses them in its denoiser, after
Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models", EDM).

The denoiser wraps a network F (EDM eq. 7): D(x; sigma) = c_skip x + c_out F(c_in x, c_noise), with
DIAMOND's conditioners (EDM Table 1) taken at the offset level s = sqrt(sigma^2 + sigma_offset^2):

    c_in = 1 / sqrt(s^2 + sigma_data^2)           c_skip = sigma_data^2 / (s^2 + sigma_data^2)
    c_out = s sigma_data / sqrt(s^2 + sigma_data^2)  c_noise = ln(s) / 4

s, not sigma, because training adds offset noise: noisy = x + sigma_offset n + sigma eps, with n one
N(0, 1) value per sample and channel, constant over the image (so the network learns to move a
frame's mean colour), and eps ~ N(0, I); the total noise std of a pixel is then s. ln sigma ~
N(loc, scale^2), clipped (EDM's p_train), and F is trained towards (x - c_skip noisy) / c_out, the
target that makes D(noisy) = x (EDM eq. 8).

Sampling walks Karras' schedule (EDM eq. 5): sigma_i = (sigma_max^(1/rho) + i / (N - 1)
(sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for i < N, then sigma_N = 0, with Euler steps
x <- x + (x - D(x; sigma_i)) / sigma_i (sigma_{i+1} - sigma_i) (EDM Alg. 1, first order, no churn).
Where this follows DIAMOND rather than EDM, or leaves DIAMOND's details to the caller:
- the first x is N(0, I), as in DIAMOND's sampler, not EDM's N(0, sigma_max^2 I);
- DIAMOND's sampler also has Heun steps and churn; its Atari runs use neither (order 1, churn 0);
- DIAMOND clamps D to [-1, 1] and rounds it to 256 levels when it samples frames, and divides its
  context frames by sigma_data: these concern pixels, so they belong to the world model's denoiser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from einops import reduce
from torch import Tensor, nn

from reverie.nn.diffusion.broadcast import expand_like

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (noisy (B, ...), sigma (B,)) -> D(noisy; sigma) (B, ...)


@dataclass
class EDMConfig:
    """DIAMOND's values; sigmas are in the data's units (frames in [-1, 1])."""

    sigma_data: float = 0.5  # the data's assumed std
    sigma_offset_noise: float = 0.3  # std of the per-channel offset noise of training
    train_log_sigma_loc: float = -0.4  # training: ln sigma ~ N(loc, scale^2) ...
    train_log_sigma_scale: float = 1.2
    train_sigma_min: float = 2e-3  # ... clipped to [train_sigma_min, train_sigma_max]
    train_sigma_max: float = 20.0
    sigma_min: float = 2e-3  # sampling: the last nonzero sigma of the schedule
    sigma_max: float = 5.0  # sampling: the first sigma
    rho: float = 7.0  # sampling: how much the schedule's steps crowd towards sigma_min
    denoising_steps: int = 3  # N: Euler steps, one network evaluation each

    def __post_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"EDMConfig: needs 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")
        if not 0 < self.train_sigma_min < self.train_sigma_max:
            raise ValueError(f"EDMConfig: needs 0 < train_sigma_min < train_sigma_max, got {self.train_sigma_min} and {self.train_sigma_max}")
        if self.denoising_steps < 1:
            raise ValueError(f"EDMConfig: denoising_steps must be >= 1, got {self.denoising_steps}")


@dataclass
class Conditioners:
    """EDM's c_in, c_skip, c_out and c_noise, each of sigma's shape."""

    c_in: Tensor
    c_skip: Tensor
    c_out: Tensor
    c_noise: Tensor


@dataclass
class EDMTrainingStep:
    loss: Tensor  # (B,) mean squared error of F against its target, per sample: mask, then average
    denoised: Tensor  # (B, C, ...) D(noisy), detached: DIAMOND feeds it back as the next step's context
    sigma: Tensor  # (B,) the noise levels drawn


def conditioners(sigma: Tensor, config: EDMConfig) -> Conditioners:
    offset_sigma = (sigma**2 + config.sigma_offset_noise**2).sqrt()
    total_variance = offset_sigma**2 + config.sigma_data**2
    return Conditioners(
        c_in=total_variance.rsqrt(),
        c_skip=config.sigma_data**2 / total_variance,
        c_out=offset_sigma * config.sigma_data * total_variance.rsqrt(),
        c_noise=offset_sigma.log() / 4,
    )


def sample_training_sigma(
    batch_size: int,
    config: EDMConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """-> (B,) sigma with ln sigma ~ N(loc, scale^2), clipped to [train_sigma_min, train_sigma_max]."""
    normal = torch.randn(batch_size, generator=generator, device=device, dtype=dtype)
    log_sigma = config.train_log_sigma_loc + config.train_log_sigma_scale * normal
    return log_sigma.exp().clip(config.train_sigma_min, config.train_sigma_max)


def add_training_noise(clean: Tensor, sigma: Tensor, config: EDMConfig, generator: torch.Generator | None = None) -> Tensor:
    """clean (B, C, ...), sigma (B,) -> clean + sigma_offset n + sigma eps, n constant over all but B and C."""
    offset = torch.randn(clean.shape[:2], generator=generator, device=clean.device, dtype=clean.dtype)  # (B, C)
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    return clean + config.sigma_offset_noise * expand_like(offset, clean) + expand_like(sigma, clean) * noise


class EDMDenoiser(nn.Module):
    """D(x; sigma) around a network F, called as F(c_in noisy, c_noise, **conditioning), where c_noise
    is (B,) and F returns a tensor of noisy's shape."""

    def __init__(self, network: nn.Module, config: EDMConfig | None = None):
        super().__init__()
        self.network = network
        self.config = config or EDMConfig()

    def forward(self, noisy: Tensor, sigma: Tensor, **conditioning) -> Tensor:
        """noisy (B, C, ...), sigma (B,) -> D(noisy; sigma), (B, C, ...)."""
        output, c_skip, c_out = self.network_output(noisy, sigma, conditioning)
        return c_skip * noisy + c_out * output

    def training_step(self, clean: Tensor, generator: torch.Generator | None = None, **conditioning) -> EDMTrainingStep:
        """Noise clean (B, C, ...) at a drawn sigma per sample and score F against its target."""
        sigma = sample_training_sigma(clean.shape[0], self.config, generator, clean.device, clean.dtype)
        noisy = add_training_noise(clean, sigma, self.config, generator)
        output, c_skip, c_out = self.network_output(noisy, sigma, conditioning)
        target = (clean - c_skip * noisy) / c_out
        loss = reduce((output - target) ** 2, "b ... -> b", "mean")
        return EDMTrainingStep(loss=loss, denoised=(c_skip * noisy + c_out * output).detach(), sigma=sigma)

    def network_output(self, noisy: Tensor, sigma: Tensor, conditioning: dict) -> tuple[Tensor, Tensor, Tensor]:
        """-> F(c_in noisy, c_noise, **conditioning), and c_skip and c_out broadcastable against noisy."""
        c = conditioners(sigma, self.config)
        output = self.network(expand_like(c.c_in, noisy) * noisy, c.c_noise, **conditioning)
        return output, expand_like(c.c_skip, noisy), expand_like(c.c_out, noisy)


def karras_sigmas(
    steps: int,
    sigma_min: float,
    sigma_max: float,
    rho: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """-> (steps + 1,) sigma_max, ..., sigma_min, 0 (EDM eq. 5)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    inverse_max, inverse_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (inverse_max + ramp * (inverse_min - inverse_max)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device=device, dtype=dtype)


@torch.no_grad()
def euler_sample(denoiser: Denoiser, shape: tuple[int, ...], sigmas: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Euler steps down `sigmas` (e.g. `karras_sigmas`, ending in 0) from x ~ N(0, I) of `shape`
    (B, ...), on sigmas' device and in their dtype; `generator`, on that device, makes it repeatable."""
    x = torch.randn(shape, generator=generator, device=sigmas.device, dtype=sigmas.dtype)
    for sigma, next_sigma in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoiser(x, sigma.expand(shape[0]))
        x = x + (x - denoised) / sigma * (next_sigma - sigma)
    return x
