"""The latent action model (LAM) of Genie ([18] Bruce et al. 2024, Sec. 2.1, "Latent Action Model"):
a VQ-VAE over transitions that learns, from video without actions, a small discrete set of actions
that explain how one frame becomes the next.

The encoder reads the frames x_1 .. x_T and gives one continuous latent action per transition; a
VQ of |A| codes (`num_actions`, Genie: 8) quantizes it; the decoder reads the past frames and the
quantized actions and reconstructs each next frame:

    a~_t = E(x_1, .., x_{t+1})                  (B, T - 1, D),  t = 1 .. T - 1
    a_t  = VQ(a~_t) in [|A|]                     the nearest of |A| codes, straight-through
    x^_{t+1} = D(x_1, .., x_t, a_1, .., a_t)
    L = |x^_{t+1} - x_{t+1}|^2 + beta |a~_t - sg[e_{a_t}]|^2     (means over values; VQ-VAE eq. 3)

As the decoder never sees x_{t+1}, everything it needs to rebuild x_{t+1} beyond the past must pass
through log2 |A| bits of a_t, which therefore come to name the most meaningful change between
frames. Both E and D are ST-transformers (`reverie.tokenizers.st_transformer`) causal in time, so a
whole clip trains in one pass: E's output at frame t + 1 depends on x_{1..t+1} only, and D's at
frame t on x_{1..t} and a_{1..t} only.

Encoder: each frame is cut into p x p patches (`patch_size`; Genie's LAM: 16), each patch linearly
embedded, and one learned action token added to every frame's patches (as Jafar's LAM does), then
the ST-transformer; the action token's output at frame t + 1, projected to the code width D
(`latent_dim`), is a~_t. Attention lets it read the few patches where the frames differ, which an
average over all patches would dilute. Decoder: the frames x_1 .. x_{T-1}
embedded the same way, each of frame t's patches plus a linear projection of a_t, an
ST-transformer, and a linear map of each token to its p x p x 3 patch through a sigmoid (frames in
[0, 1], as in the ST-ViViT tokenizer); its output at frame t is x^_{t+1}. The quantizer is
`reverie.nn.quantizers`' "vq" (EMA codebook, commitment term), Euclidean by default;
`cosine_similarity: true` l2-normalises codes and latents first, as Jafar's LAM does. On clips of a
square that each action moves 4 px one way (tests/pretrain/test_latent_actions_recover_actions.py)
the Euclidean codes came to name the actions within about 1250 steps and the cosine ones not.

Input. Genie trains the LAM on pixels, which its ablations found better for controllability than
the video tokenizer's tokens ("pixel-input" vs "token-input" LAM); pixels are the default here. With `input:
tokens` a frozen discrete per-frame tokenizer (`reverie.pretrain.frozen_tokenizer`) replaces the
patches: both transformers read an embedding of each code, and the decoder predicts the codes of
x_{t+1} (cross-entropy over the tokenizer's codebook) in place of its pixels, so a token shard
trains it as well as frames do.

Dead codes. Codes that no transition took for `reset_after_steps` training batches in a row are
restarted, each at the encoder latent of a transition drawn from the current batch, as Jafar (the
open JAX reproduction of Genie) resets unused latent actions; the paper says nothing about resets.
Counts are kept per training batch (`training_losses` call), so under gradient accumulation a
step is a micro-batch.

Sizes (the paper's Appendix, latent action model): encoder and decoder each 20 ST blocks of width
1024 with 16 heads, 8 codes of dimension 32, patch size 16; `configs/genie/lam_genie.yaml`. Not from
the paper: the MLP ratio (4), the position encoding (3D RoPE), how E's outputs become one latent
per transition (an action token per frame) and how D takes the action (added to every patch
embedding of its frame), the dead-code rule and its 50 steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.nn.model_folder import MODELS
from reverie.nn.quantizers import Quantized, build_quantizer
from reverie.pretrain.frozen_tokenizer import FrozenTokenizer, frozen_tokenizer
from reverie.tokenizers.clip_shape import clip_size
from reverie.tokenizers.st_transformer import STBlock, STTransformer

INPUTS = ("pixels", "tokens")


@dataclass
class LatentActionModelConfig:
    input: str = "pixels"  # "pixels" (Genie's choice) or "tokens" of a frozen tokenizer
    tokenizer: str | dict | None = None  # input: tokens: a discrete per-frame tokenizer's model folder; its record once built
    image_channels: int = 3
    patch_size: int = 16  # p, pixels; Genie's LAM: 16 (unused with token input: a token is a patch)
    encoder_width: int = 1024  # Genie's LAM encoder: 20 layers of 1024, 16 heads
    encoder_depth: int = 20
    encoder_heads: int = 16
    decoder_width: int = 1024  # Genie's LAM decoder: 20 layers of 1024, 16 heads
    decoder_depth: int = 20
    decoder_heads: int = 16
    mlp_ratio: float = 4.0  # not in the paper
    latent_dim: int = 32  # D, the width of a latent action; Genie's 32
    num_actions: int = 8  # |A|, the codebook size; Genie's 8
    commitment_weight: float = 0.25  # beta
    cosine_similarity: bool = False  # True: codes and latents l2-normalised before the nearest is taken (as Jafar's LAM does)
    codebook_decay: float = 0.99  # gamma of the VQ's moving averages
    reset_after_steps: int = 50  # restart codes no transition took for this many training batches; 0: never


class LatentActionModelError(ValueError):
    """A config this model cannot be built from, or a batch that does not fit it; names the field or shape."""


def check_config(config: LatentActionModelConfig) -> None:
    """LatentActionModelError naming the first field that cannot build a model."""
    if config.input not in INPUTS:
        raise LatentActionModelError(f"input {config.input!r}: must be one of {', '.join(INPUTS)}")
    if config.input == "tokens" and config.tokenizer is None:
        raise LatentActionModelError("tokenizer: input tokens needs the model folder of a discrete per-frame tokenizer (model.tokenizer=PATH)")
    if config.input == "pixels" and config.tokenizer is not None:
        raise LatentActionModelError("tokenizer: set, but input is pixels; set input: tokens to read a tokenizer's codes, or drop tokenizer")
    for name in ("image_channels", "patch_size", "latent_dim", "encoder_depth", "decoder_depth"):
        if getattr(config, name) < 1:
            raise LatentActionModelError(f"{name} {getattr(config, name)}: must be >= 1")
    for part in ("encoder", "decoder"):
        width, heads = getattr(config, f"{part}_width"), getattr(config, f"{part}_heads")
        if heads < 1 or width % heads or width // heads < 6:
            raise LatentActionModelError(f"{part}_width {width}, {part}_heads {heads}: the width must split into heads of at least 6 channels (3D RoPE)")
    if config.num_actions < 2:
        raise LatentActionModelError(f"num_actions {config.num_actions}: a codebook of latent actions needs at least 2 codes")
    if config.reset_after_steps < 0:
        raise LatentActionModelError(f"reset_after_steps {config.reset_after_steps}: must be >= 0 (0: never restart codes)")
    if config.commitment_weight < 0:
        raise LatentActionModelError(f"commitment_weight {config.commitment_weight}: must be >= 0")
    if not 0 <= config.codebook_decay < 1:
        raise LatentActionModelError(f"codebook_decay {config.codebook_decay}: must be in [0, 1)")


@MODELS.register("latent_action_model")
class LatentActionModel(nn.Module):
    registry_name = "latent_action_model"
    config_class = LatentActionModelConfig
    checkpoint_blocks = (STBlock,)  # what FSDP wraps and activation checkpointing recomputes

    def __init__(self, config: LatentActionModelConfig):
        super().__init__()
        check_config(config)
        self.config = config
        self.tokenizer = self.token_input(config) if config.input == "tokens" else None
        self.encoder_embedding = self.input_embedding(config.encoder_width)
        self.encoder = STTransformer(config.encoder_width, config.encoder_depth, config.encoder_heads, config.mlp_ratio)
        self.action_query = nn.Parameter(torch.randn(config.encoder_width) * 0.02)  # one more token a frame, read out as its latent action
        self.to_latent = nn.Linear(config.encoder_width, config.latent_dim)
        self.quantizer = build_quantizer(
            "vq", config.latent_dim, codebook_size=config.num_actions, commitment_weight=config.commitment_weight, decay=config.codebook_decay,
            cosine_similarity=config.cosine_similarity,
        )
        # a restarted code starts as one transition's worth of the codebook's moving averages; the
        # library's default (its EMA dead-code threshold, 0 here) would zero the code at the next update
        self.quantizer.vq._codebook.reset_cluster_size = 1.0
        self.decoder_embedding = self.input_embedding(config.decoder_width)
        self.action_embedding = nn.Linear(config.latent_dim, config.decoder_width)
        self.decoder = STTransformer(config.decoder_width, config.decoder_depth, config.decoder_heads, config.mlp_ratio)
        outputs = self.tokenizer.codebook_size if self.tokenizer is not None else config.patch_size**2 * config.image_channels
        self.to_output = nn.Linear(config.decoder_width, outputs)
        self.register_buffer("batches_unused", torch.zeros(config.num_actions, dtype=torch.int64))  # per code, since it was last taken

    @staticmethod
    def token_input(config: LatentActionModelConfig) -> FrozenTokenizer:
        tokenizer = frozen_tokenizer(config.tokenizer, discrete=True, why="the latent action model's token input reads codes")
        config.tokenizer = tokenizer.record  # the model folder then holds everything it needs
        return tokenizer

    def input_embedding(self, width: int) -> nn.Module:
        """A frame's patches (p p c values each) or codes -> tokens of `width`."""
        if self.tokenizer is not None:
            return nn.Embedding(self.tokenizer.codebook_size, width)
        return nn.Linear(self.config.patch_size**2 * self.config.image_channels, width)

    def frame_inputs(self, batch: dict) -> torch.Tensor:
        """What the transformers embed: patches (B, T, h, w, p p c) of the batch's frames, or the
        tokenizer's codes (B, T, h, w) of its frames or its own `tokens`; T >= 2 transitions' frames."""
        if self.tokenizer is not None:
            inputs = self.tokenizer.codes_of(batch)
        else:
            if "frames" not in batch:
                raise LatentActionModelError(f"a batch of {', '.join(sorted(batch))}: the pixel-input latent action model needs frames (B, T, C, H, W)")
            inputs = self.patches(batch["frames"])
        if inputs.shape[1] < 2:
            raise LatentActionModelError(f"a window of {inputs.shape[1]} frame: latent actions need at least 2 frames (one transition)")
        return inputs

    def patches(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W) in [0, 1] -> patches (B, T, H/p, W/p, p p C)."""
        clip_size(frames, self.config.image_channels, self.config.patch_size, "patch size")
        return rearrange(frames, "b t c (h p1) (w p2) -> b t h w (p1 p2 c)", p1=self.config.patch_size, p2=self.config.patch_size)

    def unpatch(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches (B, T, h, w, p p C) -> frames (B, T, C, h p, w p)."""
        return rearrange(patches, "b t h w (p1 p2 c) -> b t c (h p1) (w p2)", p1=self.config.patch_size, p2=self.config.patch_size)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs of T frames (`frame_inputs`) -> the continuous latent actions a~ (B, T - 1, D);
        a~_t, of the transition from frame t to t + 1, depends on frames 1 .. t + 1 only."""
        embedded = self.encoder_embedding(inputs)  # (B, T, h, w, encoder_width)
        queries = self.action_query.expand(embedded.shape[0], embedded.shape[1], -1)  # (B, T, encoder_width)
        _, read = self.encoder.with_frame_tokens(embedded, queries)
        return self.to_latent(read[:, 1:])

    def quantize(self, latent_actions: torch.Tensor) -> Quantized:
        """a~ (B, T - 1, D) -> the chosen codes' vectors (B, D, T - 1), the codes (B, T - 1), the VQ's terms."""
        return self.quantizer(rearrange(latent_actions, "b t d -> b d t"))

    def decode(self, past_inputs: torch.Tensor, action_vectors: torch.Tensor) -> torch.Tensor:
        """Inputs of frames 1 .. T - 1 and the quantized actions (B, D, T - 1) -> the decoder's output
        at each, the prediction of the frame after it: pixels (B, T - 1, C, H, W) in [0, 1], or the
        logits of its codes (B, T - 1, h, w, K) with token input. Output t depends on frames 1 .. t
        and actions 1 .. t only, and never on frame t + 1."""
        actions = rearrange(self.action_embedding(rearrange(action_vectors, "b d t -> b t d")), "b t d -> b t 1 1 d")
        tokens = self.decoder(self.decoder_embedding(past_inputs) + actions)  # (B, T - 1, h, w, decoder_width)
        outputs = self.to_output(tokens)
        return outputs if self.tokenizer is not None else self.unpatch(torch.sigmoid(outputs))

    def decode_actions(self, past_frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Frames (B, T', C, H, W) and codes (B, T') int64 in [0, num_actions) -> the predicted next frames
        (B, T', C, H, W) in [0, 1], or next codes' logits with token input (the frames encoded by its tokenizer)."""
        past_inputs = self.tokenizer.encode(past_frames) if self.tokenizer is not None else self.patches(past_frames)
        if tuple(actions.shape) != tuple(past_inputs.shape[:2]):
            raise LatentActionModelError(f"actions of shape {tuple(actions.shape)}: one code per past frame, {tuple(past_inputs.shape[:2])}")
        vectors = self.quantizer.indices_to_latents(actions)  # (B, D, T')
        return self.decode(past_inputs, vectors)

    @torch.no_grad()
    def infer_actions(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W) in [0, 1] -> the latent action of each transition, (B, T - 1) int64 in
        [0, num_actions). The codebook is left as it is, in whichever mode the model is."""
        quantizer_training = self.quantizer.training
        self.quantizer.eval()  # in training mode the VQ would move its codebook's averages
        try:
            return self.quantize(self.encode(self.frame_inputs({"frames": frames}))).indices
        finally:
            self.quantizer.train(quantizer_training)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (B, T, C, H, W) in [0, 1] -> (the predictions of frames 2 .. T from the past and
        the inferred actions, as `decode` gives them; those actions, (B, T - 1) int64)."""
        inputs = self.frame_inputs({"frames": frames})
        quantized = self.quantize(self.encode(inputs))
        return self.decode(inputs[:, :-1], quantized.latents), quantized.indices

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss terms on a loader batch (`frames` (B, T, C, H, W) in [0, 1], or a token shard's
        `tokens` with token input); actions in the batch, if any, are not read. `loss` is what is
        minimised; `actions_used` (the share of codes this batch took) is logged beside it."""
        inputs = self.frame_inputs(batch)
        latent_actions = self.encode(inputs)
        quantized = self.quantize(latent_actions)
        predictions = self.decode(inputs[:, :-1], quantized.latents)
        if self.tokenizer is not None:
            terms = {"cross_entropy": F.cross_entropy(rearrange(predictions, "b t h w k -> (b t h w) k"), inputs[:, 1:].flatten())}
        else:
            terms = {"mse": F.mse_loss(predictions, batch["frames"][:, 1:])}
        terms |= quantized.losses
        terms["loss"] = sum(terms.values())
        if self.training:
            self.restart_unused_codes(latent_actions.detach(), quantized.indices)
        terms["actions_used"] = (torch.bincount(quantized.indices.flatten(), minlength=self.config.num_actions) > 0).float().mean()
        return terms

    @torch.no_grad()
    def restart_unused_codes(self, latent_actions: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Count one more batch for each code this batch's transitions (a~ (B, T - 1, D), codes
        (B, T - 1)) did not take, and restart those unused for `reset_after_steps` batches, each at
        the latent of a transition drawn from the batch. -> the codes restarted, (R,) int64."""
        taken = torch.bincount(indices.flatten(), minlength=self.config.num_actions) > 0
        self.batches_unused = torch.where(taken, 0, self.batches_unused + 1)
        if self.config.reset_after_steps == 0:
            return self.batches_unused.new_zeros(0)
        samples = rearrange(latent_actions, "b t d -> (b t) d")
        # at most one restart per transition, so no two restarted codes share a latent; the rest wait a batch
        dead = (self.batches_unused >= self.config.reset_after_steps).nonzero().flatten()[: samples.shape[0]]
        if dead.numel():
            vq = self.quantizer.vq
            mask = torch.zeros_like(taken).index_fill_(0, dead, True)
            vq._codebook.replace(rearrange(vq.project_in(samples), "n d -> 1 n d"), batch_mask=rearrange(mask, "k -> 1 k"))
            self.batches_unused[dead] = 0
        return dead
