"""Sampling new latent frames after a context with diffusion forcing (Chen et al. 2024, Sec. 3.3 and
Alg. 2), as [24] Oasis and [19] Genie 2 generate: a scheduling matrix says, row by row, how many
denoising steps each new frame still has to go (`reverie.nn.diffusion.scheduling_matrix`), and
each row moves every frame by one deterministic DDIM step from its level to its level in the next
row (`VPredictionSchedule.ddim_step`, v-prediction). The "autoregressive" matrix finishes one frame
before it starts the next; the "pyramid" one starts each frame a step after the one before, so
nearer frames are always the cleaner ones; "full_sequence" denoises them all together.

Stabilisation (Oasis; Chen et al. Sec. 3.3): a frame that is done, a context frame or a new frame
whose steps have all run, enters the network noised to `stabilization_level`, a small level, with
noise drawn once per chunk from the generator, and the network is told that level. A model trained
only on noised frames (levels 0 .. T - 1) then never sees a level it was not trained on, and its
own small errors in earlier frames look like the noise it was trained to see through.

Key/value cache: the context does not change while a chunk is denoised and, time being causal, it
does not see the chunk, so its temporal keys and values are computed once per chunk and every row
runs the chunk's frames alone against them (`reverie.nn.dit_block`); this equals a pass over
context and chunk together.

Classifier-free guidance on actions (Ho & Salimans 2022; Genie 2): with guidance w, the velocity is
v = v_uncond + w (v_cond - v_uncond), v_uncond from the same inputs with every action replaced by
the null action, which training taught through action dropout. w = 1 is the conditional model alone
(one pass); otherwise both passes run as one batch of 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reverie.nn.diffusion import CLEAN, VPredictionSchedule, scheduling_matrix, step_levels
from reverie.pretrain.latent_dit import LatentDiT


@dataclass
class SamplingSettings:
    sampling_steps: int  # DDIM steps a frame takes from pure noise to clean
    schedule: str  # autoregressive | pyramid | full_sequence
    stabilization_level: int  # the level done frames enter the network at, in [0, train_levels)
    guidance_scale: float  # w of classifier-free guidance on actions; 1: conditional only, 0: unconditional


def level_rows(settings: SamplingSettings, frames: int, train_levels: int) -> torch.Tensor:
    """(rows, frames) int64: the DDPM level of each new frame in each row of the scheduling matrix
    (T - 1 is pure noise, CLEAN done)."""
    steps_to_go = scheduling_matrix(frames, settings.sampling_steps, settings.schedule)
    return step_levels(settings.sampling_steps, train_levels)[steps_to_go]


@torch.no_grad()
def denoise_chunk(
    network: LatentDiT,
    schedule: VPredictionSchedule,
    context: torch.Tensor,  # (B, P, C, h, w) clean latents, P >= 1
    previous_actions: torch.Tensor,  # (B, P + n, *action_shape): the action that led to each frame of context and chunk
    kept: torch.Tensor,  # (B, P + n) bool: False takes the null action
    frames: int,  # n, the new frames
    settings: SamplingSettings,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """-> the n new clean latent frames (B, n, C, h, w) after the context."""
    batch, past = context.shape[:2]
    shape = (batch, past + frames, *context.shape[2:])
    stabilization_noise = torch.randn(shape, generator=generator, device=context.device, dtype=context.dtype)
    chunk = torch.randn((batch, frames, *context.shape[2:]), generator=generator, device=context.device, dtype=context.dtype)
    guided = settings.guidance_scale != 1
    if guided:  # the conditional batch, then the same worlds with every action null
        previous_actions = torch.cat([previous_actions, torch.zeros_like(previous_actions)])
        kept = torch.cat([kept, torch.zeros_like(kept)])
    both = (lambda tensor: torch.cat([tensor, tensor])) if guided else (lambda tensor: tensor)

    stabilized = torch.full((batch, past), settings.stabilization_level, dtype=torch.long, device=context.device)
    context_inputs = schedule.add_noise(context, stabilization_noise[:, :past], stabilized)
    _, cache = network(both(context_inputs), both(stabilized), previous_actions[:, :past], kept[:, :past])

    rows = level_rows(settings, frames, schedule.config.train_levels).to(context.device)
    chunk_noise = stabilization_noise[:, past:]
    for levels, next_levels in zip(rows[:-1], rows[1:]):
        levels, next_levels = levels.expand(batch, frames), next_levels.expand(batch, frames)
        done = levels == CLEAN
        network_levels = torch.where(done, settings.stabilization_level, levels)
        network_inputs = torch.where(done[..., None, None, None], schedule.add_noise(chunk, chunk_noise, network_levels), chunk)
        velocity, _ = network(both(network_inputs), both(network_levels), previous_actions[:, past:], kept[:, past:], cache)
        if guided:
            conditional, unconditional = velocity.chunk(2)
            velocity = unconditional + settings.guidance_scale * (conditional - unconditional)
        chunk = schedule.ddim_step(chunk, velocity, levels, next_levels)
    return chunk
