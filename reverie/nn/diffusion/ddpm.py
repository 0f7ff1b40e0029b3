"""A DDPM noise schedule with v-prediction, for reverie's latent diffusion-forcing world models
([24] Oasis, [19] Genie 2), where every frame carries its own noise level.

With abar_t = prod_{i <= t} (1 - beta_i) for the levels t = 0 ... T - 1, and t = -1 meaning clean
(abar = 1):
- the forward process (Ho et al. 2020, eq. 4): x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps;
- the velocity (Salimans & Ho 2022, Sec. 4): v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0, which gives
  back x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v and eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v;
- the deterministic DDIM step from t down to s (Song et al. 2021, eq. 12 with sigma_t = 0):
  x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat, with x0_hat and eps_hat from (x_t, v_hat).
Levels are a tensor of the noised tensor's leading shape: (B,) for one level per sample, (B, T) for
one per frame of (B, T, ...) latents, as diffusion forcing (Chen et al. 2024) trains and samples.

diffusers: `DDPMScheduler` makes the betas and abar from its named schedules, and its `step` is the
ancestral sampler of `VPredictionSchedule.sample`, where one level holds for the whole batch. Its
`add_noise` and `get_velocity` do not fit per-frame levels: they flatten the timesteps and pad
trailing dims, so (B, T) levels against (B, T, C, H, W) latents become (B T, 1, 1, 1, 1), which
broadcasts wrongly; and `DDIMScheduler.step` takes one timestep and derives the next from a fixed
spacing, where a scheduling matrix moves each frame between its own pair of levels. Those are
written here, on the scheduler's abar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler
from torch import Tensor

from reverie.nn.diffusion.broadcast import expand_like

VelocityModel = Callable[[Tensor, Tensor], Tensor]  # (x_t (B, ...), levels (B,) int64) -> v_hat (B, ...)

CLEAN = -1  # the level of a noiseless frame


@dataclass
class DDPMConfig:
    train_levels: int = 1000  # T: levels 0 ... T - 1
    beta_schedule: str = "squaredcos_cap_v2"  # a diffusers name: linear, scaled_linear, squaredcos_cap_v2, sigmoid
    beta_start: float = 1e-4  # beta_1, for linear, scaled_linear and sigmoid
    beta_end: float = 0.02  # beta_T, for the same


class VPredictionSchedule:
    """The schedule's abar and the per-element maths on it; levels run from -1 (clean) to T - 1."""

    def __init__(self, config: DDPMConfig | None = None):
        self.config = config or DDPMConfig()
        self.scheduler = DDPMScheduler(
            num_train_timesteps=self.config.train_levels,
            beta_schedule=self.config.beta_schedule,
            beta_start=self.config.beta_start,
            beta_end=self.config.beta_end,
            prediction_type="v_prediction",
            clip_sample=False,  # latents are not bounded to [-1, 1]
            timestep_spacing="trailing",  # few-step sampling starts at T - 1, where x_T ~ N(0, I) holds
        )
        # row t + 1 holds level t, so that CLEAN indexes the prepended 1
        self.alphas_cumprod = torch.cat([torch.ones(1), self.scheduler.alphas_cumprod])  # (T + 1,) float32

    def add_noise(self, x0: Tensor, noise: Tensor, levels: Tensor) -> Tensor:
        """x0, noise (B, [T,] ...), levels (B, [T]) -> x_t."""
        signal, sigma = self.signal_and_noise_scales(levels, x0)
        return (signal * x0 + sigma * noise).to(x0.dtype)

    def velocity(self, x0: Tensor, noise: Tensor, levels: Tensor) -> Tensor:
        """-> v, the v-prediction target, of x0's shape."""
        signal, sigma = self.signal_and_noise_scales(levels, x0)
        return (signal * noise - sigma * x0).to(x0.dtype)

    def clean_from_velocity(self, noisy: Tensor, velocity: Tensor, levels: Tensor) -> Tensor:
        """x_t, v -> x0."""
        signal, sigma = self.signal_and_noise_scales(levels, noisy)
        return (signal * noisy - sigma * velocity).to(noisy.dtype)

    def noise_from_velocity(self, noisy: Tensor, velocity: Tensor, levels: Tensor) -> Tensor:
        """x_t, v -> eps."""
        signal, sigma = self.signal_and_noise_scales(levels, noisy)
        return (sigma * noisy + signal * velocity).to(noisy.dtype)

    def ddim_step(self, noisy: Tensor, velocity: Tensor, levels: Tensor, next_levels: Tensor) -> Tensor:
        """x_t at `levels`, v_hat -> x_s at `next_levels` (each <= its level; CLEAN gives x0_hat; an
        element whose level stays keeps its value), deterministically."""
        rising = next_levels > levels
        if rising.any():
            raise ValueError(f"DDIM step: {int(rising.sum())} of the next levels exceed their current ones; a step only removes noise")
        clean = self.clean_from_velocity(noisy, velocity, levels)
        noise = self.noise_from_velocity(noisy, velocity, levels)
        return self.add_noise(clean, noise, next_levels)

    @torch.no_grad()
    def sample(
        self,
        model: VelocityModel,
        shape: tuple[int, ...],
        steps: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Ancestral DDPM sampling (Ho et al. 2020, Alg. 2) of `shape` (B, ...) in `steps` model
        evaluations, at levels spaced evenly down from T - 1, one level for the whole batch;
        `generator`, on `device`, makes it repeatable."""
        scheduler = DDPMScheduler.from_config(self.scheduler.config)  # set_timesteps changes a scheduler
        scheduler.set_timesteps(steps, device=device)
        x = torch.randn(shape, generator=generator, device=device)
        for level in scheduler.timesteps:
            velocity = model(x, level.expand(shape[0]))
            x = scheduler.step(velocity, level, x, generator=generator).prev_sample
        return x

    def signal_and_noise_scales(self, levels: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """-> sqrt(abar), sqrt(1 - abar) at `levels`, broadcastable against `like`, in at least float32."""
        if levels.numel() and (levels.min() < CLEAN or levels.max() >= self.config.train_levels):
            raise ValueError(f"diffusion levels must lie in [{CLEAN}, {self.config.train_levels - 1}], got [{levels.min()}, {levels.max()}]")
        dtype = torch.promote_types(like.dtype, torch.float32)
        alpha_bar = expand_like(self.alphas_cumprod.to(like.device)[levels.long() + 1], like).to(dtype)
        return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
