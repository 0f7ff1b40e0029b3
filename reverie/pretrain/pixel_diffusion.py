"""The pixel diffusion world model of [16] DIAMOND (Alonso et al. 2024, "Diffusion for World
Modeling: Visual Details Matter in Atari", Sec. 3), with the context-noise augmentation of [23]
GameNGen (Sec. 3.2.1) as a switch.

DIAMOND models p(x_{t+1} | x_{t-K+1..t}, a_{t-K+1..t}) in pixels with an EDM denoiser (Sec. 3,
eq. 6; `reverie.nn.diffusion.edm`): the next frame x_{t+1}, noised to a drawn sigma, is denoised
by D(x^sigma; sigma, context, actions) = c_skip x^sigma + c_out F(c_in x^sigma, c_noise, ...), and
F is trained towards the target that makes D return the clean frame:

    L = E || F(c_in x^sigma, c_noise, x_{t-K+1..t} / sigma_data, a_{t-K+1..t}) - (x_{t+1} - c_skip x^sigma) / c_out ||^2

with DIAMOND's constants (sigma_data 0.5, offset noise 0.3, ln sigma ~ N(-0.4, 1.2^2) clipped to
[2e-3, 20]: `EDMConfig`'s defaults, which `edm` overrides field by field). Frames are in [-1, 1];
as in DIAMOND's denoiser, the context frames are divided by sigma_data before F sees them. F is
`DiamondUNet`: the K context frames stacked in channels beside the noisy frame, and one
conditioning vector in every AdaGroupNorm,

    c = MLP(FourierFeatures(c_noise) + concat_k Embed(a_k) (+ E[context noise bucket]))

the K actions each embedded alike into cond_channels / K features and concatenated in time order
(DIAMOND's Embedding then Flatten; `reverie.pretrain.action_tokens` embeds discrete, multi-discrete
or continuous actions), added to the noise level's Fourier features before the two-layer MLP
(`NoiseLevelEmbedding`). With `context_noise` on, the context frames are noised to a random level
in training and a fixed one in sampling, and the level's bucket embedding joins the sum
(`reverie.pretrain.context_noise`).

Training (`training_losses`): a window of T >= K + 1 frames with their actions gives T - K
targets, frame j from frames j - K .. j - 1 and actions j - K .. j - 1 (frame t is seen before
action t; action t leads to frame t + 1). Deviation: DIAMOND trains its Atari denoiser on
windows of exactly K + 1 frames; on longer ones it feeds each denoised prediction back as the next
target's context, while here every target is conditioned on real frames (the same for T = K + 1).

Sampling (`reverie.nn.world_model`'s interface): Euler steps down the
Karras schedule (DIAMOND's Atari: 3 steps, sigma from 5 to 2e-3, rho 7), D clamped to [-1, 1] and
rounded down to 256 levels at every step as DIAMOND's sampler does; the frame is mapped to [0, 1].
There are no reward or termination heads (DIAMOND trains a separate reward/termination model).

`diffusion: ddpm` swaps the EDM denoiser for DIAMOND's baseline (Sec. 3.3, Fig. 3): the same F
trained to predict the noise of a DDPM schedule (Ho et al. 2020; linear betas over 1000 levels by
default) and sampled with `ddpm_denoising_steps` ancestral steps
(`reverie.nn.diffusion.epsilon_denoiser`), the frame rounded to 256 levels at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import Tensor, nn

from reverie.nn.diffusion import DDPMConfig, EDMConfig, EDMDenoiser, NoiseLevelEmbedding, euler_sample, karras_sigmas
from reverie.nn.diffusion.epsilon_denoiser import EpsilonDenoiser
from reverie.nn.model_folder import MODELS
from reverie.nn.world_model import ContextError, WorldModel, WorldStep, check_context
from reverie.pretrain.action_tokens import ActionEmbedding
from reverie.pretrain.context_noise import ContextNoise
from reverie.pretrain.diamond_unet import DiamondUNet


@dataclass
class PixelDiffusionConfig:
    frame_size: list[int] = field(default_factory=lambda: [64, 64])  # (H, W); DIAMOND's Atari: 64 x 64
    context_frames: int = 4  # K, the frames and actions each prediction is conditioned on; DIAMOND: 4
    action_space: dict = field(default_factory=lambda: {"kind": "discrete", "n": 18})  # see action_tokens
    # the U-Net (DIAMOND's Atari values)
    channels: list[int] = field(default_factory=lambda: [64, 64, 64, 64])  # one entry per level
    res_blocks: int = 2  # per level
    attention: list[bool] = field(default_factory=lambda: [False, False, False, False])  # per level
    cond_channels: int = 256  # the conditioning vector; K must divide it
    diffusion: str = "edm"  # edm (DIAMOND) or ddpm (its noise-predicting baseline)
    # EDM: fields of reverie.nn.diffusion.EDMConfig over DIAMOND's defaults (denoising_steps 3)
    edm: dict = field(default_factory=dict)
    # DDPM: fields of reverie.nn.diffusion.DDPMConfig, and the sampling steps
    ddpm: dict = field(default_factory=lambda: {"beta_schedule": "linear"})
    ddpm_denoising_steps: int = 3
    # GameNGen's context-noise augmentation
    context_noise: bool = False
    context_noise_max: float = 0.7  # levels drawn from U[0, max] in training; GameNGen: 0.7
    context_noise_buckets: int = 10  # GameNGen: 10
    context_noise_inference: float = 0.1  # the fixed level of sampling


class PixelDiffusionError(ValueError):
    """A config this model cannot be built from, or a batch it cannot train on; names the field or shape."""


DIFFUSIONS = ("edm", "ddpm")


def fields_of(config_class: type, given: dict, name: str):
    """config_class(**given), or PixelDiffusionError naming the entries of `name` it has no field for."""
    known = [entry.name for entry in dataclasses.fields(config_class)]
    unknown = [key for key in given if key not in known]
    if unknown:
        raise PixelDiffusionError(f"{name}: {', '.join(unknown)}: not fields of {config_class.__name__}; known: {', '.join(known)}")
    return config_class(**given)


def build_denoiser(network: nn.Module, config: PixelDiffusionConfig) -> EDMDenoiser | EpsilonDenoiser:
    if config.diffusion == "edm":
        return EDMDenoiser(network, fields_of(EDMConfig, config.edm, "edm"))
    return EpsilonDenoiser(network, fields_of(DDPMConfig, config.ddpm, "ddpm"))


def check_config(config: PixelDiffusionConfig) -> None:
    """PixelDiffusionError naming the first field that cannot build a model."""
    if config.diffusion not in DIFFUSIONS:
        raise PixelDiffusionError(f"diffusion {config.diffusion!r}: must be one of {', '.join(DIFFUSIONS)}")
    if config.ddpm_denoising_steps < 1:
        raise PixelDiffusionError(f"ddpm_denoising_steps {config.ddpm_denoising_steps}: must be at least 1")
    if len(config.frame_size) != 2:
        raise PixelDiffusionError(f"frame_size {config.frame_size}: give (height, width)")
    if not config.channels:
        raise PixelDiffusionError("channels []: give one width per U-Net level, e.g. [64, 64, 64, 64]")
    stride = 2 ** (len(config.channels) - 1)
    if any(side % stride for side in config.frame_size):
        raise PixelDiffusionError(f"frame_size {config.frame_size}: must divide by {stride}, the downsampling of {len(config.channels)} channel levels")
    if len(config.attention) != len(config.channels):
        raise PixelDiffusionError(f"attention {config.attention}: needs one entry per level of channels {config.channels}")
    if config.context_frames < 1:
        raise PixelDiffusionError(f"context_frames {config.context_frames}: must be at least 1")
    if config.cond_channels % config.context_frames:
        raise PixelDiffusionError(f"cond_channels {config.cond_channels}: must divide by context_frames {config.context_frames} (one embedding per action)")


class NextFrameNetwork(nn.Module):
    """F of the EDM denoiser: builds the conditioning vector and runs the U-Net."""

    def __init__(self, config: PixelDiffusionConfig):
        super().__init__()
        width = config.cond_channels
        self.action_embedding = ActionEmbedding(config.action_space, width // config.context_frames)
        self.context_noise = (
            ContextNoise(width, config.context_noise_max, config.context_noise_buckets, config.context_noise_inference)
            if config.context_noise
            else None
        )
        self.noise_embedding = NoiseLevelEmbedding(width, width, frequencies="random")
        self.unet = DiamondUNet(config.context_frames, config.channels, config.res_blocks, width, config.attention)

    def forward(self, scaled_noisy: Tensor, c_noise: Tensor, context: Tensor, actions: Tensor, context_noise_buckets: Tensor | None) -> Tensor:
        """scaled_noisy (B, 3, H, W), c_noise (B,), context (B, K, 3, H, W) already scaled, actions
        (B, K, *action_shape), context_noise_buckets (B,) or None -> (B, 3, H, W)."""
        embedded = rearrange(self.action_embedding(actions), "b k d -> b (k d)")
        if context_noise_buckets is not None:
            embedded = embedded + self.context_noise(context_noise_buckets)
        return self.unet(scaled_noisy, context, self.noise_embedding(c_noise, embedded))


@dataclass
class Rollout:
    """The sliding window `step` predicts from: the last K frames and the K - 1 actions between them."""

    frames: Tensor  # (B, K, 3, H, W) in [-1, 1]
    actions: Tensor  # (B, K - 1, *action_shape)
    generator: torch.Generator | None


def quantize(frames: Tensor) -> Tensor:
    """[-1, 1] frames clamped and rounded down to 256 levels, as DIAMOND's sampler stores them in bytes."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).floor() / 127.5 - 1


@MODELS.register("pixel_diffusion_world_model")
class PixelDiffusionWorldModel(nn.Module, WorldModel):
    registry_name = "pixel_diffusion_world_model"
    config_class = PixelDiffusionConfig

    def __init__(self, config: PixelDiffusionConfig):
        super().__init__()
        check_config(config)
        self.config = config
        self.max_context = config.context_frames
        self.frame_shape = (3, *config.frame_size)
        self.denoiser = build_denoiser(NextFrameNetwork(config), config)
        self.context_scale = fields_of(EDMConfig, config.edm, "edm").sigma_data  # DIAMOND's, for either diffusion
        self.rollout_state: Rollout | None = None  # set by `start`

    @property
    def action_embedding(self) -> ActionEmbedding:
        return self.denoiser.network.action_embedding

    @property
    def context_noise(self) -> ContextNoise | None:
        return self.denoiser.network.context_noise

    @property
    def denoising_steps(self) -> int:
        """Network evaluations per sampled frame; settable, e.g. to trade quality for speed."""
        return self.denoiser.config.denoising_steps if self.config.diffusion == "edm" else self.config.ddpm_denoising_steps

    @denoising_steps.setter
    def denoising_steps(self, steps: int) -> None:
        if steps < 1:
            raise PixelDiffusionError(f"denoising_steps {steps}: must be at least 1")
        if self.config.diffusion == "edm":
            self.denoiser.config.denoising_steps = steps
        else:
            self.config.ddpm_denoising_steps = steps

    @property
    def reference_weight(self) -> Tensor:
        """A weight of the model: inputs are moved to its device and dtype."""
        return self.denoiser.network.unet.conv_in.weight

    def conditioning(self, context: Tensor, actions: Tensor, training: bool, generator: torch.Generator | None = None) -> dict:
        """context (B, K, 3, H, W) in [-1, 1], actions (B, K, ...) -> F's keyword inputs: the context
        noised (GameNGen, when on: a drawn level in training, the fixed one else) and divided by
        sigma_data (DIAMOND), the actions, and the context-noise buckets (None when off)."""
        buckets = None
        if self.context_noise is not None:
            noise = self.context_noise.training_noise if training else self.context_noise.inference_noise
            context, buckets = noise(context, generator)
        return {"context": context / self.context_scale, "actions": actions, "context_noise_buckets": buckets}

    def training_losses(self, batch: dict) -> dict[str, Tensor]:
        """The EDM loss of every frame of the window after the first K; see the module docstring."""
        frames = self.batch_frames(batch)
        actions = self.batch_actions(batch, frames.shape[:2])
        steps, context_frames = frames.shape[1], self.config.context_frames
        windows = torch.stack([frames[:, j - context_frames : j + 1] for j in range(context_frames, steps)], dim=1)
        windows = rearrange(windows, "b n k c h w -> (b n) k c h w")  # K context frames, then the target
        window_actions = torch.stack([actions[:, j - context_frames : j] for j in range(context_frames, steps)], dim=1)
        conditioning = self.conditioning(windows[:, :-1], window_actions.flatten(0, 1), training=True)
        trained = self.denoiser.training_step(windows[:, -1], **conditioning)
        return {"loss": trained.loss.mean()}

    def batch_frames(self, batch: dict) -> Tensor:
        """batch frames (B, T, 3, H, W) in [0, 1], checked -> in [-1, 1], in the model's dtype."""
        if "frames" not in batch:
            held = ", ".join(name for name in ("latents", "tokens") if name in batch) or "no frames"
            raise PixelDiffusionError(f"a batch of {held}: this model trains on frames (B, T, 3, H, W); train it on frame or episode shards")
        frames = batch["frames"]
        if frames.ndim != 5 or tuple(frames.shape[2:]) != self.frame_shape:
            raise PixelDiffusionError(f"batch frames of shape {tuple(frames.shape)}: expected (B, T, {', '.join(map(str, self.frame_shape))}) (frame_size)")
        if frames.shape[1] < self.config.context_frames + 1:
            raise PixelDiffusionError(
                f"a window of {frames.shape[1]} frames: this model needs at least context_frames + 1 = {self.config.context_frames + 1} "
                f"(set data.window to {self.config.context_frames + 1} or more)"
            )
        return frames.to(self.reference_weight) * 2 - 1

    def batch_actions(self, batch: dict, leading: tuple[int, int]) -> Tensor:
        """batch actions (B, T, *action_shape), checked against the action space."""
        has_actions = batch.get("has_actions", "actions" in batch)
        if "actions" not in batch or not bool(torch.as_tensor(has_actions).all()):
            shards = sorted({str(shard) for shard in batch.get("shard", [])})
            raise PixelDiffusionError(
                f"a batch without actions ({', '.join(shards) or 'no actions member'}): this model predicts frames from actions; "
                "train it on recorded episodes (reverie record)"
            )
        self.action_embedding.check(batch["actions"], tuple(leading), "batch actions")
        return batch["actions"]

    def sample_next_frame(self, context: Tensor, actions: Tensor, generator: torch.Generator | None) -> Tensor:
        """context (B, K, 3, H, W) in [-1, 1], actions (B, K, ...) -> the next frame (B, 3, H, W) in [-1, 1]."""
        conditioning = self.conditioning(context, actions, training=False, generator=generator)
        shape = (context.shape[0], *self.frame_shape)
        if isinstance(self.denoiser, EpsilonDenoiser):
            return quantize(self.denoiser.sample(shape, self.config.ddpm_denoising_steps, generator, **conditioning))
        edm = self.denoiser.config
        sigmas = karras_sigmas(edm.denoising_steps, edm.sigma_min, edm.sigma_max, edm.rho, context.device, context.dtype)

        def denoise(noisy: Tensor, sigma: Tensor) -> Tensor:
            return quantize(self.denoiser(noisy, sigma, **conditioning))

        return euler_sample(denoise, shape, sigmas, generator).clamp(-1, 1)

    @torch.no_grad()
    def start(self, context_frames: Tensor, context_actions: Tensor | None, generator: torch.Generator | None = None) -> None:
        """Begin B rollouts from context_frames (B, K', 3, H, W) in [0, 1], 1 <= K' <= K, and the
        K' - 1 actions between them. A context shorter than K is padded in front to K frames by
        repeating its first frame, with the no-op action (code 0, or zeros for continuous actions)
        at each padding frame, as if the world had stood still before it."""
        given = check_context(context_frames, context_actions, self.max_context, self.frame_shape)
        batch, weight = context_frames.shape[0], self.reference_weight
        if given > 1:
            if context_actions is None or context_actions.numel() == 0:
                raise ContextError(f"a context of {given} frames needs the {given - 1} actions between them; got none")
            self.action_embedding.check(context_actions, (batch, given - 1), "context actions")
        actions = self.action_embedding.none(batch, weight.device) if given == 1 else context_actions.to(weight.device)
        padding = self.max_context - given
        no_op = actions.new_zeros((batch, padding, *self.action_embedding.shape))
        frames = context_frames.to(weight) * 2 - 1
        frames = torch.cat([frames[:, :1].expand(-1, padding, -1, -1, -1), frames], dim=1)
        self.rollout_state = Rollout(frames, torch.cat([no_op, actions], dim=1), generator)

    @torch.no_grad()
    def step(self, action: Tensor | None) -> WorldStep:
        """Take `action` (B, *action_shape) at the last frame: sample the next frame (B, 3, H, W) in
        [0, 1] from the window's K frames and actions, then slide the window by one."""
        state = self.rollout_state
        if state is None:
            raise ContextError("step before start: start the rollout from context frames first")
        if action is None:
            raise ContextError("step(None): this model predicts from actions; give the action taken at the last frame")
        self.action_embedding.check(action, (state.frames.shape[0],), "action")
        actions = torch.cat([state.actions, action.to(state.actions.device)[:, None]], dim=1)
        next_frame = self.sample_next_frame(state.frames, actions, state.generator)
        state.frames = torch.cat([state.frames[:, 1:], next_frame[:, None]], dim=1)
        state.actions = actions[:, 1:]
        return WorldStep(frame=(next_frame + 1) / 2)
