"""The autoregressive token world model of IRIS ([14] Micheli et al. 2023, "Transformers are Sample
Efficient World Models", Sec. 2.2 and Appendix A), the next-token scheme of Cosmos's autoregressive
world models ([25] NVIDIA 2025, Sec. 5.2) over a frozen discrete per-frame tokenizer.

A frozen tokenizer (`reverie.pretrain.frozen_tokenizer`) turns frame t into N = h w codes
z_t^1 .. z_t^N. The sequence a GPT reads lays the frames out one after another, each frame's codes
in raster order followed by one token of the action taken at it:

    z_0^1 .. z_0^N  a_0  z_1^1 .. z_1^N  a_1  ...        (F = N + 1 tokens a frame)

with learned token and position embeddings over max_frames * F positions (IRIS: 20 frames) and
causal self-attention over the whole sequence: a token sees itself and every token before it.
IRIS's world model G (Sec. 2.2) is then three heads on the transformer's output:

    transition   p(z_{t+1}^k | z_{<=t}, a_{<=t}, z_{t+1}^{<k})   read at the token before z_{t+1}^k
    reward       p(r_t | z_{<=t}, a_{<=t})                         read at a_t
    termination  p(d_t | z_{<=t}, a_{<=t})                         read at a_t

so the first code of frame t + 1 is predicted at a_t and every other code at the code before it
(within frame 0 too; only z_0^1 has no predictor). The reward head classifies sign(r_t) in
{-1, 0, 1} (three classes, cross-entropy) and the termination head is one logit (binary
cross-entropy); each is trained only where the config turns it on and the batch has `rewards` or
`terminated`. The loss is the sum of the mean cross-entropy over codes (`tokens`) and the heads'
terms (`reward`, `termination`), each logged on its own.

Without actions (`actions: false`, video without actions) there are no action tokens (F = N), the
first code of frame t + 1 is predicted at the last code of frame t, and the heads read that token.

Generation (`reverie.nn.world_model`'s interface): `start` encodes the context frames and runs
them, with the actions between them, through once to fill a key/value cache; `step(a)` feeds a's
token, reads the reward (the argmax class as -1, 0 or 1) and termination (logit > 0) there, or
draws both from the heads' distributions with `sample_heads` (as IRIS's imagination does), then
samples the N codes of the next frame one at a time against the cache, at `sampling_temperature`
(0: argmax) from the `top_k` most likely codes (0: all), drawing only from start's generator. The
frame is the last of the window's codes decoded together, as a tokenizer causal in time decodes
it (a per-frame tokenizer decodes the last frame's codes alone). The positions end at max_frames
frames: a step that would pass them first rebuilds the cache from the last max_frames - 1 frames
(a sliding window; earlier frames are forgotten).

Deviations from IRIS: no dropout (IRIS uses 0.1 on embeddings, attention and residuals), the
termination head is one logit with binary cross-entropy (IRIS: two classes), and actions may be
discrete, multi-discrete or continuous (`reverie.pretrain.action_tokens`). Cosmos's autoregressive
models take tokens of a tokenizer that compresses time, 3D rotary positions and text by
cross-attention; none of those are here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.nn.transformer import KeyValues, TransformerBlock
from reverie.nn.world_model import ContextError, WorldModel, WorldStep, check_context
from reverie.pretrain.action_tokens import ActionEmbedding
from reverie.pretrain.frozen_tokenizer import frozen_tokenizer

REWARD_SIGNS = (-1.0, 0.0, 1.0)  # the reward head's classes


@dataclass
class TokenWorldModelConfig:
    tokenizer: str | dict | None = None  # a discrete per-frame tokenizer's model folder; its record once built
    frame_size: list[int] = field(default_factory=lambda: [64, 64])  # (H, W) of the frames; IRIS: 64 x 64
    actions: bool = True  # false: video without actions, no action tokens, step(None)
    action_space: dict = field(default_factory=lambda: {"kind": "discrete", "n": 18})  # see action_tokens
    width: int = 256  # IRIS: 10 blocks of width 256 with 4 heads
    depth: int = 10
    heads: int = 4
    mlp_ratio: float = 4.0
    max_frames: int = 20  # frames the positions cover; IRIS: 20
    reward_head: bool = True
    termination_head: bool = True
    sampling_temperature: float = 1.0  # 0: argmax
    top_k: int = 0  # sample from the k most likely codes; 0: all
    sample_heads: bool = False  # draw the reward and termination from the heads' distributions (IRIS's imagination) instead of the likeliest


class TokenWorldModelError(ValueError):
    """A config this model cannot be built from, or a batch that does not fit it; names the field or shape."""


def check_config(config: TokenWorldModelConfig) -> None:
    """TokenWorldModelError naming the first field that cannot build a model."""
    if config.tokenizer is None:
        raise TokenWorldModelError("tokenizer: not set; give the model folder of a discrete per-frame tokenizer (model.tokenizer=PATH)")
    if len(config.frame_size) != 2:
        raise TokenWorldModelError(f"frame_size {config.frame_size}: give (height, width)")
    if config.max_frames < 2:
        raise TokenWorldModelError(f"max_frames {config.max_frames}: a world model needs at least 2 frames (one step) in its window")
    if config.sampling_temperature < 0:
        raise TokenWorldModelError(f"sampling_temperature {config.sampling_temperature}: must be 0 (argmax) or more")
    if config.top_k < 0:
        raise TokenWorldModelError(f"top_k {config.top_k}: must be 0 (every code) or more")


@dataclass
class Rollout:
    """What `step` continues from: the window's codes and actions, their cache, the last token's output."""

    codes: torch.Tensor  # (B, T, N) int64, T <= max_frames
    actions: torch.Tensor | None  # (B, T - 1, *action_shape); None without actions
    cache: list[KeyValues]  # one per block, over the tokens of `codes` and `actions`
    last_hidden: torch.Tensor  # (B, width): the output at the last token fed
    generator: torch.Generator | None


def sample_codes(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> torch.Tensor:
    """(B, K) logits -> (B,) codes: the argmax at temperature 0, else drawn from softmax(logits /
    temperature) restricted to the top_k most likely codes (all for top_k 0)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    if top_k:
        kth_largest = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probabilities = F.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


def init_gpt_weights(module: nn.Module) -> None:
    """GPT-2's initialisation, as IRIS uses: normal(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


@MODELS.register("token_world_model")
class TokenWorldModel(nn.Module, WorldModel):
    registry_name = "token_world_model"
    config_class = TokenWorldModelConfig
    checkpoint_blocks = (TransformerBlock,)

    def __init__(self, config: TokenWorldModelConfig):
        super().__init__()
        check_config(config)
        self.tokenizer = frozen_tokenizer(config.tokenizer, discrete=True, why="the token world model predicts codes")
        if config.top_k > self.tokenizer.codebook_size:
            raise TokenWorldModelError(f"top_k {config.top_k}: more than the tokenizer's {self.tokenizer.codebook_size} codes")
        config.tokenizer = self.tokenizer.record  # the model folder then holds everything it needs
        self.config = config
        self.max_context = config.max_frames
        self.grid = self.tokenizer.grid(*config.frame_size)
        self.codes_per_frame = self.grid[0] * self.grid[1]
        self.tokens_per_frame = self.codes_per_frame + int(config.actions)
        self.code_embedding = nn.Embedding(self.tokenizer.codebook_size, config.width)
        self.action_embedding = ActionEmbedding(config.action_space, config.width) if config.actions else None
        self.position_embedding = nn.Embedding(config.max_frames * self.tokens_per_frame, config.width)
        self.blocks = nn.ModuleList(TransformerBlock(config.width, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.width)
        self.code_head = nn.Linear(config.width, self.tokenizer.codebook_size)
        self.reward_head = nn.Linear(config.width, len(REWARD_SIGNS)) if config.reward_head else None
        self.termination_head = nn.Linear(config.width, 1) if config.termination_head else None
        self.predicts_rewards = config.reward_head
        for name, module in self.named_children():
            if name != "tokenizer":
                module.apply(init_gpt_weights)
        self.rollout_state: Rollout | None = None

    def embed(self, codes: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
        """Codes (B, T, N) and the actions of the first T' frames, (B, T', *action_shape) with T' in
        {T - 1, T} (None without actions) -> token embeddings (B, L, width) in the module
        docstring's order, at positions 0 .. L - 1."""
        code_tokens = self.code_embedding(codes)  # (B, T, N, width)
        if actions is None:
            tokens = rearrange(code_tokens, "b t n d -> b (t n) d")
        else:
            action_tokens = rearrange(self.action_embedding(actions), "b t d -> b t 1 d")
            paired = torch.cat([code_tokens[:, : action_tokens.shape[1]], action_tokens], dim=2)
            unpaired = code_tokens[:, action_tokens.shape[1] :]
            tokens = torch.cat([rearrange(paired, "b t f d -> b (t f) d"), rearrange(unpaired, "b t n d -> b (t n) d")], dim=1)
        return tokens + self.position_embedding.weight[: tokens.shape[1]]

    def transform(self, tokens: torch.Tensor, past: list[KeyValues] | None = None) -> tuple[torch.Tensor, list[KeyValues]]:
        """Token embeddings (B, L, width) after the P cached ones of `past` -> the normed outputs
        (B, L, width) and the cache of all P + L tokens; each token sees those before it and itself."""
        cached = 0 if past is None else past[0][0].shape[2]
        length = tokens.shape[1]
        mask = torch.ones(length, cached + length, dtype=torch.bool, device=tokens.device).tril(cached)
        cache = []
        for index, block in enumerate(self.blocks):
            tokens, present = block(tokens, mask=mask, past=None if past is None else past[index])
            cache.append(present)
        return self.norm(tokens), cache

    def code_logits(self, hidden: torch.Tensor, frames: int) -> torch.Tensor:
        """Outputs (B, L, width) of a sequence of `frames` frames -> (B, frames * N - 1, K): the
        logits of every code but the first, each read at the token just before it."""
        frame_starts = torch.arange(frames, device=hidden.device) * self.tokens_per_frame
        code_positions = frame_starts[:, None] + torch.arange(self.codes_per_frame, device=hidden.device)  # (T, N)
        return self.code_head(hidden[:, code_positions.flatten()[1:] - 1])

    def transition_outputs(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, width) -> (B, T, width): the outputs at each frame's last token (a_t, or frame t's
        last code without actions), where the reward and termination heads read."""
        return hidden[:, self.tokens_per_frame - 1 :: self.tokens_per_frame]

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss terms on a loader batch (frames, or a token shard's `tokens`, with `actions`,
        `rewards`, `terminated`); `loss` is their sum."""
        codes = self.batch_codes(batch)
        frames = codes.shape[1]
        hidden, _ = self.transform(self.embed(codes, self.batch_actions(batch, codes.shape[:2])))
        logits = self.code_logits(hidden, frames)
        terms = {"tokens": F.cross_entropy(rearrange(logits, "b l k -> (b l) k"), codes.flatten(1)[:, 1:].flatten())}
        transitions = self.transition_outputs(hidden)
        rewards, terminated = batch.get("rewards"), batch.get("terminated")
        if self.reward_head is not None and torch.is_tensor(rewards):
            signs = torch.sign(rewards).long() + 1  # -1, 0, 1 -> classes 0, 1, 2
            terms["reward"] = F.cross_entropy(rearrange(self.reward_head(transitions), "b t k -> (b t) k"), signs.flatten())
        if self.termination_head is not None and torch.is_tensor(terminated):
            terms["termination"] = F.binary_cross_entropy_with_logits(self.termination_head(transitions).squeeze(-1), terminated.float())
        terms["loss"] = sum(terms.values())
        return terms

    def batch_codes(self, batch: dict) -> torch.Tensor:
        """The batch's codes (B, T, N), its own or its frames encoded; TokenWorldModelError naming a
        grid or a window that does not fit."""
        codes = self.tokenizer.codes_of(batch)
        if codes.ndim != 4 or tuple(codes.shape[2:]) != self.grid:
            size = "x".join(map(str, self.config.frame_size))
            raise TokenWorldModelError(
                f"codes of shape {tuple(codes.shape)}: this model takes (B, T, {self.grid[0]}, {self.grid[1]}), the grid of {size} frames (frame_size)"
            )
        if codes.shape[1] > self.config.max_frames:
            raise TokenWorldModelError(f"a window of {codes.shape[1]} frames: this model's positions cover max_frames {self.config.max_frames}")
        return rearrange(codes, "b t h w -> b t (h w)")

    def batch_actions(self, batch: dict, leading: tuple[int, int]) -> torch.Tensor | None:
        """The batch's actions (B, T, *action_shape), checked; None for a model without actions."""
        if self.action_embedding is None:
            return None
        has_actions = torch.as_tensor(batch.get("has_actions", "actions" in batch))
        if "actions" not in batch or not bool(has_actions.all()):
            shards = sorted({str(shard) for shard, held in zip(batch.get("shard", []), has_actions.reshape(-1).tolist()) if not held})
            raise TokenWorldModelError(
                f"a batch without actions ({', '.join(shards) or 'no actions member'}): this model takes an action token a frame; "
                "train on recorded episodes, or set model.actions=false for video without actions"
            )
        actions = batch["actions"]
        self.action_embedding.check(actions, tuple(leading), "batch actions")
        return actions

    @torch.no_grad()
    def start(self, context_frames: torch.Tensor, context_actions: torch.Tensor | None, generator: torch.Generator | None = None) -> None:
        """Encode the K context frames and run them with the K - 1 actions between them through once."""
        frames = check_context(context_frames, context_actions, self.max_context, (3, *self.config.frame_size))
        actions = self.context_actions(context_actions, context_frames.shape[0], frames)
        codes = rearrange(self.tokenizer.encode(context_frames), "b t h w -> b t (h w)")
        self.fill_cache(codes, actions, generator)

    def context_actions(self, context_actions: torch.Tensor | None, batch: int, frames: int) -> torch.Tensor | None:
        """The K - 1 context actions, checked ((B, 0, ...) for one frame); None for a model without actions."""
        given = context_actions is not None and context_actions.numel() > 0
        if self.action_embedding is None:
            if given:
                raise ContextError("context actions given to a model trained without actions (actions: false): give None")
            return None
        if frames == 1:
            return self.action_embedding.none(batch, self.code_head.weight.device)
        if not given:
            raise ContextError(f"a context of {frames} frames needs the {frames - 1} actions between them; got none")
        self.action_embedding.check(context_actions, (batch, frames - 1), "context actions")
        return context_actions

    def fill_cache(self, codes: torch.Tensor, actions: torch.Tensor | None, generator: torch.Generator | None) -> None:
        """Run codes (B, T, N) and the T - 1 actions between them through at positions from 0: the rollout to step from."""
        hidden, cache = self.transform(self.embed(codes, actions))
        self.rollout_state = Rollout(codes, actions, cache, hidden[:, -1], generator)

    def feed(self, state: Rollout, token: torch.Tensor) -> None:
        """Run one token embedding (B, width) at the next position against the cache."""
        position = state.cache[0][0].shape[2]
        embedded = token[:, None] + self.position_embedding.weight[position]
        hidden, state.cache = self.transform(embedded, state.cache)
        state.last_hidden = hidden[:, -1]

    @torch.no_grad()
    def step(self, action: torch.Tensor | None) -> WorldStep:
        """Take `action` (B, *action_shape) at the last frame; the next frame and the heads' reading."""
        state = self.rollout_state
        if state is None:
            raise ContextError("step before start: start the rollout from context frames first")
        batch = state.codes.shape[0]
        if self.action_embedding is None and action is not None:
            raise ContextError("an action given to a model trained without actions (actions: false): step(None)")
        if self.action_embedding is not None:
            if action is None:
                raise ContextError("step(None) on a model trained with actions: give the action taken at the last frame")
            self.action_embedding.check(action, (batch,), "action")
        if state.codes.shape[1] == self.config.max_frames:  # one more frame would pass the positions
            self.fill_cache(state.codes[:, 1:], None if state.actions is None else state.actions[:, 1:], state.generator)
            state = self.rollout_state
        if action is not None:
            self.feed(state, self.action_embedding(action))
        reward, terminated = self.read_heads(state.last_hidden, state.generator)
        sampled = []
        for _ in range(self.codes_per_frame):
            code = sample_codes(self.code_head(state.last_hidden), self.config.sampling_temperature, self.config.top_k, state.generator)
            self.feed(state, self.code_embedding(code))
            sampled.append(code)
        state.codes = torch.cat([state.codes, torch.stack(sampled, dim=1)[:, None]], dim=1)
        if action is not None:
            state.actions = torch.cat([state.actions, action[:, None]], dim=1)
        window = rearrange(state.codes, "b t (h w) -> b t h w", h=self.grid[0])
        return WorldStep(self.tokenizer.decode_last(window), reward, terminated)

    def read_heads(self, hidden: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(B, width) at a transition token -> reward (B,) in {-1, 0, 1} and terminated (B,) bool, or
        None without a head: the likeliest, or drawn from `generator` with `sample_heads`."""
        reward = terminated = None
        if self.reward_head is not None:
            probabilities = self.reward_head(hidden).softmax(dim=-1)
            classes = torch.multinomial(probabilities, 1, generator=generator)[:, 0] if self.config.sample_heads else probabilities.argmax(dim=-1)
            reward = torch.tensor(REWARD_SIGNS, device=hidden.device)[classes]
        if self.termination_head is not None:
            logit = self.termination_head(hidden).squeeze(-1)
            terminated = torch.bernoulli(logit.sigmoid(), generator=generator).bool() if self.config.sample_heads else logit > 0
        return reward, terminated

