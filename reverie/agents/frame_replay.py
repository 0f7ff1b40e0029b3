"""The replay of a pixel agent: every frame it has seen, with the action taken at it, the reward
and whether the episode terminated there, kept episode by episode so that windows of consecutive
frames can be drawn from within one episode. [14] IRIS and [16] DIAMOND train their world models,
reward models and the starts of their imagined rollouts on such windows.

Row i holds frame x_i (uint8, (3, H, W)), the action a_i taken at it, the reward r_i and the end
flag d_i of the step it led to, and its episode number; an episode's last row holds its final
frame, with action 0, reward 0 and no end of its own. A window of L rows is L frames and the L - 1
transitions between them. Past `capacity` rows the oldest are overwritten (first in, first out).

Rows of an episode that has not finished (a run stopped mid-episode) are dropped by
`discard_unfinished`, so that an episode played again after a resume is not stored twice.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

FIELDS = ("frames", "actions", "rewards", "ends", "episodes")


class FrameReplay:
    def __init__(self, frame_shape: tuple[int, int, int], capacity: int):
        self.capacity = capacity
        self.frames = np.zeros((capacity, *frame_shape), np.uint8)  # (N, 3, H, W)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.ends = np.zeros(capacity, bool)
        self.episodes = np.full(capacity, -1, np.int64)
        self.added = 0  # rows ever written
        self.finished = 0  # rows written when the last episode finished
        self.episode = 0  # the number of the episode being written

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def write(self, frame: np.ndarray, action: int, reward: float, end: bool) -> None:
        row = self.added % self.capacity
        self.frames[row] = frame
        self.actions[row], self.rewards[row], self.ends[row], self.episodes[row] = action, reward, end, self.episode
        self.added += 1

    def add(self, frame: np.ndarray, action: int, reward: float, end: bool) -> None:
        """One step: frame (H, W, 3) uint8 as the env gives it, the action taken, its reward and end."""
        self.write(np.moveaxis(frame, -1, 0), action, reward, end)

    def finish_episode(self, final_frame: np.ndarray) -> None:
        """Close the episode with the frame its last step led to."""
        self.write(np.moveaxis(final_frame, -1, 0), 0, 0.0, False)
        self.finished, self.episode = self.added, self.episode + 1

    def discard_unfinished(self) -> None:
        """Forget the rows written since the last episode finished."""
        self.added = self.finished

    def chronological_rows(self) -> np.ndarray:
        """Storage rows from the oldest to the newest."""
        return (np.arange(len(self)) + max(0, self.added - self.capacity)) % self.capacity

    def window_starts(self, length: int) -> np.ndarray:
        """Storage rows where a window of `length` rows within one episode begins."""
        rows = self.chronological_rows()
        if len(rows) < length:
            return rows[:0]
        episodes = self.episodes[rows]
        return rows[: len(rows) - length + 1][episodes[: len(rows) - length + 1] == episodes[length - 1 :]]

    def sample(self, batch_size: int, length: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """`batch_size` windows of `length` rows in the recorded episodes' batch layout: frames
        (B, L, 3, H, W) float in [0, 1], actions (B, L) int64, rewards (B, L), terminated (B, L)
        bool; entry t of actions, rewards and terminated is the transition from frame t (the last
        entry of each is the final frame's, unused)."""
        starts = self.window_starts(length)
        if len(starts) == 0:
            raise ValueError(f"the replay holds no window of {length} frames within one episode yet ({len(self)} frames stored)")
        chosen = starts[torch.randint(len(starts), (batch_size,), generator=generator).numpy()]
        rows = (chosen[:, None] + np.arange(length)) % self.capacity
        return {
            "frames": torch.from_numpy(self.frames[rows]).float() / 255,
            "actions": torch.from_numpy(self.actions[rows]),
            "rewards": torch.from_numpy(self.rewards[rows]),
            "terminated": torch.from_numpy(self.ends[rows]),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        rows = self.chronological_rows()
        return {f"replay.{name}": np.ascontiguousarray(getattr(self, name)[rows]) for name in FIELDS} | {
            "replay.counts": np.array([self.added, self.finished, self.episode, self.capacity], np.int64)
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.added, self.finished, self.episode, capacity = arrays["replay.counts"].tolist()
        if capacity != self.capacity:
            raise ValueError(f"replay state holds capacity {capacity}, this replay has {self.capacity}")
        rows = self.chronological_rows()
        for name in FIELDS:
            getattr(self, name)[rows] = arrays[f"replay.{name}"]
