"""The pygame front end of play: a window showing the world model's frame upscaled, with the live
FPS and the action under it, stepping the session continuously (as fast as the model goes, or at
the session's FPS cap) with the action of the keys held down (`reverie.play.keys`).

Each turn of the loop reads the pending events, then takes one step and draws its frame. Escape,
closing the window or Ctrl-C ends the session (the recording is kept); losing the focus releases
every key. A key the map does not know is ignored and named once on the log. Events come from
`pygame.event.get` unless another source is given: tests drive the real window under SDL's dummy
video driver with scripted events.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from einops import rearrange

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame prints a greeting on import otherwise
import pygame  # noqa: E402

from reverie.play.keys import KeyMap, UnknownKeys  # noqa: E402
from reverie.play.session import PlaySession  # noqa: E402

WINDOW_SIDE = 512  # px: the default scale brings the frame's longer side to about this
STATUS_HEIGHT = 24  # px of the status line under the frame

EventSource = Callable[[], list]


def default_scale(frame_size: tuple[int, int]) -> int:
    return max(1, round(WINDOW_SIDE / max(frame_size)))


class Window:
    def __init__(self, session: PlaySession, keys: KeyMap, scale: int, log: Callable[[str], None]):
        self.session, self.keys, self.scale, self.log = session, keys, scale, log
        height, width = session.playable.frame_size
        self.frame_rect = (width * scale, height * scale)
        self.screen = pygame.display.set_mode((self.frame_rect[0], self.frame_rect[1] + STATUS_HEIGHT))
        pygame.display.set_caption(f"reverie play: {session.playable.name}")
        self.font = pygame.font.Font(None, STATUS_HEIGHT)
        self.held: set[int] = set()
        self.unknown = UnknownKeys()

    def handle(self, events: list) -> bool:
        """Update the held keys from `events`; False when the session should end."""
        for event in events:
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                return False
            if event.type == pygame.WINDOWFOCUSLOST:
                self.held.clear()
            elif event.type == pygame.KEYDOWN and event.key in self.keys.known:
                self.held.add(event.key)
            elif event.type == pygame.KEYDOWN and self.unknown.first_time(event.key):
                self.log(f"key {pygame.key.name(event.key)!r} is not mapped to an action; ignored ({self.keys.describe()})")
            elif event.type == pygame.KEYUP:
                self.held.discard(event.key)
        return True

    def draw(self, frame: np.ndarray, action: int | None) -> None:
        """Blit `frame` (H, W, 3) uint8 upscaled (nearest) and the status line, then flip."""
        surface = pygame.surfarray.make_surface(rearrange(frame, "h w c -> w h c"))  # surfarray is x-major
        self.screen.fill((0, 0, 0))
        self.screen.blit(pygame.transform.scale(surface, self.frame_rect), (0, 0))
        status = f"{self.session.live_fps:5.1f} FPS   action {'-' if action is None else action}   step {len(self.session.actions)}"
        self.screen.blit(self.font.render(status, True, (230, 230, 230)), (4, self.frame_rect[1] + 4))
        pygame.display.flip()

    def unknown_keys(self) -> list[str]:
        return sorted(pygame.key.name(key) for key in self.unknown.seen)


def play_window(session: PlaySession, keys: KeyMap, scale: int | None, log: Callable[[str], None], events: EventSource | None = None) -> list[str]:
    """Play in a window until it is closed; the names of the unknown keys pressed."""
    pygame.display.init()
    pygame.font.init()
    try:
        window = Window(session, keys, scale or default_scale(session.playable.frame_size), log)
        window.draw(session.frame, None)
        next_events = events or pygame.event.get
        try:
            while window.handle(next_events()):
                action = keys.action(window.held)
                window.draw(session.step(action), action)
        except KeyboardInterrupt:
            log("interrupted; ending the session")
        return window.unknown_keys()
    finally:
        pygame.font.quit()
        pygame.display.quit()
