"""Diffusion pieces that reverie's diffusion world models share: EDM preconditioning, training noise
and Euler sampling ([16] DIAMOND, `edm`), a DDPM v-prediction schedule with per-frame levels and
DDIM steps ([24] Oasis, [19] Genie 2, `ddpm`), diffusion forcing's scheduling matrices
(`scheduling_matrix`), the noise-level embedding and adaptive GroupNorm."""

from reverie.nn.diffusion.adaptive_group_norm import AdaGroupNorm
from reverie.nn.diffusion.ddpm import CLEAN, DDPMConfig, VelocityModel, VPredictionSchedule
from reverie.nn.diffusion.edm import (
    Conditioners,
    Denoiser,
    EDMConfig,
    EDMDenoiser,
    EDMTrainingStep,
    add_training_noise,
    conditioners,
    euler_sample,
    karras_sigmas,
    sample_training_sigma,
)
from reverie.nn.diffusion.noise_embedding import NoiseLevelEmbedding
from reverie.nn.diffusion.scheduling_matrix import scheduling_matrix, step_levels

__all__ = [
    "CLEAN",
    "AdaGroupNorm",
    "Conditioners",
    "DDPMConfig",
    "Denoiser",
    "EDMConfig",
    "EDMDenoiser",
    "EDMTrainingStep",
    "NoiseLevelEmbedding",
    "VPredictionSchedule",
    "VelocityModel",
    "add_training_noise",
    "conditioners",
    "euler_sample",
    "karras_sigmas",
    "sample_training_sigma",
    "scheduling_matrix",
    "step_levels",
]
