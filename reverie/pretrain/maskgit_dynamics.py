"""The dynamics model of Genie ([18] Bruce et al. 2024, Sec. 2.1, "Dynamics Model"): a MaskGIT
(Chang et al. 2022) transformer over a frozen discrete per-frame tokenizer's codes, conditioned on
latent actions, that predicts the codes of the next frame,

    z^_t ~ p(z_t | z_{<t}, a_{<t}),    z_t in [K]^N (N = h w codes a frame),  a_t in [|A|] (|A| = 8),

where action a_t is taken at frame t and leads to frame t + 1 (`reverie.nn.world_model`).

Tokens. Frame t's N codes (`reverie.pretrain.frozen_tokenizer`) are embedded, a hidden code being
the extra [MASK] code K. The action that led to frame t, a_{t-1}, conditions it in one of two ways
(`action_conditioning`): "add", Genie's "additive embeddings", added to each of the frame's N
tokens; or "prepend", its own token before the frame's N (N + 1 tokens a frame), which the Jasmine
reproduction of Genie found essential for the actions to take hold. Frame 0 of a window has no
action before it and gets a learned `no_action` embedding in its place.

Actions. Genie trains on video without actions: with `latent_action_model: PATH`, a trained LAM
(`reverie.pretrain.latent_actions`, frozen inside this model: `reverie.pretrain.frozen_latent_actions`)
labels each training window from its frames, and any actions the shards hold are not read. Without
it the batch's own `actions` are the labels (recorded actions, or latent actions written beside the
frames).

Transformer. Genie's ST-transformer (`reverie.tokenizers.st_transformer`): spatial attention
within each frame, bidirectional; temporal attention over each token slot's frames, causal, so
the logits of frame t depend on frames <= t only; 3D RoPE of (time, row, column), the prepended
action token at row -1, column -1 (one step before the grid's corner; `STTransformer.with_frame_tokens`). A linear head maps each
code token to K logits.

Training (Genie, Sec. 2.1): per sample a mask ratio r ~ U(0.5, 1); each code of frames 1 .. T - 1
is replaced by [MASK] with probability r (Bernoulli), frame 0 never. The loss is the cross-entropy
of the codes under the masked positions' logits, averaged over the masked codes only,

    L = - sum_{(t, n) masked} log p(z_t^n | masked z, a) / #masked.

Sampling (MaskGIT, Sec. 3.2; Genie: 25 steps at temperature 2). The next frame starts all [MASK].
Each of the S steps runs the window and draws a code for every masked slot from
softmax(logits / temperature) (argmax at temperature 0), whose probability is its confidence; the
most confident are revealed, so that after step s a fraction cos(pi/2 (s + 1) / S) of the N codes
is still masked (the cosine schedule, `reveal_schedule`), at least one code is revealed a step and
all are by the last. Revealed codes stay. The frame is the last of the window's codes decoded
together, as a tokenizer causal in time decodes it. The window holds max_frames frames (Genie: 16):
a step that would pass them first drops the oldest frame and its action (a sliding window), whose
new first frame then gets `no_action`, as the first frame of every training window does.

Deviations. The confidence carries no Gumbel noise (MaskGIT anneals noise of "choice temperature"
4.5 into it); Genie's temperature is read as the sampling temperature. Genie's final model has 36
heads of key/query size 128 at width 5120; the shared attention here splits the width into heads,
so `configs/genie/dynamics_genie.yaml` takes 40 heads of 128. With two attentions and a 4x MLP per
block those sizes give about 20B parameters here, against the paper's 10.1B (the attentions alone
are about 10B); the paper does not say which part of its block is smaller. No QK-norm, no dropout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.nn.world_model import ContextError, WorldModel, WorldStep, check_context
from reverie.pretrain.action_tokens import ActionEmbedding
from reverie.pretrain.frozen_latent_actions import FrozenLatentActions
from reverie.pretrain.frozen_tokenizer import frozen_tokenizer
from reverie.pretrain.token_world_model import init_gpt_weights
from reverie.tokenizers.st_transformer import STBlock, STTransformer

MASK_RATIO_RANGE = (0.5, 1.0)  # Genie: the training mask ratio is drawn per sample from U(0.5, 1)
ACTION_CONDITIONINGS = ("add", "prepend")


@dataclass
class MaskGITDynamicsConfig:
    tokenizer: str | dict | None = None  # a discrete per-frame tokenizer's model folder; its record once built
    frame_size: list[int] = field(default_factory=lambda: [120, 120])  # (H, W); 30 x 30 codes of Genie's tokenizer
    num_actions: int = 8  # |A|, Genie's latent actions
    latent_action_model: str | dict | None = None  # a LAM's model folder whose inferred actions label the training windows; its record once built
    action_conditioning: str = "add"  # "add": Genie's additive embedding; "prepend": a token of its own (Jasmine)
    width: int = 5120  # Genie's final model: 48 layers of width 5120 (see the module docstring for the heads)
    depth: int = 48
    heads: int = 40
    mlp_ratio: float = 4.0  # not in the paper
    max_frames: int = 16  # the window; Genie: 16 frames
    sampling_steps: int = 25  # MaskGIT steps per frame; Genie: 25
    sampling_temperature: float = 2.0  # Genie: 2; 0: argmax


class MaskGITDynamicsError(ValueError):
    """A config this model cannot be built from, or a batch that does not fit it; names the field or shape."""


def check_config(config: MaskGITDynamicsConfig) -> None:
    """MaskGITDynamicsError naming the first field that cannot build a model."""
    if config.tokenizer is None:
        raise MaskGITDynamicsError("tokenizer: not set; give the model folder of a discrete per-frame tokenizer (model.tokenizer=PATH)")
    if len(config.frame_size) != 2:
        raise MaskGITDynamicsError(f"frame_size {config.frame_size}: give (height, width)")
    if config.num_actions < 1:
        raise MaskGITDynamicsError(f"num_actions {config.num_actions}: give the number of latent actions |A| (Genie: 8)")
    if config.action_conditioning not in ACTION_CONDITIONINGS:
        raise MaskGITDynamicsError(f"action_conditioning {config.action_conditioning!r}: one of {', '.join(ACTION_CONDITIONINGS)}")
    if config.width % config.heads or config.width // config.heads < 6:
        raise MaskGITDynamicsError(f"width {config.width}, heads {config.heads}: the width must split into heads of at least 6 dims (3D RoPE)")
    if config.max_frames < 2:
        raise MaskGITDynamicsError(f"max_frames {config.max_frames}: a dynamics model needs at least 2 frames (one step) in its window")
    if config.sampling_temperature < 0:
        raise MaskGITDynamicsError(f"sampling_temperature {config.sampling_temperature}: must be 0 (argmax) or more")


def draw_mask(
    batch: int, frames: int, codes_per_frame: int, device=None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Genie's training mask: ratios (B,) ~ U(0.5, 1), and masked (B, T, N) bool, each code of frames
    1 .. T - 1 masked with its sample's ratio (Bernoulli), frame 0 never."""
    low, high = MASK_RATIO_RANGE
    ratios = low + (high - low) * torch.rand(batch, device=device, generator=generator)
    masked = torch.rand(batch, frames, codes_per_frame, device=device, generator=generator) < ratios[:, None, None]
    masked[:, 0] = False
    return ratios, masked


def masked_cross_entropy(logits: torch.Tensor, codes: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, N, K) of codes (B, T, N) -> the mean cross-entropy over the masked (B, T, N)
    positions only (0 if none), without indexing by the mask, so shapes never depend on it."""
    cross_entropy = F.cross_entropy(rearrange(logits, "b t n k -> b k t n"), codes, reduction="none")  # (B, T, N)
    return (cross_entropy * masked).sum() / masked.sum().clamp(min=1)


def reveal_schedule(codes: int, steps: int) -> list[int]:
    """MaskGIT's cosine schedule: the number of a frame's `codes` revealed by the end of each of
    `steps` steps. After step s, floor(codes cos(pi/2 (s + 1) / steps)) stay masked, held between
    one and one fewer than before (MaskGIT's clamp), and none after the last."""
    if not 1 <= steps <= codes:
        raise MaskGITDynamicsError(f"sampling_steps {steps}: give 1 to {codes}, the codes of a frame (each step reveals at least one)")
    still_masked, revealed = codes, []
    for step in range(steps - 1):
        still_masked = max(1, min(still_masked - 1, math.floor(codes * math.cos(math.pi / 2 * (step + 1) / steps))))
        revealed.append(codes - still_masked)
    return revealed + [codes]


def draw_codes(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, N, K) -> codes (B, N) drawn from softmax(logits / temperature) (the argmax at
    temperature 0), and each drawn code's probability (B, N), MaskGIT's confidence."""
    if temperature == 0:
        probabilities = F.softmax(logits, dim=-1)
        codes = logits.argmax(dim=-1)
    else:
        probabilities = F.softmax(logits / temperature, dim=-1)
        flat = rearrange(probabilities, "b n k -> (b n) k")
        codes = rearrange(torch.multinomial(flat, 1, generator=generator), "(b n) 1 -> b n", b=logits.shape[0])
    return codes, probabilities.gather(-1, codes[..., None]).squeeze(-1)


@dataclass
class Rollout:
    """What `step` continues from: the window's codes and the actions between its frames."""

    codes: torch.Tensor  # (B, T, N) int64, T <= max_frames
    actions: torch.Tensor  # (B, T - 1) int64
    generator: torch.Generator | None


@MODELS.register("maskgit_dynamics")
class MaskGITDynamics(nn.Module, WorldModel):
    registry_name = "maskgit_dynamics"
    config_class = MaskGITDynamicsConfig
    checkpoint_blocks = (STBlock,)

    def __init__(self, config: MaskGITDynamicsConfig):
        super().__init__()
        check_config(config)
        self.tokenizer = frozen_tokenizer(config.tokenizer, discrete=True, why="the MaskGIT dynamics model predicts codes")
        config.tokenizer = self.tokenizer.record  # the model folder then holds everything it needs
        self.latent_actions = None if config.latent_action_model is None else self.labelling_model(config)
        self.config = config
        self.max_context = config.max_frames
        self.grid = self.tokenizer.grid(*config.frame_size)
        self.codes_per_frame = self.grid[0] * self.grid[1]
        self.schedule = reveal_schedule(self.codes_per_frame, config.sampling_steps)
        self.prepend = config.action_conditioning == "prepend"
        self.mask_code = self.tokenizer.codebook_size  # [MASK]: one code past the tokenizer's
        self.code_embedding = nn.Embedding(self.tokenizer.codebook_size + 1, config.width)
        self.action_embedding = ActionEmbedding({"kind": "discrete", "n": config.num_actions}, config.width)
        self.no_action = nn.Parameter(torch.zeros(config.width))  # in place of the action before a window's frame 0
        self.transformer = STTransformer(config.width, config.depth, config.heads, config.mlp_ratio)
        self.code_head = nn.Linear(config.width, self.tokenizer.codebook_size)
        for name, module in self.named_children():
            if name not in ("tokenizer", "latent_actions"):
                module.apply(init_gpt_weights)
        nn.init.normal_(self.no_action, std=0.02)
        self.rollout_state: Rollout | None = None

    @staticmethod
    def labelling_model(config: MaskGITDynamicsConfig) -> FrozenLatentActions:
        latent_actions = FrozenLatentActions(config.latent_action_model)
        if latent_actions.num_actions != config.num_actions:
            raise MaskGITDynamicsError(
                f"num_actions {config.num_actions}: the latent action model has {latent_actions.num_actions} codes; set num_actions to match"
            )
        config.latent_action_model = latent_actions.record
        return latent_actions

    def logits(self, codes: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, N), [MASK] where hidden, and the T - 1 actions between the frames (B, T - 1)
        -> logits (B, T, N, K); those of frame t depend on frames <= t and actions < t only."""
        tokens = rearrange(self.code_embedding(codes), "b t (h w) d -> b t h w d", h=self.grid[0])  # (B, T, h, w, width)
        before_first = self.no_action.expand(codes.shape[0], 1, -1)
        action_tokens = torch.cat([before_first, self.action_embedding(actions)], dim=1)  # (B, T, width): a_{t-1} for frame t
        if self.prepend:
            hidden, _ = self.transformer.with_frame_tokens(tokens, action_tokens)
        else:
            hidden = self.transformer(tokens + rearrange(action_tokens, "b t d -> b t 1 1 d"))
        return self.code_head(rearrange(hidden, "b t h w d -> b t (h w) d"))

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The masked-code cross-entropy on a loader batch (frames, or a token shard's `tokens`, with
        `actions` (B, T) int64, the last unused; with a latent action model, frames, whose latent
        actions it infers in place of any the batch has); `loss` is it."""
        codes = self.batch_codes(batch)
        batch_size, frames, codes_per_frame = codes.shape
        if self.latent_actions is not None:
            actions = self.latent_actions.actions_of(batch)
        else:
            actions = self.batch_actions(batch, (batch_size, frames))[:, :-1]
        _, masked = draw_mask(batch_size, frames, codes_per_frame, device=codes.device)
        tokens = self.masked_loss(codes, actions, masked)
        return {"tokens": tokens, "loss": tokens}

    def masked_loss(self, codes: torch.Tensor, actions: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy of codes (B, T, N) at the masked (B, T, N) positions, which the
        model sees as [MASK], given the T - 1 actions (B, T - 1) between the frames."""
        logits = self.logits(codes.masked_fill(masked, self.mask_code), actions)
        return masked_cross_entropy(logits, codes, masked)

    def batch_codes(self, batch: dict) -> torch.Tensor:
        """The batch's codes (B, T, N), its own or its frames encoded; MaskGITDynamicsError naming a
        grid or a window that does not fit."""
        codes = self.tokenizer.codes_of(batch)
        if codes.ndim != 4 or tuple(codes.shape[2:]) != self.grid:
            size = "x".join(map(str, self.config.frame_size))
            raise MaskGITDynamicsError(
                f"codes of shape {tuple(codes.shape)}: this model takes (B, T, {self.grid[0]}, {self.grid[1]}), the grid of {size} frames (frame_size)"
            )
        if not 2 <= codes.shape[1] <= self.config.max_frames:
            raise MaskGITDynamicsError(f"a window of {codes.shape[1]} frames: this model trains on 2 to max_frames {self.config.max_frames}")
        return rearrange(codes, "b t h w -> b t (h w)")

    def batch_actions(self, batch: dict, leading: tuple[int, int]) -> torch.Tensor:
        """The batch's actions (B, T), checked: action t is the latent action taken at frame t."""
        has_actions = torch.as_tensor(batch.get("has_actions", "actions" in batch))
        if "actions" not in batch or not bool(has_actions.all()):
            shards = sorted({str(shard) for shard, held in zip(batch.get("shard", []), has_actions.reshape(-1).tolist()) if not held})
            raise MaskGITDynamicsError(
                f"a batch without actions ({', '.join(shards) or 'no actions member'}): the MaskGIT dynamics model is conditioned on "
                f"an action a frame; give actions (B, T) int64 in [0, num_actions {self.config.num_actions}), e.g. latent actions"
            )
        actions = batch["actions"]
        self.action_embedding.check(actions, leading, "batch actions")
        return actions

    @torch.no_grad()
    def sample_next_codes(self, codes: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """MaskGIT sampling of the frame after codes (B, T, N), T < max_frames, given the T actions
        (B, T) of which the last is taken at frame T - 1 -> its codes (B, N)."""
        batch_size, _, codes_per_frame = codes.shape
        frame = torch.full((batch_size, codes_per_frame), self.mask_code, dtype=codes.dtype, device=codes.device)
        for revealed in self.schedule:
            logits = self.logits(torch.cat([codes, frame[:, None]], dim=1), actions)[:, -1]  # (B, N, K)
            drawn, confidence = draw_codes(logits, self.config.sampling_temperature, generator)
            hidden = frame == self.mask_code
            confidence = confidence.masked_fill(~hidden, math.inf)  # revealed codes stay revealed
            chosen = torch.zeros_like(hidden).scatter(1, confidence.topk(revealed, dim=-1).indices, True)
            frame = torch.where(chosen & hidden, drawn, frame)
        return frame

    @torch.no_grad()
    def start(self, context_frames: torch.Tensor, context_actions: torch.Tensor | None, generator: torch.Generator | None = None) -> None:
        """Encode the K context frames; keep them with the K - 1 actions between them."""
        frames = check_context(context_frames, context_actions, self.max_context, (3, *self.config.frame_size))
        batch_size = context_frames.shape[0]
        if frames == 1:
            actions = self.action_embedding.none(batch_size, self.code_head.weight.device)
        elif context_actions is None or context_actions.numel() == 0:
            raise ContextError(f"a context of {frames} frames needs the {frames - 1} actions between them; got none")
        else:
            self.action_embedding.check(context_actions, (batch_size, frames - 1), "context actions")
            actions = context_actions
        codes = rearrange(self.tokenizer.encode(context_frames), "b t h w -> b t (h w)")
        self.rollout_state = Rollout(codes, actions, generator)

    @torch.no_grad()
    def step(self, action: torch.Tensor | None) -> WorldStep:
        """Take the latent `action` (B,) int64 at the last frame; the next frame (no reward or termination heads)."""
        state = self.rollout_state
        if state is None:
            raise ContextError("step before start: start the rollout from context frames first")
        if action is None:
            raise ContextError("step(None): the MaskGIT dynamics model needs the latent action taken at the last frame")
        self.action_embedding.check(action, (state.codes.shape[0],), "action")
        if state.codes.shape[1] == self.config.max_frames:  # one more frame would pass the window
            state.codes, state.actions = state.codes[:, 1:], state.actions[:, 1:]
        actions = torch.cat([state.actions, action[:, None]], dim=1)
        frame = self.sample_next_codes(state.codes, actions, state.generator)
        state.codes, state.actions = torch.cat([state.codes, frame[:, None]], dim=1), actions
        window = rearrange(state.codes, "b t (h w) -> b t h w", h=self.grid[0])
        return WorldStep(self.tokenizer.decode(window)[:, -1])
