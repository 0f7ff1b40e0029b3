"""The latent diffusion world model with diffusion forcing of [24] Oasis (Decart & Etched 2024) and
[19] Genie 2, the latent DiT of the Cosmos diffusion world models ([25] NVIDIA 2025, Sec. 5.1) in
its action-conditioned, frame-causal form.

A frozen continuous per-frame tokenizer (`reverie.pretrain.frozen_tokenizer`; Oasis: its spatial
autoencoder) turns frame t into a latent x_t (C, h, w), multiplied by `latent_scale` so that the
latents diffusion sees have about unit variance (Oasis scales its VAE's by 0.0784; decoding divides
again). The velocity network is the spatiotemporal DiT of `reverie.pretrain.latent_dit`: frame t's
output depends on frames 0 .. t alone, each frame conditioned on its own noise level and on the
action that led to it, a_{t-1}.

Training is diffusion forcing (Chen et al. 2024, Sec. 3.2, Alg. 1) with v-prediction (Salimans &
Ho 2022) on the DDPM schedule of `reverie.nn.diffusion.ddpm`: for a window x_0 .. x_{T-1} of latent
frames, every frame draws its own level l_t ~ U{0, .., L - 1} (L = `train_levels`), and

    x_t^{l_t} = sqrt(abar_{l_t}) x_t + sqrt(1 - abar_{l_t}) eps_t,   v_t = sqrt(abar_{l_t}) eps_t - sqrt(1 - abar_{l_t}) x_t
    loss = mean_t || v_hat_t(x_{<=t}^{l_{<=t}}, l_{<=t}, a_{<t}) - v_t ||^2

Action dropout: each window's actions are replaced by the null action with probability
`action_dropout`, which teaches the unconditional model that classifier-free guidance needs;
windows of video without actions (`has_actions` false) always take the null action, so the model
also trains on unlabeled video. Frame 0 of every window takes the null action (its a_{-1} is not in
the window), in training and sampling alike.

Generation (`reverie.nn.world_model`'s interface, and `generate` for several frames at once):
`start` encodes the context; `generate(actions)` makes N new frames, `frames_per_chunk` at a time,
each chunk denoised through the scheduling matrix (`schedule`: autoregressive or pyramid) in
`sampling_steps` DDIM steps after the window's last max_frames - n frames, with the context at the
stabilisation level and guidance `guidance_scale` on the actions (`reverie.pretrain.forcing_sampler`);
`step(a)` is generate of one frame. The window slides: once it holds max_frames frames, the oldest
are dropped before the next chunk, and times restart at 0 in each pass, so a rollout runs past
the training length with the positions it was trained on. Context actions of None (and step(None))
take the null action: the unconditional model. There are no reward or termination heads.

Action spaces (`action_space`, `reverie.pretrain.action_tokens`): discrete, continuous, and
multi-discrete, Oasis's keyboard and mouse as one code per key (2 values) and per mouse axis (its
bins). A keyboard with a continuous mouse is not supported: bin the mouse.

Deviations from Oasis: one MLP per block after both attentions (Oasis has one after each), a learned
spatial position embedding instead of its axial rotary one, and the DDPM schedules diffusers names
(Oasis uses the sigmoid schedule of Jabri et al. 2023).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from reverie.nn.diffusion import DDPMConfig, VPredictionSchedule
from reverie.nn.diffusion.scheduling_matrix import KINDS as SCHEDULES
from reverie.nn.dit_block import DiTBlock
from reverie.nn.model_folder import MODELS
from reverie.nn.world_model import ContextError, WorldModel, WorldStep, check_context
from reverie.pretrain.action_tokens import SIZE_FIELDS, ActionEmbedding, ActionSpaceError
from reverie.pretrain.forcing_sampler import SamplingSettings, denoise_chunk
from reverie.pretrain.frozen_tokenizer import frozen_tokenizer
from reverie.pretrain.latent_dit import LatentDiT


@dataclass
class LatentDiffusionConfig:
    tokenizer: str | dict | None = None  # a continuous per-frame tokenizer's model folder; its record once built
    frame_size: list[int] = field(default_factory=lambda: [288, 512])  # (H, W) of the frames
    latent_scale: float = 1.0  # multiplies the tokenizer's latents before diffusion (to about unit variance)
    action_space: dict = field(default_factory=lambda: {"kind": "discrete", "n": 2})  # see action_tokens
    action_dropout: float = 0.1  # probability that a window trains with the null action (for guidance)
    patch_size: int = 2  # p x p latent values a token; Oasis: 2
    width: int = 1024
    depth: int = 16
    heads: int = 16
    mlp_ratio: float = 4.0
    max_frames: int = 32  # the training window, and the most frames generation attends to
    train_levels: int = 1000  # L, the DDPM levels
    beta_schedule: str = "squaredcos_cap_v2"  # a diffusers name (see reverie.nn.diffusion.ddpm)
    sampling_steps: int = 100  # DDIM steps a frame takes from noise to clean
    schedule: str = "autoregressive"  # autoregressive | pyramid | full_sequence
    frames_per_chunk: int = 1  # new frames one scheduling matrix denoises together; < max_frames
    stabilization_level: int = 15  # the level context frames are noised to and the network told
    guidance_scale: float = 1.0  # classifier-free guidance on actions; 1: conditional only


class LatentDiffusionError(ValueError):
    """A config this model cannot be built from, or a batch that does not fit it; names the field or shape."""


@dataclass
class Rollout:
    """The window `generate` continues from: clean latents in diffusion space and the actions between them."""

    latents: torch.Tensor  # (B, W, C, h, w), W <= max_frames
    actions: torch.Tensor  # (B, W - 1, *action_shape): action t led from frame t to t + 1; zeros where not kept
    kept: torch.Tensor  # (B, W - 1) bool: False for the null action
    generator: torch.Generator | None


@MODELS.register("latent_diffusion_world_model")
class LatentDiffusionWorldModel(nn.Module, WorldModel):
    registry_name = "latent_diffusion_world_model"
    config_class = LatentDiffusionConfig
    checkpoint_blocks = (DiTBlock,)

    def __init__(self, config: LatentDiffusionConfig):
        super().__init__()
        check_config(config)
        self.tokenizer = frozen_tokenizer(config.tokenizer, discrete=False, why="latent diffusion denoises continuous latents")
        config.tokenizer = self.tokenizer.record  # the model folder then holds everything it needs
        self.config = config
        self.max_context = config.max_frames
        self.latent_shape = (self.tokenizer.latent_channels, *self.tokenizer.grid(*config.frame_size))
        if self.latent_shape[1] % config.patch_size or self.latent_shape[2] % config.patch_size:
            raise LatentDiffusionError(
                f"patch_size {config.patch_size}: does not divide the {self.latent_shape[1]}x{self.latent_shape[2]} latent grid "
                f"of {config.frame_size[0]}x{config.frame_size[1]} frames"
            )
        self.network = LatentDiT(self.latent_shape, config.patch_size, config.width, config.depth, config.heads,
                                 config.mlp_ratio, config.action_space)  # fmt: skip
        self.schedule = VPredictionSchedule(DDPMConfig(train_levels=config.train_levels, beta_schedule=config.beta_schedule))
        self.rollout_state: Rollout | None = None

    @property
    def action_embedding(self) -> ActionEmbedding:
        return self.network.action_embedding

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Diffusion forcing's v-prediction loss on a loader batch (frames, or a latent shard's
        `latents`, with `actions` where it has them)."""
        latents = self.batch_latents(batch) * self.config.latent_scale
        batch_size, frames = latents.shape[:2]
        actions, kept = self.batch_actions(batch, batch_size, frames)
        kept = kept & (torch.rand(batch_size, 1, device=latents.device) >= self.config.action_dropout)
        levels = torch.randint(0, self.config.train_levels, (batch_size, frames), device=latents.device)
        noise = torch.randn_like(latents)
        noisy = self.schedule.add_noise(latents, noise, levels)
        previous_actions, previous_kept = null_first(actions[:, :-1], kept.expand(batch_size, frames)[:, :-1])
        velocity, _ = self.network(noisy, levels, previous_actions, previous_kept)
        return {"loss": F.mse_loss(velocity.float(), self.schedule.velocity(latents, noise, levels).float())}

    def batch_latents(self, batch: dict) -> torch.Tensor:
        """The batch's latents (B, T, C, h, w), its own or its frames encoded; LatentDiffusionError
        naming a shape or a window that does not fit."""
        latents = self.tokenizer.codes_of(batch)
        if latents.ndim != 5 or tuple(latents.shape[2:]) != self.latent_shape:
            size = "x".join(map(str, self.config.frame_size))
            expected = ", ".join(map(str, self.latent_shape))
            raise LatentDiffusionError(
                f"latents of shape {tuple(latents.shape)}: this model takes (B, T, {expected}), the latents of {size} frames (frame_size)"
            )
        if latents.shape[1] > self.config.max_frames:
            raise LatentDiffusionError(f"a window of {latents.shape[1]} frames: this model trains on at most max_frames {self.config.max_frames}")
        return latents

    def batch_actions(self, batch: dict, batch_size: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's actions (B, T, *action_shape), checked against the model's action space (the
        episodes' recorded one too), and which windows have them, (B, 1) bool."""
        device = self.network.null_action.device
        has_actions = torch.as_tensor(batch.get("has_actions", "actions" in batch), device=device).reshape(-1)
        if not bool(has_actions.any()):
            return self.no_actions(batch_size, frames, device), torch.zeros(batch_size, 1, dtype=torch.bool, device=device)
        metas = batch.get("meta") or []
        for meta, shard in zip(metas, batch.get("shard") or ["?"] * len(metas)):
            check_recorded_space((meta or {}).get("action_space"), self.config.action_space, shard)
        actions = batch.get("actions")
        if not torch.is_tensor(actions):
            raise LatentDiffusionError("a batch mixing windows with and without actions: keep video without actions in shards of its own")
        self.action_embedding.check(actions, (batch_size, frames), "batch actions")
        return actions, has_actions.expand(batch_size)[:, None]

    def no_actions(self, batch: int, frames: int, device: torch.device) -> torch.Tensor:
        """(B, frames, *action_shape) zeros, the placeholder of null actions."""
        dtype = self.action_embedding.none(batch, device).dtype
        return torch.zeros(batch, frames, *self.action_embedding.shape, dtype=dtype, device=device)

    def sampling_settings(self, **overrides) -> SamplingSettings:
        """The config's sampling settings with `overrides` (None keeps the config's), checked."""
        known = [setting.name for setting in dataclasses.fields(SamplingSettings)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise LatentDiffusionError(f"{', '.join(unknown)}: not sampling settings; known: frames_per_chunk, {', '.join(known)}")
        settings = dataclasses.replace(configured_sampling(self.config), **{name: value for name, value in overrides.items() if value is not None})
        check_sampling(settings, self.config.train_levels)
        return settings

    @torch.no_grad()
    def start(self, context_frames: torch.Tensor, context_actions: torch.Tensor | None, generator: torch.Generator | None = None) -> None:
        """Encode the K context frames; the K - 1 actions between them (None: null actions)."""
        frames = check_context(context_frames, context_actions, self.max_context, (3, *self.config.frame_size))
        batch, device = context_frames.shape[0], context_frames.device
        latents = self.tokenizer.encode(context_frames) * self.config.latent_scale
        if context_actions is None or context_actions.numel() == 0:
            actions, kept = self.no_actions(batch, frames - 1, device), torch.zeros(batch, frames - 1, dtype=torch.bool, device=device)
        else:
            self.action_embedding.check(context_actions, (batch, frames - 1), "context actions")
            actions, kept = context_actions, torch.ones(batch, frames - 1, dtype=torch.bool, device=device)
        self.rollout_state = Rollout(latents, actions, kept, generator)

    @torch.no_grad()
    def step(self, action: torch.Tensor | None) -> WorldStep:
        """Take `action` (B, *action_shape) at the last frame (None: the null action); the next frame."""
        if action is not None:
            self.action_embedding.check(action, (self.started().latents.shape[0],), "action")
        actions = None if action is None else action[:, None]
        return WorldStep(self.generate(actions, frames=1, frames_per_chunk=1)[:, 0])

    @torch.no_grad()
    def generate(self, actions: torch.Tensor | None, frames: int | None = None, frames_per_chunk: int | None = None,
                 **overrides) -> torch.Tensor:  # fmt: skip
        """N new frames (B, N, 3, H, W) after the rollout's window, taking actions (B, N,
        *action_shape) (None: N = `frames` null actions); `frames_per_chunk` and the
        SamplingSettings fields as keywords override the config's. The window keeps them."""
        state = self.started()
        batch, device = state.latents.shape[0], state.latents.device
        actions, kept = self.new_actions(actions, frames, batch, device)
        settings = self.sampling_settings(**overrides)
        chunk_size = frames_per_chunk or self.config.frames_per_chunk
        if not 1 <= chunk_size < self.config.max_frames:
            raise LatentDiffusionError(f"frames_per_chunk {chunk_size}: must lie in [1, max_frames {self.config.max_frames}), leaving a context frame")
        generated = []
        for first in range(0, actions.shape[1], chunk_size):
            chunk_actions, chunk_kept = actions[:, first : first + chunk_size], kept[:, first : first + chunk_size]
            self.slide(self.config.max_frames - chunk_actions.shape[1])
            window_actions = torch.cat([state.actions, chunk_actions], dim=1)
            window_kept = torch.cat([state.kept, chunk_kept], dim=1)
            previous_actions, previous_kept = null_first(window_actions, window_kept)
            new = denoise_chunk(self.network, self.schedule, state.latents, previous_actions, previous_kept, chunk_actions.shape[1],
                                settings, state.generator)  # fmt: skip
            state.latents, state.actions, state.kept = torch.cat([state.latents, new], dim=1), window_actions, window_kept
            generated.append(self.tokenizer.decode(state.latents / self.config.latent_scale)[:, -new.shape[1] :])
        return torch.cat(generated, dim=1)

    def started(self) -> Rollout:
        if self.rollout_state is None:
            raise ContextError("a step before start: start the rollout from context frames first")
        return self.rollout_state

    def new_actions(self, actions: torch.Tensor | None, frames: int | None, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The actions of `generate`, checked, and which are kept (B, N) bool."""
        if actions is None:
            if not frames or frames < 1:
                raise LatentDiffusionError(f"generate without actions needs frames >= 1, got {frames}")
            return self.no_actions(batch, frames, device), torch.zeros(batch, frames, dtype=torch.bool, device=device)
        if actions.ndim < 2:
            raise ActionSpaceError(f"actions of shape {tuple(actions.shape)}: expected (B, N, *action_shape), one action a new frame")
        self.action_embedding.check(actions, (batch, actions.shape[1]), "actions")
        if frames is not None and frames != actions.shape[1]:
            raise LatentDiffusionError(f"generate of {frames} frames with {actions.shape[1]} actions: give one action a new frame")
        return actions, torch.ones(batch, actions.shape[1], dtype=torch.bool, device=device)

    def slide(self, frames: int) -> None:
        """Keep the window's last `frames` frames (and the actions between them)."""
        state = self.rollout_state
        dropped = max(0, state.latents.shape[1] - frames)
        state.latents, state.actions, state.kept = state.latents[:, dropped:], state.actions[:, dropped:], state.kept[:, dropped:]


def null_first(actions: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The actions between frames 0 .. T - 1, (B, T - 1, ...), and whether each is kept, (B, T - 1)
    -> the action that led to each frame, (B, T, ...), and (B, T): frame 0's is null."""
    return torch.cat([torch.zeros_like(actions[:, :1]), actions], dim=1), torch.cat([torch.zeros_like(kept[:, :1]), kept], dim=1)


def as_action_space(recorded: dict) -> dict:
    """An episode's recorded action space (`reverie.shards.episodes.describe_space`) as an
    `action_space` (`reverie.pretrain.action_tokens`): multi-binary as multi-discrete of 2s, a box
    as continuous of its size."""
    kind = recorded.get("type")
    if kind == "discrete":
        return {"kind": kind, "n": int(recorded["n"])}
    if kind == "multi_discrete":
        return {"kind": kind, "nvec": [int(n) for n in recorded["nvec"]]}
    if kind == "multi_binary":
        return {"kind": "multi_discrete", "nvec": [2] * int(recorded["n"])}
    return {"kind": "continuous", "dim": math.prod(recorded.get("shape", []))}


def check_recorded_space(recorded: dict | None, action_space: dict, shard: str) -> None:
    """ActionSpaceError naming the shard whose episodes were recorded with another action space."""
    if not recorded:
        return
    size = SIZE_FIELDS[action_space["kind"]]
    if as_action_space(recorded) != {"kind": action_space["kind"], size: action_space[size]}:
        raise ActionSpaceError(f"{shard}: episodes recorded with action space {recorded}; this model takes {action_space} (model.action_space)")


def configured_sampling(config: LatentDiffusionConfig) -> SamplingSettings:
    """The sampling settings that the config's fields of the same names hold."""
    return SamplingSettings(**{setting.name: getattr(config, setting.name) for setting in dataclasses.fields(SamplingSettings)})


def check_sampling(settings: SamplingSettings, train_levels: int) -> None:
    """LatentDiffusionError naming the first sampling setting that cannot run."""
    if settings.schedule not in SCHEDULES:
        raise LatentDiffusionError(f"schedule {settings.schedule!r}: must be one of {', '.join(SCHEDULES)}")
    if not 1 <= settings.sampling_steps <= train_levels:
        raise LatentDiffusionError(f"sampling_steps {settings.sampling_steps}: must lie in [1, train_levels {train_levels}]")
    if not 0 <= settings.stabilization_level < train_levels:
        raise LatentDiffusionError(f"stabilization_level {settings.stabilization_level}: must lie in [0, train_levels {train_levels})")


def check_config(config: LatentDiffusionConfig) -> None:
    """LatentDiffusionError naming the first field that cannot build a model."""
    if config.tokenizer is None:
        raise LatentDiffusionError("tokenizer: not set; give the model folder of a continuous per-frame tokenizer (model.tokenizer=PATH)")
    if len(config.frame_size) != 2:
        raise LatentDiffusionError(f"frame_size {config.frame_size}: give (height, width)")
    if config.max_frames < 2:
        raise LatentDiffusionError(f"max_frames {config.max_frames}: a world model needs at least 2 frames (one step) in its window")
    if not 0 <= config.action_dropout < 1:
        raise LatentDiffusionError(f"action_dropout {config.action_dropout}: must lie in [0, 1)")
    if config.latent_scale <= 0:
        raise LatentDiffusionError(f"latent_scale {config.latent_scale}: must be positive")
    if not 1 <= config.frames_per_chunk < config.max_frames:
        raise LatentDiffusionError(f"frames_per_chunk {config.frames_per_chunk}: must lie in [1, max_frames {config.max_frames})")
    check_sampling(configured_sampling(config), config.train_levels)
