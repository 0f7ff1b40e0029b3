"""The DIAMOND agent ([16] Alonso et al. 2024, "Diffusion for World Modeling: Visual Details Matter
in Atari", Sec. 3 and Alg. 1 of its appendix): an actor-critic trained only in the dreams of a
pixel diffusion world model, acting in the real game.

Each epoch (`train_epoch`, after `steps_per_epoch` real steps):

1. the diffusion world model (`reverie.pretrain.pixel_diffusion`, the EDM denoiser over DIAMOND's
   U-Net) takes `world_model_updates` steps on replay windows of K + 1 frames (Sec. 3.2, eq. 6);
2. the reward and termination model (`reverie.pretrain.reward_model`) takes `reward_updates` steps
   on replay windows: the cross-entropy of sign(r_t) and of d_t;
3. the actor-critic (`reverie.agents.actor_critic`) takes `actor_updates` steps in imagination:
   from real windows of K frames it is burned in on the first K - 1, then dreams H = 15 steps,
   each next frame sampled by the diffusion model in `denoising_steps` Euler steps and each
   reward and end sampled from the reward model's distributions, as DIAMOND's WorldModelEnv does;
   REINFORCE with a value baseline on lambda-returns (gamma 0.985, lambda 0.95) with an entropy
   bonus of 0.001.

The first epoch comes after `first_epoch_steps` uniform random steps and trains longer
(`first_*`). The defaults are DIAMOND's Atari values (Table 3 of its appendix: 100 real steps and
400 updates of each part per epoch, batch 32, learning rate 1e-4 with 100 warm-up updates, weight
decay 1e-2 on the world and reward models, gradient norms clipped to 1 for the world model and 100
for the others, 3 denoising steps, K = 4).

Deviations: replay windows are drawn uniformly (DIAMOND favours the newest data); the reward model
reads one transition (DIAMOND's is a CNN-LSTM burned in on the context, `reverie.pretrain.
reward_model`); a dreamed episode that ends is not restarted within the horizon
(`reverie.agents.actor_critic`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from reverie.agents.pixel_agent import PixelAgent, PixelAgentConfig
from reverie.agents.registry import AGENTS
from reverie.pretrain.pixel_diffusion import PixelDiffusionConfig, PixelDiffusionWorldModel
from reverie.pretrain.reward_model import RewardModel, RewardModelConfig
from reverie.pretrain.token_world_model import REWARD_SIGNS


@dataclass
class DiamondConfig(PixelAgentConfig):
    # the diffusion world model (DIAMOND's Atari network)
    context_frames: int = 4  # K
    channels: list[int] = field(default_factory=lambda: [64, 64, 64, 64])
    res_blocks: int = 2
    cond_channels: int = 256
    denoising_steps: int = 3
    world_model_learning_rate: float = 1e-4
    world_model_max_grad_norm: float = 1.0
    # the reward and termination model
    reward_channels: int = 32
    reward_width: int = 128
    reward_learning_rate: float = 1e-4
    reward_max_grad_norm: float = 100.0
    weight_decay: float = 1e-2  # of the world and reward models
    # updates of each part: in the first epoch, then in each later one
    first_world_model_updates: int = 10_000
    world_model_updates: int = 400
    first_reward_updates: int = 10_000
    reward_updates: int = 400
    first_actor_updates: int = 5_000
    actor_updates: int = 400


class DiamondDream:
    """`reverie.agents.actor_critic.ImaginedWorld` over DIAMOND's two models."""

    def __init__(self, world_model: PixelDiffusionWorldModel, reward_model: RewardModel):
        self.world_model, self.reward_model = world_model, reward_model
        self.signs = torch.tensor(REWARD_SIGNS)

    def reset(self, frames: Tensor, actions: Tensor) -> Tensor:
        self.world_model.start(frames, actions)
        self.frame = frames[:, -1]
        return self.frame

    @torch.no_grad()
    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        next_frame = self.world_model.step(actions).frame
        reward_logits, end_logit = self.reward_model(self.frame, actions, next_frame)
        rewards = self.signs[torch.multinomial(reward_logits.softmax(-1), 1)[:, 0]]
        ends = torch.bernoulli(end_logit.sigmoid()).bool()
        self.frame = next_frame
        return next_frame, rewards, ends


@AGENTS.register("diamond")
class Diamond(PixelAgent):
    registry_name = "diamond"
    config_class = DiamondConfig
    display_name = "DIAMOND"
    counters = (*PixelAgent.counters, "world_model_steps", "reward_model_steps")

    def build(self) -> None:
        super().build()
        config = self.config
        self.world_model = PixelDiffusionWorldModel(PixelDiffusionConfig(
            frame_size=[self.frame_size, self.frame_size], context_frames=config.context_frames,
            action_space={"kind": "discrete", "n": self.action_count}, channels=config.channels, res_blocks=config.res_blocks,
            attention=[False] * len(config.channels), cond_channels=config.cond_channels, edm={"denoising_steps": config.denoising_steps},
        ))  # fmt: skip
        self.reward_model = RewardModel(RewardModelConfig(
            action_space={"kind": "discrete", "n": self.action_count}, channels=config.reward_channels, width=config.reward_width,
        ))  # fmt: skip
        self.world_model_optimizer = torch.optim.AdamW(self.world_model.parameters(), config.world_model_learning_rate, eps=1e-8, weight_decay=config.weight_decay)
        self.reward_optimizer = torch.optim.AdamW(self.reward_model.parameters(), config.reward_learning_rate, eps=1e-8, weight_decay=config.weight_decay)

    def parts(self) -> dict:
        return super().parts() | {
            "world_model": (self.world_model, self.world_model_optimizer),
            "reward_model": (self.reward_model, self.reward_optimizer),
        }

    def train_epoch(self) -> None:
        config, window = self.config, self.config.context_frames + 1
        for _ in range(self.updates(config.first_world_model_updates, config.world_model_updates)):
            batch = self.replay.sample(config.batch_size, window)
            loss = self.world_model.training_losses(batch)["loss"]
            self.update("world_model", loss, config.world_model_learning_rate, config.world_model_max_grad_norm)
        for _ in range(self.updates(config.first_reward_updates, config.reward_updates)):
            batch = self.replay.sample(config.batch_size, window)
            loss = self.reward_model.training_losses(batch)["loss"]
            self.update("reward_model", loss, config.reward_learning_rate, config.reward_max_grad_norm)
        self.train_actor_critic(self.dream(), self.updates(config.first_actor_updates, config.actor_updates), config.context_frames)

    def dream(self) -> DiamondDream:
        return DiamondDream(self.world_model, self.reward_model)

    @property
    def context_frames(self) -> int:
        return self.config.context_frames
