"""The play loop's core, shared by the window and headless play: one world started from one frame,
then stepped with one action index at a time, timed.

`PlaySession` starts the model (`reverie.nn.world_model`: `start` with a context of that one frame
and no actions, then `step`) with a `torch.Generator` seeded from `seed`, so the same start frame,
seed and actions give the same frames. Each `step` takes an action index (`Playable.check_action`),
returns the next frame as (H, W, 3) uint8, hands it to the `on_frame` listeners (the recorder) and
notes when it came: `live_fps` is over the last `FPS_WINDOW` frames, as a player sees it, and
`model_fps` over the model's own stepping time alone. With `fps_cap` a step first waits until
1 / fps_cap seconds have passed since the one before, so steps never come faster than that.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import numpy as np
import torch
from einops import rearrange

from reverie.play.playable import Playable, PlayError
from reverie.play.start_frames import StartFrame

FPS_WINDOW = 30  # frames the live FPS is measured over: about a second at the rates tiny models play at

FrameListener = Callable[[np.ndarray], None]


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """A world model's frames (B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8, as they are shown."""
    return (rearrange(frames, "b c h w -> b h w c").clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


class PlaySession:
    def __init__(self, playable: Playable, start: StartFrame, device: str, seed: int, fps_cap: float | None = None,
                 on_frame: list[FrameListener] | None = None, clock: Callable[[], float] = time.perf_counter):  # fmt: skip
        if fps_cap is not None and fps_cap <= 0:
            raise PlayError(f"--fps {fps_cap}: give a positive cap on steps a second")
        self.playable, self.device, self.fps_cap, self.clock = playable, torch.device(device), fps_cap, clock
        self.on_frame = list(on_frame or [])
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        context = rearrange(torch.from_numpy(start.frame), "h w c -> 1 1 c h w").to(self.device, torch.float32) / 255
        playable.model.start(context, None, self.generator)  # (B=1, K=1, 3, H, W) in [0, 1], no actions between
        self.frame = start.frame  # (H, W, 3) uint8: the frame on screen
        self.actions: list[int] = []
        self.frames = 1  # the start frame counts: a session of N steps has N + 1 frames
        self.model_seconds = 0.0
        self.ticks: deque[float] = deque([clock()], maxlen=FPS_WINDOW + 1)
        self.started_at = self.ticks[0]
        self.emit(start.frame)

    def emit(self, frame: np.ndarray) -> None:
        for listener in self.on_frame:
            listener(frame)

    def step(self, action: int) -> np.ndarray:
        """Take action index `action` at the last frame (after waiting for the FPS cap); the next frame (H, W, 3) uint8."""
        self.playable.check_action(action, f"step {len(self.actions)}")
        self.wait_for_cap()
        began = self.clock()
        world_step = self.playable.model.step(self.playable.action_tensor(action, self.device))
        [frame] = to_uint8(world_step.frame)
        self.model_seconds += self.clock() - began
        self.ticks.append(self.clock())
        self.frame, self.frames = frame, self.frames + 1
        self.actions.append(action)
        self.emit(frame)
        return frame

    def wait_for_cap(self) -> None:
        if self.fps_cap is None:
            return
        wait = self.ticks[-1] + 1 / self.fps_cap - self.clock()
        if wait > 0:
            time.sleep(wait)

    @property
    def live_fps(self) -> float:
        """Steps a second over the last FPS_WINDOW steps (0 before the first)."""
        elapsed = self.ticks[-1] - self.ticks[0]
        return (len(self.ticks) - 1) / elapsed if elapsed > 0 else 0.0

    @property
    def fps(self) -> float:
        """Steps a second over the whole session so far, waits for the cap included."""
        elapsed = self.ticks[-1] - self.started_at
        return len(self.actions) / elapsed if elapsed > 0 else 0.0

    @property
    def model_fps(self) -> float:
        """Steps a second of the model's stepping alone."""
        return len(self.actions) / self.model_seconds if self.model_seconds > 0 else 0.0
