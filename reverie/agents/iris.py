"""The IRIS agent ([14] Micheli et al. 2023, "Transformers are Sample Efficient World Models",
Sec. 2 and Alg. 1): an actor-critic trained only in the imagination of a discrete autoencoder and
an autoregressive transformer over its tokens, acting in the real game.

Each epoch (`train_epoch`, after `steps_per_epoch` real steps; each part from its own epoch on, as
IRIS starts the tokenizer after 5 epochs, the world model after 25 and the actor-critic after 50):

1. the discrete autoencoder (`reverie.tokenizers.discrete_frame_autoencoder`) takes
   `tokenizer_updates` steps on single replay frames: L1 plus the commitment term (Sec. 2.1);
2. the world model (`reverie.pretrain.token_world_model`, the GPT over each frame's tokens and
   its action token) takes `world_model_updates` steps on replay windows of `window` frames,
   encoded by a frozen copy of the autoencoder as it stands after step 1: the cross-entropy of
   every next token, of the reward's sign and of the episode end (Sec. 2.2);
3. the actor-critic (`reverie.agents.actor_critic`) takes `actor_updates` steps in imagination:
   from real windows of `burn_in` frames, its LSTM is burned in on the first ones as the
   autoencoder reconstructs them, the world model starts from the last frame's tokens, and H = 20
   steps are dreamed token by token, each reward and end drawn from the heads (Sec. 2.3); the
   loss is REINFORCE with a value baseline on lambda-returns (gamma 0.995, lambda 0.95) with an
   entropy bonus of 0.001.

The actor reads frames as the autoencoder reconstructs them, in the real game too (IRIS's policy
acts on reconstructions), with its LSTM carried through the episode. The defaults are IRIS's
Atari values (Appendix, Table 2: 200 real steps and 200 updates of each part per epoch, batches
of 256 frames for the tokenizer and of 64 windows for the others, learning rate 1e-4, gradients
clipped to norm 10, weight decay 0.01 on the world model, 4 x 4 tokens of 512 codes, a
10-block transformer of width 256 over 20 frames).

Deviations: replay windows are drawn uniformly and never end at an episode's final frame (a
window is cut one frame short of the replay window it is drawn from, so every action and reward
in it is real); the transformer has no dropout (`reverie.pretrain.token_world_model`); the
autoencoder is smaller than IRIS's and has no perceptual term (`reverie.tokenizers.
discrete_frame_autoencoder`); a dreamed episode that ends is not restarted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor

from reverie.agents.pixel_agent import PixelAgent, PixelAgentConfig
from reverie.agents.registry import AGENTS
from reverie.pretrain.token_world_model import TokenWorldModel, TokenWorldModelConfig
from reverie.tokenizers.discrete_frame_autoencoder import DiscreteFrameAutoencoder, DiscreteFrameAutoencoderConfig


@dataclass
class IrisConfig(PixelAgentConfig):
    first_epoch_steps: int = 200  # IRIS collects 200 steps an epoch from the first
    steps_per_epoch: int = 200
    batch_size: int = 64  # windows, for the world model and the actor-critic
    # the discrete autoencoder
    tokenizer_channels: list[int] = field(default_factory=lambda: [64, 64, 64, 64])  # 64 px -> 4 x 4 tokens
    code_width: int = 512
    codebook_size: int = 512
    tokenizer_batch_size: int = 256  # frames
    tokenizer_start_epoch: int = 5
    tokenizer_updates: int = 200
    # the world model
    width: int = 256
    depth: int = 10
    heads: int = 4
    window: int = 20  # frames a world model batch holds, and its positions
    world_model_start_epoch: int = 25
    world_model_updates: int = 200
    weight_decay: float = 0.01
    learning_rate: float = 1e-4  # of the autoencoder and the world model
    max_grad_norm: float = 10.0
    # the actor-critic
    actor_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    actor_max_grad_norm: float = 10.0
    actor_start_epoch: int = 50
    actor_updates: int = 200
    burn_in: int = 20  # real frames a rollout starts from
    horizon: int = 20
    gamma: float = 0.995
    warmup_updates: int = 1  # IRIS does not warm its learning rates up


class IrisDream:
    """`reverie.agents.actor_critic.ImaginedWorld` over IRIS's world model: it starts from the
    tokens of each window's last frame and dreams token by token."""

    def __init__(self, world_model: TokenWorldModel):
        self.world_model = world_model

    @torch.no_grad()
    def reset(self, frames: Tensor, actions: Tensor) -> Tensor:
        self.world_model.start(frames[:, -1:], None)
        return self.world_model.tokenizer.decode_last(self.world_model.rollout_state.codes.unflatten(-1, self.world_model.grid))

    @torch.no_grad()
    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        step = self.world_model.step(actions)
        return step.frame, step.reward, step.terminated


@AGENTS.register("iris")
class Iris(PixelAgent):
    registry_name = "iris"
    config_class = IrisConfig
    display_name = "IRIS"
    counters = (*PixelAgent.counters, "tokenizer_steps", "world_model_steps")

    def build(self) -> None:
        super().build()
        config = self.config
        self.tokenizer = DiscreteFrameAutoencoder(DiscreteFrameAutoencoderConfig(
            channels=config.tokenizer_channels, latent_channels=config.code_width, codebook_size=config.codebook_size,
        ))  # fmt: skip
        record = {"model": self.tokenizer.registry_name, "config": dataclasses.asdict(self.tokenizer.config), "model_id": "the agent's own"}
        self.world_model = TokenWorldModel(TokenWorldModelConfig(
            tokenizer=record, frame_size=[self.frame_size, self.frame_size], action_space={"kind": "discrete", "n": self.action_count},
            width=config.width, depth=config.depth, heads=config.heads, max_frames=config.window, sample_heads=True,
        ))  # fmt: skip
        self.sync_world_model_tokenizer()
        self.tokenizer_optimizer = torch.optim.Adam(self.tokenizer.parameters(), config.learning_rate)
        trained = [parameter for name, parameter in self.world_model.named_parameters() if not name.startswith("tokenizer.")]
        self.world_model_optimizer = torch.optim.AdamW(trained, config.learning_rate, weight_decay=config.weight_decay)

    def parts(self) -> dict:
        return super().parts() | {"tokenizer": (self.tokenizer, self.tokenizer_optimizer), "world_model": (self.world_model, self.world_model_optimizer)}

    def load_extra_state(self, arrays) -> None:
        super().load_extra_state(arrays)
        self.sync_world_model_tokenizer()

    def sync_world_model_tokenizer(self) -> None:
        """The world model's frozen autoencoder becomes the agent's as it stands."""
        self.world_model.tokenizer.model.load_state_dict(self.tokenizer.state_dict())

    @torch.no_grad()
    def actor_view(self, frames: Tensor) -> Tensor:
        """Frames (B, T, 3, S, S) through the frozen autoencoder: what the actor reads."""
        tokenizer = self.world_model.tokenizer
        return tokenizer.decode(tokenizer.encode(frames))

    def train_epoch(self) -> None:
        config = self.config
        if self.epochs >= config.tokenizer_start_epoch:
            self.tokenizer.train()
            for _ in range(config.tokenizer_updates):
                loss = self.tokenizer.training_losses(self.replay.sample(config.tokenizer_batch_size, 1))["loss"]
                self.update("tokenizer", loss, config.learning_rate, config.max_grad_norm)
            self.sync_world_model_tokenizer()
        if self.epochs >= config.world_model_start_epoch:
            for _ in range(config.world_model_updates):
                window = {name: value[:, :-1] for name, value in self.replay.sample(config.batch_size, config.window + 1).items()}
                loss = self.world_model.training_losses(window)["loss"]
                self.update("world_model", loss, config.learning_rate, config.max_grad_norm)
        if self.epochs >= config.actor_start_epoch:
            self.train_actor_critic(self.dream(), config.actor_updates, config.burn_in)

    def dream(self) -> IrisDream:
        return IrisDream(self.world_model)

    @property
    def context_frames(self) -> int:
        return self.config.burn_in
