"""The frame of the agents that learn behaviour inside a world model of pixels, [14] IRIS (Micheli
et al. 2023, Alg. 1) and [16] DIAMOND (Alonso et al. 2024, Alg. 1 of its appendix). Both loop
over epochs of

    collect experience in the real env with the current actor (epsilon-greedy);
    update the world model (IRIS: its tokenizer, then its transformer) on windows of the replay;
    update the reward and termination model (DIAMOND; IRIS's transformer predicts them);
    update the actor-critic in imagination (`reverie.agents.actor_critic`).

`PixelAgent` is `TaskAgent`'s loop over image observations (S, S, 3) uint8 and a Discrete action
space: the real frames go into a `FrameReplay`; the first `first_epoch_steps` steps act uniformly
at random, and from then on every `steps_per_epoch` steps run one epoch (`train_epoch`, the
paper's), whose first round takes the larger `first_epoch_updates`. The actor acts with its LSTM
state carried through the episode and sampled actions, replaced by a uniform one with probability
`epsilon` (both papers: 0.01 in training, 0 in evaluation, `evaluate`).

An epoch draws every random number from torch's global generator seeded from the agent's `train`
stream, so a resumed run updates its models exactly as the unbroken one would. The learning rate
warms up linearly over `warmup_updates` updates of each part, and its gradients are clipped to
each part's norm, as in DIAMOND.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from reverie.agents.actor_critic import ActorCritic, actor_critic_loss, imagine
from reverie.agents.base import TaskAgent, seeded
from reverie.agents.frame_replay import FrameReplay
from reverie.agents.registry import load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays
from reverie.envs.atari import atari_env, is_atari


@dataclass
class PixelAgentConfig:
    seed: int = 0
    frame_size: int = 64  # S: frames are S x S RGB (both papers: 64)
    life_loss_ends: bool = True  # in training, a lost life ends the episode (Atari)
    replay_capacity: int = 100_000  # frames
    epsilon: float = 0.01  # the chance of a uniform action in training
    first_epoch_steps: int = 5_000  # random steps before the first epoch (DIAMOND: at least 5000)
    steps_per_epoch: int = 100  # real steps between epochs
    batch_size: int = 32
    # the actor-critic (DIAMOND's sizes)
    actor_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    lstm: int = 512
    actor_learning_rate: float = 1e-4
    actor_max_grad_norm: float = 100.0
    horizon: int = 15  # H, imagined steps per rollout
    gamma: float = 0.985
    lambda_: float = 0.95
    value_weight: float = 1.0
    entropy_weight: float = 0.001
    warmup_updates: int = 100


class PixelAgent(TaskAgent):
    """See the module docstring. A subclass builds its world model in `build` (calling this
    `build` for the actor-critic), lists its trained parts in `parts`, writes `train_epoch`, and
    gives its world model to imagination as `dream()`, started from `context_frames` real frames."""

    streams = ("act", "train")
    counters = ("episodes", "total_steps", "epochs", "actor_critic_steps")  # and a PART_steps of each part

    def bind_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        shape = getattr(observation_space, "shape", None)
        if not isinstance(observation_space, gym.spaces.Box) or shape is None or len(shape) != 3 or shape[2] != 3 or shape[0] != shape[1]:
            raise TypeError(f"{self.display_name} needs square RGB frames (S, S, 3) as observations, got {observation_space}")
        if shape[0] != self.config.frame_size:
            raise TypeError(f"{self.display_name} was configured for {self.config.frame_size} px frames (frame_size), the env gives {shape[0]} px")
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(f"{self.display_name} needs a Discrete action space, got {action_space}")
        self.frame_size, self.action_count = shape[0], int(action_space.n)

    def build_buffers(self) -> None:
        self.replay = FrameReplay((3, self.frame_size, self.frame_size), self.config.replay_capacity)

    def build(self) -> None:
        config = self.config
        self.actor_critic = ActorCritic(self.frame_size, self.action_count, config.actor_channels, config.lstm)
        self.actor_optimizer = torch.optim.Adam(self.actor_critic.parameters(), config.actor_learning_rate, eps=1e-8)
        self.actor_state: tuple[Tensor, Tensor] | None = None  # the LSTM's, through a real episode
        self.losses: dict[str, float] = {}  # each part's loss terms at its last update, for the episode rows

    def parts(self) -> dict[str, tuple[nn.Module, torch.optim.Optimizer]]:
        """The trained parts by name, each with its optimizer (what a checkpoint holds)."""
        return {"actor_critic": (self.actor_critic, self.actor_optimizer)}

    def build_task(self, task_id: str) -> None:
        """Nothing to build: the rewards come from the env and are learned."""

    @classmethod
    def make_env(cls, config: PixelAgentConfig, env_id: str, **kwargs) -> gym.Env:
        """An Atari id gets the papers' preprocessing at `frame_size` (`reverie.envs.atari`)."""
        if is_atari(env_id):
            return atari_env(env_id, size=config.frame_size, life_loss_ends=config.life_loss_ends, **kwargs)
        return gym.make(env_id, **kwargs)

    # -- acting ----------------------------------------------------------------------------------

    def random_action(self) -> int:
        return int(torch.randint(self.action_count, (), generator=self.generators["act"]))

    def actor_view(self, frames: Tensor) -> Tensor:
        """Frames (B, T, 3, S, S) as the actor reads them: as they are here (IRIS: reconstructed)."""
        return frames

    @torch.no_grad()
    def policy_action(self, observation: np.ndarray, generator: torch.Generator) -> int:
        """An action sampled from pi(. | frames so far); advances the actor's LSTM state."""
        frame = self.actor_view(torch.from_numpy(np.moveaxis(observation, -1, 0)).float()[None, None] / 255)[:, 0]
        state = self.actor_state or self.actor_critic.initial_state(1)
        logits, _, self.actor_state = self.actor_critic(frame, state)
        return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))

    def act(self, observation: np.ndarray) -> int:
        return self.policy_action(observation, self.generators["act"])

    def behaviour_action(self, observation: np.ndarray) -> int:
        if self.epochs == 0:
            return self.random_action()
        action = self.act(observation)
        explore = float(torch.rand((), generator=self.generators["act"])) < self.config.epsilon
        return self.random_action() if explore else action

    def start_episode(self) -> None:
        self.replay.discard_unfinished()
        self.actor_state = None

    def store(self, observation, action, reward: float, next_observation, terminated: bool) -> None:
        self.replay.add(observation, int(action), reward, terminated)
        self.final_frame = next_observation

    def end_episode(self, steps: int) -> dict:
        self.replay.finish_episode(self.final_frame)
        return {"backups": self.actor_critic_steps, "epochs": self.epochs} | self.losses

    def evaluate(self, env: gym.Env, episodes: int, seed: int) -> list[float]:
        """Returns of `episodes` episodes played by the actor without exploration (episode i reset
        with seed `seed + i`); the training streams are left untouched."""
        generator, returns = torch.Generator().manual_seed(seed), []
        for episode in range(episodes):
            observation, _ = env.reset(seed=seed + episode)
            self.actor_state, total, done = None, 0.0, False
            while not done:
                observation, reward, terminated, truncated, _ = env.step(self.policy_action(observation, generator))
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
        self.actor_state = None
        return returns

    # -- learning --------------------------------------------------------------------------------

    def after_step(self) -> None:
        config = self.config
        past_first = self.total_steps - config.first_epoch_steps
        if past_first >= 0 and past_first % config.steps_per_epoch == 0:
            with seeded(int(torch.randint(2**62, (), generator=self.generators["train"]))):
                self.train_epoch()
            self.epochs += 1

    def train_epoch(self) -> None:
        raise NotImplementedError

    def dream(self):
        """The world model as an `ImaginedWorld` that rollouts start from replay windows of
        `context_frames` frames."""
        raise NotImplementedError

    def updates(self, first: int, later: int) -> int:
        """Updates of a part in this epoch: `first` in the first, `later` after."""
        return first if self.epochs == 0 else later

    def update(self, part: str, loss: Tensor, learning_rate: float, max_grad_norm: float) -> None:
        """One optimizer step of `part` on `loss`, at `learning_rate` warmed up over the part's first
        updates; counts it in `{part}_steps` and keeps the loss in `losses[part]`."""
        module, optimizer = self.parts()[part]
        steps = f"{part}_steps"
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * min(1.0, (getattr(self, steps) + 1) / self.config.warmup_updates)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
        optimizer.step()
        setattr(self, steps, getattr(self, steps) + 1)
        self.losses[part] = float(loss.detach())

    def train_actor_critic(self, world, updates: int, context_frames: int) -> None:
        """`updates` actor-critic updates in imagination from real windows of `context_frames`
        frames; the last update's terms go into `losses` as actor_TERM."""
        config = self.config
        for _ in range(updates):
            window = self.replay.sample(config.batch_size, context_frames)
            imagined = imagine(self.actor_critic, world, window["frames"], window["actions"][:, :-1], config.horizon, self.actor_view)
            losses = actor_critic_loss(imagined, config.gamma, config.lambda_, config.value_weight, config.entropy_weight)
            self.update("actor_critic", losses["loss"], config.actor_learning_rate, config.actor_max_grad_norm)
            self.losses |= {f"actor_{name}": float(value.detach()) for name, value in losses.items()}

    # -- checkpoints -----------------------------------------------------------------------------

    def buffers(self) -> dict:
        return {"": self.replay}

    def extra_state(self) -> dict[str, np.ndarray]:
        arrays = {}
        for name, (module, optimizer) in self.parts().items():
            arrays |= module_arrays(module, f"{name}.weights") | optimizer_arrays(optimizer, f"{name}.optimizer")
        return arrays

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        for name, (module, optimizer) in self.parts().items():
            load_module_arrays(module, arrays, f"{name}.weights")
            load_optimizer_arrays(optimizer, arrays, f"{name}.optimizer")

    def space_fields(self) -> dict:
        return {"frame_size": self.frame_size, "actions": self.action_count}

    @classmethod
    def spaces_from_fields(cls, spaces: dict) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
        size = spaces["frame_size"]
        return gym.spaces.Box(0, 255, (size, size, 3), np.uint8), gym.spaces.Discrete(spaces["actions"])
