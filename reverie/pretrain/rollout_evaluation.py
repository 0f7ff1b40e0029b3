"""Measure a generative world model by its rollouts on recorded episodes: `evaluate_rollout`, behind
`reverie evaluate rollout`.

The model is a model folder (`reverie.nn.model_folder`) of any registered model that implements
`reverie.nn.world_model.WorldModel`, or such a model itself; the baseline it is reported beside is
`last_frame_world_model` ("copy the last frame"). The episodes are recorded episode shards
(`reverie record`: frames with actions, rewards and terminations beside them), read in the order
given, shard by shard. Each sample (a clip of an episode) gives one window, its first K + N frames
(K = `context`, N = `steps`), up to `max_episodes` windows: the same windows every run.

In the recorded time convention (frame t is seen before action t; action t leads to frame t + 1,
reward t and termination t), step i = 0 .. N - 1 of a window's open-loop rollout is

    start(frames 0 .. K - 1, actions 0 .. K - 2), then step(action K - 1 + i) -> frame K + i,

each step taken at the model's own last frame, and compared with real frame K + i, reward K - 1 + i
and termination K - 1 + i. Step i teacher-forced starts instead from the real frames before frame
K + i (the last `max_context` of them, with the actions between them) and steps once with the real
action K - 1 + i: the next-frame figure, free of drift. Per step, as means over the windows:

    psnr, ssim               of the generated frame against the real one (`reverie.tokenizers.metrics`)
    pixel_mean, pixel_variance   over the 3 H W values of each generated frame (variance of the
                             population), beside real_pixel_mean, real_pixel_variance of the real
                             frames: drift toward grey, black or noise shows here ([23] GameNGen, Sec. 5.1)
    saturated_fraction       of the values that read 0, 1, 254 or 255 as uint8 (x 255, rounded), and
                             real_saturated_fraction
    teacher_forced_psnr      of the teacher-forced prediction
    reward_accuracy          sign(predicted reward) == sign(recorded reward), and termination_accuracy
                             (predicted == recorded), for the rollout and teacher-forced; None where
                             the model has no such head ([14] IRIS, [16] DIAMOND) or the shards no rewards

and sampling_frames_per_second: generated frames over the seconds spent in the open-loop `step`
calls, `batch_size` windows at a time on `device` (the first batch's start and step are run once
untimed before, so one-off costs are not counted). Every random draw comes from one generator on
the device seeded with `seed`, in a fixed order, so the same settings give the same report.

Bad input stops the run with a `RolloutEvaluationError` naming the file: a shard that is not there
or cannot be read, a window the model cannot start from or step with (its `ContextError`: an action
space or frame size that does not match, named with the shard and sample), a context longer than the
model's `max_context` (named with the model folder), a sample with fewer than K + N frames, or with
latents instead of frames. A folder whose model is not a WorldModel is a `NotAWorldModelError`. A
sample whose members cannot be decoded is skipped with a warning and listed under `skipped`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reverie.nn.model_folder import load_model_folder
from reverie.nn.world_model import ContextError, WorldModel, WorldStep
from reverie.tokenizers import metrics
from reverie.tokenizers.evaluate import TokenizerEvaluationError, default_device, expected_clips, frame_samples, shard_files

SATURATED_LEVELS = (1, 254)  # uint8 levels at or beyond which a value counts as saturated
PER_STEP_FIGURES = (
    "psnr", "ssim", "pixel_mean", "pixel_variance", "real_pixel_mean", "real_pixel_variance", "saturated_fraction",
    "real_saturated_fraction", "teacher_forced_psnr",
)  # fmt: skip
HEAD_FIGURES = ("reward_accuracy", "termination_accuracy", "teacher_forced_reward_accuracy", "teacher_forced_termination_accuracy")


class RolloutEvaluationError(ValueError):
    """Input that a world model cannot be evaluated on; the message names the file and the reason."""


class NotAWorldModelError(ValueError):
    """A model (folder) that does not implement `reverie.nn.world_model.WorldModel`; names it."""


@dataclass
class EpisodeWindow:
    shard: str
    key: str
    frames: torch.Tensor  # (K + N, 3, H, W) float32 in [0, 1]
    actions: torch.Tensor | None  # (K + N, *action_shape); None for video without actions
    rewards: torch.Tensor | None  # (K + N,) float32
    terminated: torch.Tensor | None  # (K + N,) bool


@dataclass
class WindowBatch:
    windows: list[EpisodeWindow]
    frames: torch.Tensor  # (B, K + N, 3, H, W)
    actions: torch.Tensor | None  # (B, K + N, *action_shape)
    rewards: torch.Tensor | None  # (B, K + N)
    terminated: torch.Tensor | None  # (B, K + N)

    def where(self) -> str:
        return ", ".join(dict.fromkeys(f"{window.shard}: sample {window.key}" for window in self.windows))


def world_model(model_or_folder: torch.nn.Module | str | Path) -> WorldModel:
    """The world model a model folder holds (loaded, in eval mode), or `model` itself once checked;
    `NotAWorldModelError` naming the folder or model otherwise."""
    is_folder = isinstance(model_or_folder, (str, Path))
    model = load_model_folder(model_or_folder) if is_folder else model_or_folder
    if not isinstance(model, WorldModel):
        name = getattr(model, "registry_name", type(model).__name__)
        where = f"{model_or_folder}: model {name!r}" if is_folder else f"model {name!r}"
        raise NotAWorldModelError(f"{where} is not a generative world model (reverie.nn.world_model.WorldModel: start, step, max_context)")
    return model


def episode_windows(shards: Sequence[str], window_frames: int, max_windows: int | None, skipped: list[str]) -> Iterator[EpisodeWindow]:
    """The first `window_frames` frames of each sample and the arrays beside them, shard by shard, up
    to `max_windows`; a sample that cannot be decoded is warned about and appended to `skipped`."""
    samples = frame_samples(shards, window_frames, max_windows, skipped, "evaluate rollouts on recorded frame shards", "of context + steps")
    try:
        for shard, sample in samples:
            cut = {name: sample[name][:window_frames] if name in sample else None for name in ("frames", "actions", "rewards", "terminated")}
            yield EpisodeWindow(shard, sample["key"], **cut)
    except TokenizerEvaluationError as error:
        raise RolloutEvaluationError(str(error)) from error


def layout(window: EpisodeWindow) -> tuple:
    """What windows stacked into one batch must share: the frame shape, and which arrays they hold with what shape and dtype."""
    arrays = (window.actions, window.rewards, window.terminated)
    return tuple(window.frames.shape), *((None if array is None else (tuple(array.shape), array.dtype)) for array in arrays)


def batched(windows: Iterator[EpisodeWindow], batch_size: int, device: str) -> Iterator[WindowBatch]:
    """Batches of up to `batch_size` windows on `device`, all laid out as the first window is."""
    batch, first = [], None
    for window in windows:
        first = first or (window, layout(window))
        if layout(window) != first[1]:
            raise RolloutEvaluationError(
                f"{window.shard}: sample {window.key}: frames {tuple(window.frames.shape)}, actions "
                f"{None if window.actions is None else (tuple(window.actions.shape), window.actions.dtype)}, unlike "
                f"{first[0].shard}: sample {first[0].key} before it; evaluate one frame size and action space at a time"
            )
        batch.append(window)
        if len(batch) == batch_size:
            yield stacked(batch, device)
            batch = []
    if batch:
        yield stacked(batch, device)


def stacked(windows: list[EpisodeWindow], device: str) -> WindowBatch:
    def stack(name: str) -> torch.Tensor | None:
        arrays = [getattr(window, name) for window in windows]
        return None if arrays[0] is None else torch.stack(arrays).to(device)

    return WindowBatch(windows, stack("frames"), stack("actions"), stack("rewards"), stack("terminated"))


def actions_at(batch: WindowBatch, first: int, end: int) -> torch.Tensor | None:
    """Actions first .. end - 1 of every window, (B, end - first, *action_shape)."""
    return None if batch.actions is None else batch.actions[:, first:end]


def action_at(batch: WindowBatch, time: int) -> torch.Tensor | None:
    """Action `time` of every window, (B, *action_shape)."""
    return None if batch.actions is None else batch.actions[:, time]


def open_loop(model: WorldModel, batch: WindowBatch, context: int, steps: int, generator: torch.Generator, device: str) -> tuple[list[WorldStep], float]:
    """(the N steps of each window's rollout from its first K frames, seconds spent in `step`)."""
    model.start(batch.frames[:, :context], actions_at(batch, 0, context - 1), generator)
    rollout, seconds = [], 0.0
    for index in range(steps):
        step, step_seconds = metrics.timed(lambda: model.step(action_at(batch, context - 1 + index)), device)
        rollout.append(step)
        seconds += step_seconds
    return rollout, seconds


def teacher_forced(model: WorldModel, batch: WindowBatch, context: int, steps: int, generator: torch.Generator) -> list[WorldStep]:
    """Step i: from the real frames before frame K + i (the last max_context), one step with action K - 1 + i."""
    predictions = []
    for target in range(context, context + steps):
        first = max(0, target - model.max_context)
        model.start(batch.frames[:, first:target], actions_at(batch, first, target - 1), generator)
        predictions.append(model.step(action_at(batch, target - 1)))
    return predictions


def saturated_fraction(frames: torch.Tensor) -> torch.Tensor:
    """(B,): the fraction of each frame's values (B, 3, H, W) that read <= 1 or >= 254 as uint8."""
    levels = (frames.float().clamp(0, 1) * 255).round()
    low, high = SATURATED_LEVELS
    return ((levels <= low) | (levels >= high)).float().mean(dim=(1, 2, 3))


@dataclass
class Tally:
    """Per-step sums of each figure over the windows evaluated so far, and the counts they are over
    (index i: step i; a head figure counts only the windows where the model and the shards have it)."""

    steps: int
    windows: int = 0
    sums: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    generated_frames: int = 0
    step_seconds: float = 0.0

    def add(self, name: str, index: int, values: torch.Tensor) -> None:
        """Add the (B,) values of figure `name` at step `index`."""
        self.sums.setdefault(name, [0.0] * self.steps)[index] += float(values.double().sum())
        self.counts.setdefault(name, [0] * self.steps)[index] += values.numel()

    def add_frames(self, index: int, generated: torch.Tensor, real: torch.Tensor, forced: torch.Tensor) -> None:
        """Step `index`'s figures of the generated, real and teacher-forced frames (B, 3, H, W)."""
        generated, real, forced = generated.float(), real.float(), forced.float()
        self.add("psnr", index, metrics.psnr(generated, real))
        self.add("ssim", index, metrics.ssim(generated, real))
        for prefix, frames in (("", generated), ("real_", real)):
            self.add(f"{prefix}pixel_mean", index, frames.mean(dim=(1, 2, 3)))
            self.add(f"{prefix}pixel_variance", index, frames.var(dim=(1, 2, 3), unbiased=False))
            self.add(f"{prefix}saturated_fraction", index, saturated_fraction(frames))
        self.add("teacher_forced_psnr", index, metrics.psnr(forced, real))

    def add_heads(self, prefix: str, index: int, step: WorldStep, batch: WindowBatch, recorded_at: int) -> None:
        """Reward and termination agreement of `step` with those recorded at `recorded_at`, where both exist."""
        if step.reward is not None and batch.rewards is not None:
            self.add(f"{prefix}reward_accuracy", index, (torch.sign(step.reward.float()) == torch.sign(batch.rewards[:, recorded_at].float())).float())
        if step.terminated is not None and batch.terminated is not None:
            self.add(f"{prefix}termination_accuracy", index, (step.terminated.bool() == batch.terminated[:, recorded_at].bool()).float())

    def figures(self) -> dict:
        """Each figure's per-step means (None for a head figure that nothing measured), and the sampling speed."""
        means = {name: [total / count for total, count in zip(self.sums[name], self.counts[name])] for name in self.sums}
        return {name: means.get(name) for name in PER_STEP_FIGURES + HEAD_FIGURES} | {
            "sampling_frames_per_second": self.generated_frames / max(self.step_seconds, 1e-12)
        }


def evaluate_batch(model: WorldModel, batch: WindowBatch, context: int, steps: int, generator: torch.Generator, device: str, tally: Tally) -> None:
    try:
        rollout, seconds = open_loop(model, batch, context, steps, generator, device)
        forced = teacher_forced(model, batch, context, steps, generator)
    except ContextError as error:
        raise RolloutEvaluationError(f"{batch.where()}: the model cannot take this window: {error}") from error
    for index, (step, forced_step) in enumerate(zip(rollout, forced)):
        tally.add_frames(index, step.frame, batch.frames[:, context + index], forced_step.frame)
        tally.add_heads("", index, step, batch, context - 1 + index)
        tally.add_heads("teacher_forced_", index, forced_step, batch, context - 1 + index)
    tally.windows += len(batch.windows)
    tally.generated_frames += len(batch.windows) * steps
    tally.step_seconds += seconds


def warm_up(model: WorldModel, batch: WindowBatch, context: int, seed: int, device: str) -> None:
    """One untimed start and step on the first batch, with a generator of its own."""
    try:
        open_loop(model, batch, context, 1, torch.Generator(device=device).manual_seed(seed), device)
    except ContextError as error:
        raise RolloutEvaluationError(f"{batch.where()}: the model cannot take this window: {error}") from error


def check_settings(model: WorldModel, model_dir, context: int, steps: int, batch_size: int, max_episodes: int | None) -> None:
    if context < 1 or steps < 1 or batch_size < 1 or (max_episodes is not None and max_episodes < 1):
        raise RolloutEvaluationError(f"context {context}, steps {steps}, batch_size {batch_size}, max_episodes {max_episodes}: each must be at least 1")
    if context > model.max_context:
        name = getattr(model, "registry_name", type(model).__name__)
        raise RolloutEvaluationError(f"{model_dir}: model {name!r} takes a context of 1 to {model.max_context} frames, not {context}")


def progress_bar(enabled: bool) -> Progress:
    columns = [TextColumn("[bold]evaluate rollout"), BarColumn(), MofNCompleteColumn(), TextColumn("windows"), TimeElapsedColumn()]
    return Progress(*columns, disable=not enabled, transient=True)


def evaluate_rollout(
    model_dir: str | Path | torch.nn.Module,
    shards: Sequence[str | Path],
    context: int,
    steps: int,
    max_episodes: int | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    batch_size: int = 8,
) -> dict:
    """The world model in `model_dir` (or a WorldModel itself) rolled out from `context` real frames
    for `steps` recorded actions on the episode windows of `shards`: the run's settings and the figures
    the module docstring lists. device: default CUDA when there is one, else the CPU."""
    device = device or default_device()
    model = world_model(model_dir)
    check_settings(model, model_dir, context, steps, batch_size, max_episodes)
    model = model.to(device)
    try:
        shard_paths = shard_files(shards)
        total = expected_clips(shard_paths, max_episodes)
    except TokenizerEvaluationError as error:
        raise RolloutEvaluationError(str(error)) from error
    tally, skipped, generator = Tally(steps), [], torch.Generator(device=device).manual_seed(seed)
    with torch.inference_mode(), progress_bar(progress) as bar:
        task = bar.add_task("windows", total=total)
        for batch in batched(episode_windows(shard_paths, context + steps, max_episodes, skipped), batch_size, device):
            if tally.windows == 0:
                warm_up(model, batch, context, seed, device)
            evaluate_batch(model, batch, context, steps, generator, device, tally)
            bar.update(task, advance=len(batch.windows))
    if tally.windows == 0:
        undecodable = f" ({len(skipped)} samples could not be decoded)" if skipped else ""
        raise RolloutEvaluationError(f"{', '.join(shard_paths)}: no episode windows{undecodable}")
    settings = {"model_dir": str(model_dir), "model": getattr(model, "registry_name", type(model).__name__), "shards": shard_paths}
    settings |= {"context": context, "steps": steps, "windows": tally.windows, "seed": seed, "batch_size": batch_size, "device": str(device)}
    return settings | {"max_context": model.max_context} | tally.figures() | {"skipped": skipped}
