"""A DDPM denoiser that predicts the noise (Ho et al. 2020), the baseline against which [16] DIAMOND
(Alonso et al. 2024, Sec. 3.3 and Fig. 3) shows that EDM's preconditioning keeps a world model
stable at few denoising steps.

Training (Ho et al. eq. 14, "L_simple"): a level t ~ U{0, ..., T - 1} per sample,
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, and || F(x_t, c_noise(t), ...) - eps ||^2. The network
F is the one an `EDMDenoiser` wraps, so that the two differ only in the formulation: its noise input
is c_noise = ln(sigma_t) / 4 with sigma_t = sqrt((1 - abar_t) / abar_t), the level's noise-to-signal
ratio, on EDM's scale (Karras et al. 2022, Table 1: the VP schedule in EDM's terms).

Sampling: diffusers' `DDPMScheduler` with `prediction_type="epsilon"` and trailing timestep spacing
(the first step at t = T - 1, where x_T ~ N(0, I) holds), its ancestral steps (Ho et al. Alg. 2)
taking x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t) through `clip_sample` to [-1, 1].
At one step that x0_hat is the whole sample; at t = T - 1 it divides by sqrt(abar) near 0, which
is why the noise-predicting model fails at few steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler
from einops import reduce
from torch import Tensor, nn

from reverie.nn.diffusion.ddpm import DDPMConfig, VPredictionSchedule


@dataclass
class EpsilonTrainingStep:
    loss: Tensor  # (B,) mean squared error of the predicted noise, per sample
    levels: Tensor  # (B,) the levels drawn


class EpsilonDenoiser(nn.Module):
    """Wraps F, called as F(x_t, c_noise, **conditioning) with c_noise (B,), which predicts eps."""

    def __init__(self, network: nn.Module, config: DDPMConfig | None = None):
        super().__init__()
        self.network = network
        self.schedule = VPredictionSchedule(config or DDPMConfig())

    @property
    def config(self) -> DDPMConfig:
        return self.schedule.config

    def c_noise(self, levels: Tensor) -> Tensor:
        """(B,) levels -> (B,) ln(sigma_t) / 4, sigma_t = sqrt((1 - abar_t) / abar_t)."""
        alpha_bar = self.schedule.alphas_cumprod.to(levels.device)[levels.long() + 1].double()
        return (((1 - alpha_bar) / alpha_bar).sqrt().log() / 4).float()

    def training_step(self, clean: Tensor, generator: torch.Generator | None = None, **conditioning) -> EpsilonTrainingStep:
        """Noise clean (B, C, ...) at a drawn level per sample and score F's noise prediction."""
        levels = torch.randint(0, self.config.train_levels, (clean.shape[0],), generator=generator, device=clean.device)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        noisy = self.schedule.add_noise(clean, noise, levels)
        predicted = self.network(noisy, self.c_noise(levels).to(clean.dtype), **conditioning)
        return EpsilonTrainingStep(loss=reduce((predicted - noise) ** 2, "b ... -> b", "mean"), levels=levels)

    @torch.no_grad()
    def sample(
        self,
        shape: tuple[int, ...],
        steps: int,
        generator: torch.Generator | None = None,
        **conditioning,
    ) -> Tensor:
        """`steps` ancestral DDPM steps from x ~ N(0, I) of `shape` (B, ...), on the network's device
        and dtype. The last step lands on level -1 (abar = 1), so it returns that step's x0_hat."""
        weight = next(self.network.parameters())
        scheduler = DDPMScheduler.from_config(self.schedule.scheduler.config, prediction_type="epsilon", clip_sample=True)
        scheduler.set_timesteps(steps, device=weight.device)
        x = torch.randn(shape, generator=generator, device=weight.device, dtype=weight.dtype)
        for level in scheduler.timesteps:
            levels = level.expand(shape[0])
            noise = self.network(x, self.c_noise(levels).to(x.dtype), **conditioning)
            x = scheduler.step(noise, level, x, generator=generator).prev_sample
        return x
