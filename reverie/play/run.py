"""`run_play`: one play session from a `PlayConfig`, in a window or headless, recorded and reported.

Everything is checked before the first step, each a `PlayError` of one line: the model folder (a
world model's, `reverie.play.playable`), the env's actions against the model's (`--env`), the idle
action, every entry of `--actions`, and the start frame (`reverie.play.start_frames`). Headless, the
session takes the `--actions` in order, one step each; in the window, the keys held. The report
(`--json`) holds the model, the start, the steps and frames (steps + 1: the start frame counts, as
in the video), the FPS (`fps` over the whole loop, `live_fps` over its last frames, `model_fps` of
the model's steps alone), the frame size, the actions taken, and the unknown keys pressed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from reverie.play.keys import KeyMap, key_map
from reverie.play.playable import Playable, PlayError, load_playable
from reverie.play.recording import DEFAULT_VIDEO_FPS, VideoRecorder, write_report
from reverie.play.session import PlaySession
from reverie.play.start_frames import StartFrame, start_frame


@dataclass
class PlayConfig:
    model_dir: Path
    prompt: Path | None = None  # an image to start from, resized to the model's frame size
    start: list[str] | None = None  # recorded episode shards: start from the first frame of the first episode
    env: str | None = None  # the gymnasium id the model was trained on: its keys, its action count checked
    idle_action: int | None = None  # with no key held; None: the env's no-key action, else 0
    fps: float | None = None  # cap on steps a second; None: as fast as the model goes
    headless: bool = False  # no window: take `actions`, one step each
    actions: str | None = None  # headless: comma-separated action indices, e.g. "0,1,1,3"
    record: Path | None = None  # an mp4 of every frame
    json: Path | None = None  # the report
    seed: int = 0  # of the sampling generator
    device: str | None = None  # None: cuda when there is one
    scale: int | None = None  # window pixels per frame pixel; None: about 512 px on the longer side


def parse_actions(sequence: str | None, headless: bool) -> list[int]:
    """The indices of `--actions` (checked against the model later); PlayError naming a bad entry."""
    if not headless:
        if sequence is not None:
            raise PlayError("--actions is for --headless; in the window the keys choose the actions")
        return []
    if sequence is None or not sequence.strip():
        raise PlayError("--headless needs --actions SEQ: comma-separated action indices, one step each, e.g. 0,1,1,3")
    entries = [entry.strip() for entry in sequence.split(",")]
    bad = next((index for index, entry in enumerate(entries) if not entry.lstrip("-").isdigit()), None)
    if bad is not None:
        raise PlayError(f"--actions {sequence}: entry {bad + 1}, {entries[bad]!r}, is not an action index")
    return [int(entry) for entry in entries]


def chosen_device(device: str | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise PlayError(f"--device {device}: {error}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise PlayError(f"--device {device}: no CUDA device here")
    return device


def run_play(config: PlayConfig, log: Callable[[str], None] | None = None, events: Callable[[], list] | None = None) -> dict:
    """Play one session (see the module docstring); the report, also written to `config.json`."""
    log = log or (lambda line: print(line, file=sys.stderr))
    actions = parse_actions(config.actions, config.headless)
    device = chosen_device(config.device)
    playable = load_playable(config.model_dir, device)
    keys = key_map(playable, config.env, config.idle_action)
    for index, action in enumerate(actions):
        playable.check_action(action, f"--actions entry {index + 1}")
    start = start_frame(config.prompt, config.start, playable.frame_size)
    log(start.message())
    recorder = VideoRecorder(config.record, config.fps or DEFAULT_VIDEO_FPS, playable.frame_size) if config.record else None
    unknown_keys: list[str] = []
    try:
        session = PlaySession(playable, start, device, config.seed, config.fps, [recorder] if recorder else [])
        if config.headless:
            for action in actions:
                session.step(action)
        else:
            from reverie.play.window import play_window  # pygame loads only for the window

            log(keys.describe())
            unknown_keys = play_window(session, keys, config.scale, log, events)
    except BaseException:
        if recorder:
            recorder.abort()
        raise
    if recorder:
        recorder.close()
    report = session_report(config, playable, keys, start, session, device, unknown_keys)
    if config.json:
        write_report(config.json, report)
    log(f"{report['steps']} steps at {report['fps']:.1f} FPS (model alone {report['model_fps']:.1f})" + (f" -> {config.record}" if recorder else ""))
    return report


def session_report(config: PlayConfig, playable: Playable, keys: KeyMap, start: StartFrame, session: PlaySession, device: str,
                   unknown_keys: list[str]) -> dict:  # fmt: skip
    return {
        "model": playable.name,
        "model_dir": str(config.model_dir),
        "mode": "headless" if config.headless else "window",
        "steps": len(session.actions),
        "frames": session.frames,
        "fps": session.fps,
        "live_fps": session.live_fps,
        "model_fps": session.model_fps,
        "fps_cap": config.fps,
        "frame_size": list(playable.frame_size),
        "start": start.source | {"resized_from": list(start.resized_from) if start.resized_from else None},
        "action_space": {"kind": playable.kind, "nvec": list(playable.nvec), "actions": playable.action_count},
        "actions": session.actions,
        "idle_action": keys.idle,
        "keys": keys.source,
        "env": config.env,
        "unknown_keys": unknown_keys,
        "seed": config.seed,
        "device": device,
        "video": str(config.record) if config.record else None,
    }
