"""UniPi's video plan generator ([22] Du et al. 2023, Sec. 3.1-3.2): a diffusion model of the video
that leads from the current frame to a goal, conditioned on the first frame and on the goal, given
as an image or as a text, and trained on demonstrations.

UniPi generates all frames of the plan with a video diffusion model and then refines them in time.
Here the plan is generated a frame at a time, each next frame drawn by EDM sampling (DIAMOND's
denoiser [16], `reverie.nn.diffusion.edm`) from DIAMOND's U-Net (`reverie.pretrain.diamond_unet`)
conditioned on the frame before it and on the goal:

    x_{t+1} ~ D( . | x_t, g_image, g_text),   context channels [x_t, g_image, (y, x)], c = e(sigma) + E_text(g_text)

g_image is the goal frame (zeros when the goal is a text); (y, x) are two channels of each
pixel's row and column in [-1, 1] (CoordConv, Liu et al. 2018), without which a convolutional
network cannot tell where in the frame a text goal such as "row 2, column 5" is; E_text is the text's embedding
(`reverie.planning.task_text`): a learned table over the task descriptions of training (`tasks`),
or, with `text_encoder`, a local frozen `transformers` encoder that also embeds texts never seen;
a learned vector stands for "no text" (an image goal). Training draws, per transition, whether its
goal is given as its text (probability `text_goals`) or as its image, so one model follows both.
Frames are in [0, 1] outside, [-1, 1] for the denoiser, as DIAMOND's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from reverie.nn.diffusion import EDMConfig, EDMDenoiser, NoiseLevelEmbedding, euler_sample, karras_sigmas
from reverie.planning.task_text import GoalVideoError, LearnedTaskEmbedding, PretrainedTaskEmbedding
from reverie.pretrain.diamond_unet import DiamondUNet


@dataclass
class GoalVideoConfig:
    tasks: list[str] = field(default_factory=list)  # the task descriptions the text embedding knows
    channels: list[int] = field(default_factory=lambda: [32, 64])  # U-Net levels; frames divide by 2^(levels - 1)
    res_blocks: int = 1
    cond_channels: int = 64
    denoising_steps: int = 3  # Euler steps a frame
    text_goals: float = 0.5  # training: the share of transitions whose goal is given as text
    text_encoder: str | None = None  # a local transformers text encoder's folder; None: a learned table over `tasks`


class GoalNetwork(nn.Module):
    """F of the EDM denoiser: the conditioning vector from the noise level and the task text, then the U-Net."""

    def __init__(self, config: GoalVideoConfig):
        super().__init__()
        width = config.cond_channels
        self.noise_embedding = NoiseLevelEmbedding(width, width, frequencies="random")
        self.text = PretrainedTaskEmbedding(config.text_encoder, width) if config.text_encoder else LearnedTaskEmbedding(config.tasks, width)
        self.unet = DiamondUNet(3, config.channels, config.res_blocks, width, [False] * len(config.channels))

    def forward(self, scaled_noisy: Tensor, c_noise: Tensor, context: Tensor, task_vectors: Tensor) -> Tensor:
        """task_vectors: `self.text` of each sample's goal text (None where the goal is the image in the context)."""
        return self.unet(scaled_noisy, context, self.noise_embedding(c_noise, task_vectors))


class GoalVideoModel(nn.Module):
    def __init__(self, config: GoalVideoConfig):
        super().__init__()
        self.config = config
        self.denoiser = EDMDenoiser(GoalNetwork(config), EDMConfig(denoising_steps=config.denoising_steps))

    def context(self, frames: Tensor, goal_frames: Tensor | None, text_goal: Tensor) -> Tensor:
        """[x_t, goal image, coordinates] (B, 3, 3, H, W) in [-1, 1]; the goal image is zeros where the
        goal is text (B,) bool; the coordinates are rows and columns, and a channel of zeros."""
        goals = torch.zeros_like(frames) if goal_frames is None else torch.where(text_goal[:, None, None, None], 0.0, goal_frames * 2 - 1)
        height, width = frames.shape[-2:]
        rows, columns = torch.meshgrid(torch.linspace(-1, 1, height, device=frames.device), torch.linspace(-1, 1, width, device=frames.device), indexing="ij")
        coordinates = torch.stack([rows, columns, torch.zeros_like(rows)]).to(frames.dtype).expand_as(frames)
        return torch.stack([frames * 2 - 1, goals, coordinates], dim=1)

    def training_loss(self, frames: Tensor, next_frames: Tensor, goal_frames: Tensor, tasks: list[str], generator: torch.Generator | None = None) -> Tensor:
        """EDM's loss on transitions x_t -> x_{t+1} (B, 3, H, W) in [0, 1] toward goals given by
        their frames (B, 3, H, W) and texts (B,); each goal is given as one of the two."""
        text_goal = torch.rand(len(frames), generator=generator, device=frames.device) < self.config.text_goals
        texts = [task if given else None for task, given in zip(tasks, text_goal.tolist())]
        context = self.context(frames, goal_frames, text_goal)
        task_vectors = self.denoiser.network.text(texts)
        return self.denoiser.training_step(next_frames * 2 - 1, generator, context=context, task_vectors=task_vectors).loss.mean()

    @torch.no_grad()
    def generate(self, frames: Tensor, steps: int, goal_frames: Tensor | None = None, tasks: list[str] | None = None,
                 generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
        """A plan of `steps` frames after frames (B, 3, H, W) in [0, 1], toward goal_frames (B, 3, H, W)
        or the texts `tasks` (one of the two) -> (B, steps + 1, 3, H, W), frame 0 the given one."""
        if (goal_frames is None) == (tasks is None):
            raise GoalVideoError("give the goal as goal_frames or as tasks (texts), one of the two")
        text_goal = torch.full((len(frames),), tasks is not None, device=frames.device)
        task_vectors = self.denoiser.network.text(tasks if tasks is not None else [None] * len(frames))  # once: the encoder is not cheap
        config = self.denoiser.config
        sigmas = karras_sigmas(config.denoising_steps, config.sigma_min, config.sigma_max, config.rho, frames.device, frames.dtype)
        video = [frames]
        for _ in range(steps):
            context = self.context(video[-1], goal_frames, text_goal)
            sampled = euler_sample(lambda noisy, sigma: self.denoiser(noisy, sigma, context=context, task_vectors=task_vectors), tuple(frames.shape), sigmas, generator)
            video.append(((sampled.clamp(-1, 1) + 1) / 2))
        return torch.stack(video, dim=1)
