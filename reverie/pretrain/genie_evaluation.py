"""Measure a Genie model ([18] Bruce et al. 2024, Sec. 3, "Metrics") on recorded episodes whose
actions it never saw: `evaluate_genie`, behind `reverie evaluate genie`.

The model is a `maskgit_dynamics` folder trained with a latent action model inside it
(`latent_action_model: PATH`, `reverie.pretrain.frozen_latent_actions`). The episodes are recorded
episode shards (`reverie record`); each sample (a clip of one episode, so never across a reset) is
cut into consecutive windows of 1 + t frames, x_0 .. x_t (t = `horizon`, Genie: 4), up to
`max_windows`, read in the order given: the same windows every run.

- Controllability, Genie's Delta_t PSNR. From x_0 alone the dynamics model generates t frames
  twice: with the latent actions the LAM infers from the real window, a_{0..t-1} = LAM(x_0 .. x_t),
  and with latent actions drawn uniformly from the |A| codes. Then

      Delta_t PSNR = PSNR(x_t, x^_t) - PSNR(x_t, x^'_t),

  per window, reported as the mean with a 95% interval (mean +- 1.96 standard errors over the
  windows) and the PSNR of each rollout per step. Both rollouts draw from generators of the same
  seed, so their sampling noise is paired and only the actions differ. Above 0: the inferred
  actions steer the generated frames toward what really happened. Beside them, at frame t, the
  ceiling of the tokenizer's round trip of x_t and the trivial baseline of copying x_0.
- Latent and true actions (`reverie.pretrain.latent_action_metrics`): over every transition of the
  windows, the NMI between the LAM's codes and the withheld recorded actions, beside a shuffled
  baseline; a linear probe from the continuous latent action to the recorded action, fit on the
  even windows and scored on the odd ones, beside the majority-class baseline; the joint counts.
- Codebook use of the LAM on those transitions: the share of codes taken and their perplexity.
- Generated frames per second: the batched rollouts' frames over the seconds spent in `step`, and
  one window's rollout at batch 1 (after one untimed rollout).

`latent_action_grid` gives the frames of Genie's Fig. 1-style grid: one start frame, each latent
action held for some steps (`latent_action_panels`: as images, for `reverie evaluate genie --gif`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reverie.nn.model_folder import load_model_folder
from reverie.pretrain.latent_action_metrics import codebook_use, joint_counts, linear_probe, normalized_mutual_information, shuffled_nmi
from reverie.pretrain.maskgit_dynamics import MaskGITDynamics
from reverie.pretrain.rollout_evaluation import EpisodeWindow, batched
from reverie.tokenizers import metrics
from reverie.tokenizers.evaluate import TokenizerEvaluationError, default_device, frame_samples, shard_files

GENIE_HORIZON = 4  # Genie reports Delta_t PSNR at t = 4


class GenieEvaluationError(ValueError):
    """A model or shards a Genie evaluation cannot run on; names the folder, file or setting."""


def genie_model(model_or_folder: torch.nn.Module | str | Path) -> MaskGITDynamics:
    """The Genie dynamics model (with its latent action model) a folder holds, or the model itself once checked."""
    model = load_model_folder(model_or_folder) if isinstance(model_or_folder, (str, Path)) else model_or_folder
    name = getattr(model, "registry_name", type(model).__name__)
    if not isinstance(model, MaskGITDynamics):
        raise GenieEvaluationError(f"{model_or_folder}: model {name!r} is not Genie's dynamics model (maskgit_dynamics)")
    if model.latent_actions is None:
        raise GenieEvaluationError(
            f"{model_or_folder}: a maskgit_dynamics model trained without a latent action model; Genie's metrics need the "
            "LAM that labelled its training (train it with model.latent_action_model=LAM_FOLDER)"
        )
    return model


def genie_windows(shards: Sequence[str], horizon: int, max_windows: int | None, skipped: list[str]) -> Iterator[EpisodeWindow]:
    """Consecutive windows of 1 + horizon frames of each sample, with its recorded actions."""
    count = 0
    samples = frame_samples(shards, horizon + 1, None, skipped, "evaluate Genie on recorded frame shards", "of a window")
    for shard, sample in samples:
        if sample.get("actions") is None:
            raise GenieEvaluationError(f"{shard}: sample {sample['key']}: no recorded actions; the latent actions are compared with them")
        for first in range(0, len(sample["frames"]) - horizon, horizon + 1):
            if max_windows is not None and count >= max_windows:
                return
            cut = slice(first, first + horizon + 1)
            yield EpisodeWindow(shard, f"{sample['key']}@{first}", sample["frames"][cut], sample["actions"][cut], None, None)
            count += 1


def generate(model: MaskGITDynamics, first_frames: torch.Tensor, actions: torch.Tensor, seed: int, device: str) -> tuple[torch.Tensor, float]:
    """Frames (B, t, 3, H, W) generated from first frames (B, 3, H, W) with actions (B, t), and the seconds spent in `step`."""
    model.start(first_frames[:, None], None, torch.Generator(device=device).manual_seed(seed))
    frames, seconds = [], 0.0
    for index in range(actions.shape[1]):
        step, step_seconds = metrics.timed(lambda: model.step(actions[:, index]), device)
        frames.append(step.frame)
        seconds += step_seconds
    return torch.stack(frames, dim=1), seconds


def interval(values: torch.Tensor) -> dict:
    """Mean and 95% interval (normal, 1.96 standard errors) of per-window values (N,)."""
    mean = float(values.mean())
    half = 1.96 * float(values.std()) / math.sqrt(len(values)) if len(values) > 1 else math.inf
    return {"mean": mean, "ci95": [mean - half, mean + half], "windows": len(values)}


def latent_action_grid(model: MaskGITDynamics, frame: torch.Tensor, steps: int, seed: int = 0) -> torch.Tensor:
    """(|A|, 1 + steps, 3, H, W): from one frame (3, H, W), each latent action held for `steps` steps."""
    actions = model.config.num_actions
    with torch.inference_mode():
        held = torch.arange(actions, device=frame.device)[:, None].expand(actions, steps)
        frames, _ = generate(model, frame[None].expand(actions, -1, -1, -1), held, seed, str(frame.device))
    return torch.cat([frame[None, None].expand(actions, 1, -1, -1, -1), frames], dim=1)


def latent_action_panels(model: MaskGITDynamics, shards: Sequence[str], steps: int, seed: int = 0) -> list[np.ndarray]:
    """The grid of the shards' first window's start frame as |A| panels (1 + steps, H, W, 3) uint8, one per latent action."""
    frame = first_window(shard_files(shards), 1).frames[0].to(model.code_head.weight.device)
    grid = latent_action_grid(model, frame, steps, seed)
    return list((grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy())


def progress_bar(enabled: bool) -> Progress:
    columns = [TextColumn("[bold]evaluate genie"), BarColumn(), MofNCompleteColumn(), TextColumn("windows"), TimeElapsedColumn()]
    return Progress(*columns, disable=not enabled, transient=True)


def evaluate_genie(
    model_dir: str | Path | torch.nn.Module, shards: Sequence[str | Path], horizon: int = GENIE_HORIZON, max_windows: int | None = None,
    seed: int = 0, device: str | None = None, batch_size: int = 16, progress: bool = True,
) -> dict:  # fmt: skip
    """The module docstring's figures for the Genie model in `model_dir` on the windows of `shards`."""
    if horizon < 1 or batch_size < 1 or (max_windows is not None and max_windows < 2):
        raise GenieEvaluationError(f"horizon {horizon}, batch_size {batch_size}, max_windows {max_windows}: horizon and batch >= 1, windows >= 2")
    device = device or default_device()
    model = genie_model(model_dir).to(device)
    if horizon >= model.max_context:
        raise GenieEvaluationError(f"horizon {horizon}: {model_dir} holds windows of {model.max_context} frames; give a horizon below it")
    psnr = {"inferred": [], "random": [], "tokenizer": [], "first_frame": []}
    codes, latents, labels, window_ids, skipped, seconds, generated = [], [], [], [], [], 0.0, 0
    random_actions = torch.Generator().manual_seed(seed + 1)
    try:
        shard_paths = shard_files(shards)
        with torch.inference_mode(), progress_bar(progress) as bar:
            task = bar.add_task("windows", total=max_windows)
            for batch in batched(genie_windows(shard_paths, horizon, max_windows, skipped), batch_size, device):
                inferred = model.latent_actions.infer(batch.frames)  # (B, t)
                chance = torch.randint(0, model.config.num_actions, inferred.shape, generator=random_actions).to(device)
                for name, actions in (("inferred", inferred), ("random", chance)):
                    frames, step_seconds = generate(model, batch.frames[:, 0], actions, seed, device)
                    psnr[name].append(metrics.psnr(frames, batch.frames[:, 1:]).cpu())  # (B, t)
                    seconds, generated = seconds + step_seconds, generated + frames.shape[0] * frames.shape[1]
                last = batch.frames[:, -1:]
                psnr["tokenizer"].append(metrics.psnr(model.tokenizer.decode(model.tokenizer.encode(last)), last).cpu()[:, 0])
                psnr["first_frame"].append(metrics.psnr(batch.frames[:, 0], batch.frames[:, -1]).cpu())
                codes.append(inferred.flatten().cpu())
                latents.append(model.latent_actions.latents(batch.frames).flatten(0, 1).cpu())
                labels.append(batch.actions[:, :horizon].flatten().cpu().long())
                window_ids.append((len(window_ids) * batch_size + torch.arange(len(batch.windows))).repeat_interleave(horizon))
                bar.update(task, advance=len(batch.windows))
    except TokenizerEvaluationError as error:
        raise GenieEvaluationError(str(error)) from error
    if not codes:
        raise GenieEvaluationError(f"{', '.join(shard_paths)}: no windows of {horizon + 1} frames")
    psnr = {name: torch.cat(values) for name, values in psnr.items()}  # (N, t)
    codes, latents, labels, window_ids = torch.cat(codes), torch.cat(latents), torch.cat(labels), torch.cat(window_ids)
    train = window_ids % 2 == 0
    return {
        "model_dir": str(model_dir), "shards": shard_paths, "horizon": horizon, "seed": seed, "device": str(device), "batch_size": batch_size,
        "windows": len(psnr["inferred"]), "num_actions": model.config.num_actions,
        "delta_psnr": interval(psnr["inferred"][:, -1] - psnr["random"][:, -1]),
        "psnr_inferred_actions": psnr["inferred"].mean(0).tolist(), "psnr_random_actions": psnr["random"].mean(0).tolist(),
        "psnr_tokenizer_at_t": float(psnr["tokenizer"].mean()), "psnr_first_frame_at_t": float(psnr["first_frame"].mean()),
        "transitions": len(codes), "nmi": normalized_mutual_information(codes, labels),
        "nmi_shuffled": shuffled_nmi(codes, labels, torch.Generator().manual_seed(seed)),
        "linear_probe": linear_probe(latents[train], labels[train], latents[~train], labels[~train]),
        "codes_by_true_action": joint_counts(codes, labels).long().tolist(),
        "latent_action_use": codebook_use(codes, model.config.num_actions),
        "generated_frames_per_second": generated / seconds, "frames_per_second_batch_1": batch_one_fps(model, first_window(shard_paths, horizon), seed, device),
        "skipped": skipped,
    }  # fmt: skip


def first_window(shards: Sequence[str], horizon: int) -> EpisodeWindow:
    """The first window of 1 + horizon frames of the shards."""
    return next(genie_windows(shards, horizon, 1, []))


def batch_one_fps(model: MaskGITDynamics, window: EpisodeWindow, seed: int, device: str) -> float:
    """Generated frames per second of one window's rollout of t latent actions at batch 1, after one untimed rollout."""
    frames = window.frames[None].to(device)
    with torch.inference_mode():
        actions = model.latent_actions.infer(frames)
        generate(model, frames[:, 0], actions, seed, device)
        _, seconds = generate(model, frames[:, 0], actions, seed, device)
    return actions.shape[1] / seconds
