"""The pygame window under SDL's dummy video driver, driven by scripted key events through pygame's
own event queue: the action follows the keys held (idle with none), the screen shows the frame
upscaled, an unknown key is named once, and `run_play` records and reports a window session."""

from __future__ import annotations

import json

import av
import numpy as np
import pygame
import pytest
import torch

from reverie.nn.world_model import WorldModel, WorldStep
from reverie.play import Playable, PlayConfig, run_play
from reverie.play.keys import key_map
from reverie.play.session import PlaySession
from reverie.play.start_frames import StartFrame
from reverie.play.window import STATUS_HEIGHT, play_window

ACTIONS = 4


class BrightnessWorld(WorldModel):
    """A test double of the loop: the next frame is a flat grey of brightness action / (ACTIONS - 1)."""

    max_context = 1

    def start(self, context_frames, context_actions, generator=None):
        self.frame_shape = context_frames.shape[2:]  # (3, H, W)

    def step(self, action):
        return WorldStep(torch.full((1, *self.frame_shape), float(action[0]) / (ACTIONS - 1)))


@pytest.fixture
def dummy_display(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def key(kind: int, code: int) -> pygame.event.Event:
    return pygame.event.Event(kind, key=code, mod=0, unicode="", scancode=0)


class ScriptedEvents:
    """Posts turn i's scripted events to pygame's queue and returns what pygame.event.get gives;
    before each turn it also reads the screen's top-left pixel (the frame drawn last)."""

    def __init__(self, script: list[list[pygame.event.Event]]):
        self.script, self.turn, self.shown = script, 0, []

    def __call__(self) -> list:
        self.shown.append(pygame.surfarray.pixels3d(pygame.display.get_surface())[0, 0].copy())
        for event in self.script[self.turn] if self.turn < len(self.script) else [pygame.event.Event(pygame.QUIT)]:
            pygame.event.post(event)
        self.turn += 1
        return pygame.event.get()


def test_the_window_steps_with_the_keys_held_and_shows_the_frames(dummy_display):
    playable = Playable(BrightnessWorld(), "brightness_world", (8, 12), "discrete", (ACTIONS,))
    start = StartFrame(np.full((8, 12, 3), 60, np.uint8), {"prompt": "grey"}, None)
    stepped: list[np.ndarray] = []
    session = PlaySession(playable, start, "cpu", seed=0, on_frame=[stepped.append])
    log: list[str] = []
    script = [
        [],  # no key: the idle action 0
        [key(pygame.KEYDOWN, pygame.K_3)],  # key 3 is action 2
        [],  # still held
        [key(pygame.KEYUP, pygame.K_3), key(pygame.KEYDOWN, pygame.K_q)],  # released; q is no key of the map
        [key(pygame.KEYDOWN, pygame.K_q), key(pygame.KEYDOWN, pygame.K_4)],  # q again; key 4 is action 3
    ]
    events = ScriptedEvents(script)
    unknown = play_window(session, key_map(playable, None, None), 4, log.append, events)
    assert session.actions == [0, 2, 2, 0, 3]
    assert [int(frame[0, 0, 0]) for frame in stepped] == [60, 0, 170, 170, 0, 255]
    assert [int(pixel[0]) for pixel in events.shown] == [60, 0, 170, 170, 0, 255]  # each turn shows the last step's frame
    assert unknown == ["q"] and sum("'q' is not mapped" in line for line in log) == 1


def test_the_window_is_the_frame_upscaled_above_a_status_line(dummy_display):
    playable = Playable(BrightnessWorld(), "brightness_world", (8, 12), "discrete", (ACTIONS,))
    start = StartFrame(np.zeros((8, 12, 3), np.uint8), {"prompt": "black"}, None)
    sizes = []

    def events() -> list:
        sizes.append(pygame.display.get_surface().get_size())
        return [pygame.event.Event(pygame.QUIT)]

    play_window(PlaySession(playable, start, "cpu", seed=0), key_map(playable, None, None), 5, lambda line: None, events)
    assert sizes == [(12 * 5, 8 * 5 + STATUS_HEIGHT)]


def test_run_play_records_and_reports_a_window_session(dummy_display, pixel_folder, prompt_image, tmp_path):
    events = ScriptedEvents([[], [key(pygame.KEYDOWN, pygame.K_2)], [], [key(pygame.KEYDOWN, pygame.K_ESCAPE)]])
    config = PlayConfig(pixel_folder, prompt=prompt_image, record=tmp_path / "window.mp4", json=tmp_path / "window.json", fps=200)
    report = run_play(config, log=lambda line: None, events=events)
    assert report["mode"] == "window" and report["actions"] == [0, 1, 1] and report["fps"] <= 200
    assert json.loads((tmp_path / "window.json").read_text())["frames"] == 4
    with av.open(str(tmp_path / "window.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
