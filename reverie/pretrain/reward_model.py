"""A reward and termination model trained beside a world model that has no heads of its own, as
DIAMOND ([16] Alonso et al. 2024, Sec. 3.3 and its appendix, "reward/termination model") trains
one apart from its diffusion model, so that a learned simulator (`reverie.envs.learned`) can give
an agent rewards and episode ends.

It reads one transition, the frame x_t, the action a_t and the frame x_{t+1} it led to:

    h     = Linear(CNN([x_t, x_{t+1}]))                  the two frames stacked in channels (`reverie.nn.frame_pair_cnn`)
    r_hat = MLP_r([h, A(a_t)]),   d_hat = MLP_d([h, A(a_t)])
    loss  = CE(r_hat, sign(r_t)) + BCE(d_hat, terminated_t)      (reward: sign)
          or (r_hat - r_t)^2 + BCE(d_hat, terminated_t)          (reward: value)

`reward: sign` classifies sign(r_t) in {-1, 0, 1}, DIAMOND's and IRIS's choice for clipped Atari
rewards; `reward: value` regresses the reward itself, for dense rewards (a robot's distance to its
goal). A(a) is `reverie.pretrain.action_tokens.ActionEmbedding` of the world model's action space.
DIAMOND's model is a CNN and an LSTM over the episode so far, with burn-in; this one sees the one
transition (a deviation: rewards that depend on more than the last two frames are out of its reach).

Batches are recorded episode windows (`frames`, `actions`, `rewards`, `terminated`; `reverie
record`), the recorded time convention of `reverie.nn.world_model`: action t leads from frame t to
frame t + 1 with reward t and termination t; a window of T frames trains T - 1 transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from reverie.nn.frame_pair_cnn import GRID, frame_pair_cnn
from reverie.nn.model_folder import MODELS
from reverie.pretrain.action_tokens import ActionEmbedding
from reverie.pretrain.token_world_model import REWARD_SIGNS

REWARD_KINDS = ("sign", "value")


class RewardModelError(ValueError):
    """A config or batch the reward model cannot use; names the field."""


@dataclass
class RewardModelConfig:
    action_space: dict = field(default_factory=lambda: {"kind": "discrete", "n": 2})  # the world model's
    reward: str = "sign"  # sign: classify sign(r) (DIAMOND, IRIS); value: regress r
    channels: int = 32
    width: int = 128


@MODELS.register("reward_model")
class RewardModel(nn.Module):
    registry_name = "reward_model"
    config_class = RewardModelConfig

    def __init__(self, config: RewardModelConfig):
        super().__init__()
        if config.reward not in REWARD_KINDS:
            raise RewardModelError(f"reward {config.reward!r}: must be one of {', '.join(REWARD_KINDS)}")
        self.config = config
        channels, width = config.channels, config.width
        self.frames = nn.Sequential(frame_pair_cnn(channels), nn.Linear(GRID * GRID * channels, width))
        self.action_embedding = ActionEmbedding(config.action_space, width)
        outputs = len(REWARD_SIGNS) if config.reward == "sign" else 1
        self.reward_head = nn.Sequential(nn.SiLU(), nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, outputs))
        self.termination_head = nn.Sequential(nn.SiLU(), nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, frames: Tensor, actions: Tensor, next_frames: Tensor) -> tuple[Tensor, Tensor]:
        """x_t (N, 3, H, W) in [0, 1], a_t (N, *action_shape), x_{t+1} -> reward outputs (N, 3) or
        (N, 1) and the termination logit (N,)."""
        features = torch.cat([self.frames(torch.cat([frames, next_frames], dim=1)), self.action_embedding(actions)], dim=-1)
        return self.reward_head(features), self.termination_head(features)[:, 0]

    @torch.no_grad()
    def predict(self, frames: Tensor, actions: Tensor, next_frames: Tensor) -> tuple[Tensor, Tensor]:
        """The reward (N,) float (the likeliest sign, or the value) and termination (N,) bool of each transition."""
        self.action_embedding.check(actions, (len(frames),), "actions")
        reward, termination = self(frames, actions, next_frames)
        value = torch.tensor(REWARD_SIGNS, device=reward.device)[reward.argmax(-1)] if self.config.reward == "sign" else reward[:, 0]
        return value, termination > 0

    def training_losses(self, batch: dict) -> dict[str, Tensor]:
        """Cross-entropy (or MSE) of the rewards and BCE of the terminations over a batch's transitions."""
        missing = [name for name in ("frames", "actions", "rewards", "terminated") if not torch.is_tensor(batch.get(name))]
        if missing:
            raise RewardModelError(f"a batch without {', '.join(missing)}: the reward model trains on recorded episodes (reverie record)")
        frames, actions = batch["frames"], batch["actions"]
        self.action_embedding.check(actions, tuple(frames.shape[:2]), "batch actions")
        reward, termination = self(transitions(frames[:, :-1]), transitions(actions[:, :-1]), transitions(frames[:, 1:]))
        rewards, terminated = transitions(batch["rewards"][:, :-1]).float(), transitions(batch["terminated"][:, :-1]).float()
        if self.config.reward == "sign":
            reward_loss = F.cross_entropy(reward, (torch.sign(rewards) + 1).long())
        else:
            reward_loss = F.mse_loss(reward[:, 0], rewards)
        terms = {"reward": reward_loss, "termination": F.binary_cross_entropy_with_logits(termination, terminated)}
        return terms | {"loss": terms["reward"] + terms["termination"]}


def transitions(values: Tensor) -> Tensor:
    """Values of B windows' transitions (B, T', ...) -> one row per transition, (B T', ...)."""
    return rearrange(values, "b t ... -> (b t) ...")
