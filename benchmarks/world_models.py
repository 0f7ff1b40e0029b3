"""The three families of generative world models on one recorded Atari game, and the claims of their
papers at small scale.

Data: random-policy episodes of ALE/Breakout-v5 recorded with `reverie record --size 64 --square`
(64 x 64 px, its 4 actions) in clips of 64 frames: training episodes from seeds 0.. (at least 20k
frames), held-out episodes from seed 10_000 on, never seen in training. Every world model trains
through `reverie train` for the same budget (steps x batch of 8-frame windows, one learning rate);
the per-frame tokenizers of the token and latent models train before them on the same frames, for
as many steps of 16 frames. Rollouts are
`reverie.pretrain.rollout_evaluation` on the held-out windows: 4 real frames, then 50 recorded
actions open-loop, PSNR against the real frames per step; beside them the last-frame baseline
(copy the last context frame) and teacher-forced next-frame PSNR.

- GameNGen [23] Fig. 4: DIAMOND's pixel model without context noise, with GameNGen's context-noise
  augmentation, and the latent DiT with diffusion forcing (Oasis [24]), rolled out 50 steps, over
  12x the pixel models' 4-frame context and 6x the DiT's 8-frame training window. Claim: the noise
  variants keep a higher PSNR over the late steps (31-50) than the model without noise.
- DIAMOND [16] Sec. 3.3: the same U-Net as an EDM denoiser and as a noise-predicting DDPM, sampled
  at 1 and 3 steps. Claim: EDM at 1 step keeps its rollout where DDPM at 1 step does not.
- IRIS [14]: the token GPT's cross-entropy falls; its rollout PSNR per step.
- The families side by side (IRIS, DIAMOND, DiT forcing): rollout PSNR at steps 1, 10 and 50, and
  sampling FPS at 64 px, batch 1, on 1 and 2 CPU threads against the interactive 24 FPS.

Writes benchmarks/results/world_models.json and world_models.png (per-step PSNR curves and one
held-out rollout strip). About an hour on 2 CPU cores at the default budget.

    .venv/bin/python benchmarks/world_models.py
"""

from __future__ import annotations

import argparse
import csv
import glob
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import DATA, RESULTS, generated_once, machine, train_and_export, write_json
from reverie.nn.model_folder import load_model_folder
from reverie.nn.world_model import rollout
from reverie.pretrain.last_frame_world_model import LastFrameWorldModel, LastFrameWorldModelConfig
from reverie.pretrain.rollout_evaluation import episode_windows, evaluate_rollout
from reverie.shards.manifest import read_manifest
from world_model_figure import psnr_figure

GAME, ACTIONS, SIZE, CLIP_FRAMES = "ALE/Breakout-v5", 4, 64, 64
TRAIN_EPISODES, HELD_OUT_EPISODES, HELD_OUT_SEED = 120, 10, 10_000
CONTEXT, ROLLOUT_STEPS, WINDOW, BATCH, LR = 4, 50, 8, 4, 1e-3
TOKENIZER_WINDOW, TOKENIZER_BATCH = 2, 8  # per-frame tokenizers: 16 frames a step
FRAME = dict(frame_size=[SIZE, SIZE], action_space={"kind": "discrete", "n": ACTIONS})
PER_FRAME = dict(name="causal_video_autoencoder", temporal_compression=1, spatial_compression=8, patcher="none", channels=16,
                 channel_multipliers=[1, 2, 2, 2], num_res_blocks=1, mid_attention=False, l1_weight=0.0, mse_weight=1.0)  # fmt: skip
TOKENIZERS = {
    "continuous": PER_FRAME | dict(latent_channels=4),
    "discrete": PER_FRAME | dict(latent_channels=8, bottleneck="vq",
                                 quantizer={"codebook_size": 512, "codebook_dim": 8, "cosine_similarity": True, "dead_code_threshold": 0.5}),
}  # fmt: skip
DIAMOND = FRAME | dict(name="pixel_diffusion_world_model", context_frames=CONTEXT, channels=[32, 32, 64, 64], res_blocks=1,
                       attention=[False] * 4, cond_channels=128)  # fmt: skip
WORLD_MODELS = {  # name -> (model fields, the tokenizer it needs)
    "DIAMOND EDM": (DIAMOND, None),
    "DIAMOND EDM + context noise": (DIAMOND | dict(context_noise=True), None),
    "DIAMOND DDPM": (DIAMOND | dict(diffusion="ddpm"), None),
    "DiT diffusion forcing": (FRAME | dict(name="latent_diffusion_world_model", patch_size=2, width=128, depth=4, heads=4, max_frames=WINDOW,
                                           sampling_steps=10, schedule="autoregressive", stabilization_level=15), "continuous"),
    "IRIS GPT": (FRAME | dict(name="token_world_model", width=128, depth=4, heads=4, max_frames=WINDOW), "discrete"),
}  # fmt: skip
SAMPLING = {  # name in the results -> (trained model, denoising steps or None for the model's own)
    "DIAMOND EDM, 3 steps": ("DIAMOND EDM", 3),
    "DIAMOND EDM, 1 step": ("DIAMOND EDM", 1),
    "DIAMOND DDPM, 3 steps": ("DIAMOND DDPM", 3),
    "DIAMOND DDPM, 1 step": ("DIAMOND DDPM", 1),
    "DIAMOND EDM + context noise, 3 steps": ("DIAMOND EDM + context noise", 3),
    "DiT diffusion forcing, 10 steps": ("DiT diffusion forcing", None),
    "IRIS GPT": ("IRIS GPT", None),
}


def record_episodes(folder: Path) -> None:
    for split, seed, count in (("train", 0, TRAIN_EPISODES), ("held_out", HELD_OUT_SEED, HELD_OUT_EPISODES)):
        command = [sys.executable, "-m", "reverie.cli.main", "record", GAME, "--episodes", str(count), "--out", str(folder / split), "--seed",
                   str(seed), "--size", str(SIZE), "--square", "--clip-frames", str(CLIP_FRAMES), "--format", "npy"]  # fmt: skip
        subprocess.run(command, check=True)


def train_config(model: dict, shards: str | list[str], steps: int, window: int = WINDOW, batch_size: int = BATCH) -> dict:
    return {
        "task": "model",
        "model": model,
        "data": {"shards": shards, "window": window, "batch_size": batch_size, "num_workers": 0},
        "trainer": {"max_steps": steps, "accelerator": "cpu", "devices": 1, "log_every_n_steps": 10},
        "optim": {"lr": LR, "warmup_steps": 50},
        "ema": None,
        "checkpoint": {"every_n_steps": steps, "keep": 1},
    }


def slug(name: str) -> str:
    return "".join(character if character.isalnum() else "_" for character in name.lower())


def latent_scale(folder: Path, shards: str, frames: int = CLIP_FRAMES) -> float:
    """1 / the std of the tokenizer's latents on the first `frames` training frames, so the DiT diffuses unit-variance latents."""
    tokenizer = load_model_folder(folder).eval()
    (window,) = episode_windows(sorted(glob.glob(shards)), frames, 1, [])
    with torch.inference_mode():
        latents = tokenizer.encode(window.frames[None])
    return float(1 / latents.std())


def loss_curve(run_dir: Path, column: str) -> list[float]:
    with open(run_dir / "metrics.csv") as handle:
        return [float(row[column]) for row in csv.DictReader(handle) if row.get(column)]


def frames_per_second(model, window, threads: int, denoising_steps: int | None, steps: int = 12) -> float:
    """Sampled frames per second at batch 1 on `threads` CPU threads, after one untimed step."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if denoising_steps is not None:
            model.denoising_steps = denoising_steps
        with torch.inference_mode():
            model.start(window.frames[None, :CONTEXT], window.actions[None, : CONTEXT - 1], torch.Generator().manual_seed(0))
            model.step(window.actions[None, CONTEXT - 1])
            started = time.perf_counter()
            for index in range(steps):
                model.step(window.actions[None, CONTEXT + index])
            return steps / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)


def strip(model, window, denoising_steps: int | None) -> torch.Tensor:
    """(ROLLOUT_STEPS, 3, H, W): one held-out window rolled out open-loop."""
    if denoising_steps is not None:
        model.denoising_steps = denoising_steps
    with torch.inference_mode():
        steps = rollout(model, window.frames[None, :CONTEXT], window.actions[None, : CONTEXT - 1],
                        window.actions[None, CONTEXT - 1 :], ROLLOUT_STEPS, torch.Generator().manual_seed(0))  # fmt: skip
    return torch.stack([step.frame[0] for step in steps])


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800, help="training steps per model (batch 4 of 8-frame windows)")
    parser.add_argument("--windows", type=int, default=16, help="held-out windows rolled out")
    parser.add_argument("--out", type=Path, default=DATA / "world_models")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = generated_once(DATA / "breakout64", record_episodes, f"{GAME} episodes")
    train_shards, held_out = str(data / "train" / "shards" / "*.tar"), sorted(str(path) for path in (data / "held_out" / "shards").glob("*.tar"))
    train_frames = sum(line["length"] for line in read_manifest(data / "train" / "manifest.jsonl"))
    out = args.out / f"steps{args.steps}"
    tokenizers = {kind: train_and_export(train_config(model, train_shards, args.steps, TOKENIZER_WINDOW, TOKENIZER_BATCH), out, f"tokenizer_{kind}")
                  for kind, model in TOKENIZERS.items()}  # fmt: skip
    trained, seconds, losses = {}, {}, {}
    for name, (fields, tokenizer) in WORLD_MODELS.items():
        if tokenizer is not None:
            fields = fields | {"tokenizer": str(tokenizers[tokenizer][0])}
        if fields["name"] == "latent_diffusion_world_model":
            fields = fields | {"latent_scale": latent_scale(tokenizers[tokenizer][0], train_shards)}
        trained[name], seconds[name] = train_and_export(train_config(fields, train_shards, args.steps), out, slug(name))
        losses[name] = loss_curve(out / "runs" / slug(name), "tokens" if fields["name"] == "token_world_model" else "loss")
        print(f"{name}: trained {seconds[name]:.0f} s, loss {mean(losses[name][:5]):.4f} -> {mean(losses[name][-5:]):.4f}", flush=True)
    (window,) = episode_windows(held_out, CONTEXT + ROLLOUT_STEPS, 1, [])
    rollouts, speed, strips = {}, {}, {"real": window.frames[CONTEXT:]}
    baseline = LastFrameWorldModel(LastFrameWorldModelConfig(height=SIZE, width=SIZE, max_context=CONTEXT))
    for name, (source, denoising_steps) in {"last frame (baseline)": (None, None), **SAMPLING}.items():
        model = baseline if source is None else load_model_folder(trained[source]).eval()
        if denoising_steps is not None:
            model.denoising_steps = denoising_steps
        rollouts[name] = evaluate_rollout(model, held_out, CONTEXT, ROLLOUT_STEPS, args.windows, device="cpu", progress=False)
        speed[name] = {f"{threads}_threads": frames_per_second(model, window, threads, denoising_steps) for threads in (1, 2)}
        strips[name] = strip(model, window, denoising_steps)
        psnr = rollouts[name]["psnr"]
        print(f"{name}: rollout PSNR step 1 {psnr[0]:.2f}, 10 {psnr[9]:.2f}, 50 {psnr[49]:.2f} dB; teacher-forced "
              f"{mean(rollouts[name]['teacher_forced_psnr']):.2f} dB; {speed[name]['1_threads']:.1f} / {speed[name]['2_threads']:.1f} FPS "
              "(1 / 2 threads)", flush=True)  # fmt: skip
    report(rollouts, speed, strips, losses, seconds, train_frames, args, data)


def late_psnr(rollout_figures: dict) -> float:
    """Mean PSNR over steps 31-50, past the 20-30 steps where GameNGen's model without noise degrades."""
    return mean(rollout_figures["psnr"][30:50])


def late_drop(rollout_figures: dict) -> float:
    """Mean PSNR over steps 1-10 minus that over steps 31-50: what the rollout loses as it drifts."""
    return mean(rollout_figures["psnr"][:10]) - late_psnr(rollout_figures)


def report(rollouts: dict, speed: dict, strips: dict, losses: dict, seconds: dict, train_frames: int, args, data: Path) -> None:
    table = {name: {"psnr_step_1": figures["psnr"][0], "psnr_step_10": figures["psnr"][9], "psnr_step_50": figures["psnr"][49],
                    "mean_psnr": mean(figures["psnr"]), "psnr_steps_31_50": late_psnr(figures), "late_drop_db": late_drop(figures), "teacher_forced_psnr": mean(figures["teacher_forced_psnr"]),
                    "fps_1_thread": speed[name]["1_threads"], "fps_2_threads": speed[name]["2_threads"]} for name, figures in rollouts.items()}  # fmt: skip
    print(f"\n{'model':40s} {'step 1':>7s} {'step 10':>7s} {'step 50':>7s} {'31-50':>7s} {'drop':>6s} {'forced':>7s} {'FPS 1t':>7s} {'FPS 2t':>7s}")
    for name, row in table.items():
        print(f"{name:40s} {row['psnr_step_1']:7.2f} {row['psnr_step_10']:7.2f} {row['psnr_step_50']:7.2f} {row['psnr_steps_31_50']:7.2f} {row['late_drop_db']:6.2f} "
              f"{row['teacher_forced_psnr']:7.2f} {row['fps_1_thread']:7.1f} {row['fps_2_threads']:7.1f}")  # fmt: skip
    edm, noise, forcing = (table[name]["psnr_steps_31_50"] for name in ("DIAMOND EDM, 3 steps", "DIAMOND EDM + context noise, 3 steps", "DiT diffusion forcing, 10 steps"))
    claims = {
        "GameNGen: context noise beats no noise over steps 31-50 (PSNR)": noise > edm,
        "GameNGen: diffusion forcing beats no noise over steps 31-50 (PSNR)": forcing > edm,
        "DIAMOND: EDM at 1 step beats DDPM at 1 step (mean rollout PSNR)": table["DIAMOND EDM, 1 step"]["mean_psnr"] > table["DIAMOND DDPM, 1 step"]["mean_psnr"],
        "DIAMOND: EDM loses less than DDPM going from 3 steps to 1": table["DIAMOND EDM, 3 steps"]["mean_psnr"] - table["DIAMOND EDM, 1 step"]["mean_psnr"]
        < table["DIAMOND DDPM, 3 steps"]["mean_psnr"] - table["DIAMOND DDPM, 1 step"]["mean_psnr"],
        "IRIS: token cross-entropy falls by half": mean(losses["IRIS GPT"][-5:]) < 0.5 * mean(losses["IRIS GPT"][:5]),
    }  # fmt: skip
    interactive = [name for name, row in table.items() if row["fps_1_thread"] >= 24 and name != "last frame (baseline)"]
    for claim, held in claims.items():
        print(f"{'yes' if held else 'NO '}  {claim}")
    print(f"24 FPS on one thread at 64 px: {', '.join(interactive) or 'none'}")
    psnr_figure(RESULTS / "world_models.png", {name: figures["psnr"] for name, figures in rollouts.items()}, strips)
    write_json(RESULTS / "world_models.json", {
        "data": {"game": GAME, "size": SIZE, "training_episodes": TRAIN_EPISODES, "training_frames": train_frames, "held_out_episodes": HELD_OUT_EPISODES,
                 "held_out_seed": HELD_OUT_SEED, "held_out_windows": rollouts["IRIS GPT"]["windows"], "clip_frames": CLIP_FRAMES},
        "budget": {"steps": args.steps, "batch_size": BATCH, "window": WINDOW, "lr": LR, "torch_threads": 2},
        "rollout": {"context": CONTEXT, "steps": ROLLOUT_STEPS, "table": table, "per_step": rollouts},
        "training": {"seconds": seconds, "loss_first_5": {name: mean(curve[:5]) for name, curve in losses.items()},
                     "loss_last_5": {name: mean(curve[-5:]) for name, curve in losses.items()}},
        "claims": claims, "interactive_24_fps_one_thread": interactive, "machine": machine(), "figure": "world_models.png",
    })  # fmt: skip
    print(f"wrote {RESULTS / 'world_models.json'} and {RESULTS / 'world_models.png'}")


if __name__ == "__main__":
    main()
