"""Video tokenizers against each other and against H.264 and bilinear resampling, on held-out clips.

Data: random-policy episodes of MuJoCo's HalfCheetah, Swimmer and Ant (square renders), recorded
with `reverie record` at 64 px in clips of 17 frames (1 + 16), episodes cut at 400 steps. Training
clips come from the episodes of seeds 0.., held-out clips from one other episode per env (seed
10_000; up to 23 clips each, fewer where the episode ends early): clips of the kind the tokenizers
were trained on, never seen in training.

Tokenizers, each trained through `reverie train` for the same budget (steps x batch of 17-frame
clips, the same learning rate and schedule), then measured by `reverie.tokenizers.evaluate`:
- the causal video autoencoder ([25] Cosmos-Tokenizer CV) at 4x8x8, continuous (16 channels);
- the same encoder with discrete bottlenecks: FSQ [8,5,5,5] (1000 codes), VQ (1024 cosine
  codes of width 8, dead-code restart) and LFQ (MAGVIT-v2, 2^10 codes);
- Genie's ST-ViViT ([18]) with a 1024-code VQ and 8 px patches;
- the per-frame 2D autoencoder (`frame_autoencoder`, stride 8) with about the causal model's latent
  count per clip: the temporal redundancy claim is that the causal 3D model reconstructs better.
Beside them, on the same held-out clips: H.264 (libx264, two-pass, at each discrete tokenizer's
bits per pixel) and bilinear down-and-up sampling to the continuous model's values per pixel.

Writes benchmarks/results/tokenizers.json and tokenizers.png (one held-out clip's frames 0, 8 and
16 through each). Runs in about half an hour on 2 CPU cores (`--steps` sets the budget).

    .venv/bin/python benchmarks/video_tokenizers.py

(Named video_tokenizers.py: a benchmarks/tokenizers.py, first on sys.path when run, would shadow
Hugging Face's `tokenizers` package, which transformers imports.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from common import DATA, RESULTS, generated_once, machine, train_and_export, write_json
from reverie.nn.model_folder import load_model_folder
from reverie.tokenizers import metrics
from reverie.tokenizers.evaluate import evaluate_tokenizer, held_out_clips, shard_files
from reverie.tokenizers.reference_codecs import bilinear_roundtrip, h264_roundtrip

GAMES = {"HalfCheetah-v5": 6, "Swimmer-v5": 4, "Ant-v5": 4}  # env -> training episodes
HELD_OUT_EPISODES, HELD_OUT_SEED, MAX_STEPS = 1, 10_000, 400
CLIP_FRAMES, SIZE, FPS = 17, 64, 15.0
# MSE rather than L1 for the causal models: on these clips it gave 25.3 dB against L1's 24.1 dB.
CAUSAL = dict(name="causal_video_autoencoder", temporal_compression=4, spatial_compression=8, patcher="haar", patch_size=4,
              channels=32, channel_multipliers=[1, 2], num_res_blocks=1, latent_channels=16, l1_weight=0.0, mse_weight=1.0)  # fmt: skip
TOKENIZERS = {
    "causal AE 4x8x8": CAUSAL,
    # [8,5,5,5]: 1000 codes, the bits per latent of VQ's 1024 and LFQ's 2^10 (Cosmos DV's [8,8,8,5,5,5] has 64 000)
    "causal FSQ 4x8x8": CAUSAL | dict(latent_channels=4, bottleneck="fsq", quantizer={"levels": [8, 5, 5, 5]}),
    # 8-wide codes and a restart below half a use per batch: 78% of the codes hit, against 66% with 16-wide codes and 2.0
    "causal VQ 4x8x8": CAUSAL | dict(bottleneck="vq", quantizer={"codebook_size": 1024, "codebook_dim": 8, "cosine_similarity": True,
                                                                 "dead_code_threshold": 0.5}),
    "causal LFQ 4x8x8": CAUSAL | dict(latent_channels=10, bottleneck="lfq", quantizer={"bits": 10}),
    "ST-ViViT p8": dict(name="st_vivit_tokenizer", patch_size=8, encoder_width=64, encoder_depth=2, encoder_heads=4, decoder_width=64,
                        decoder_depth=2, decoder_heads=4, latent_dim=16, codebook_size=1024, quantizer={"dead_code_threshold": 2.0}),
    # 5 channels at 8x8 per frame: 17 x 320 = 5440 latent values a clip, against the causal AE's 5 x 16 x 64 = 5120
    "per-frame 2D AE": dict(name="frame_autoencoder", channels=[32, 64, 64], latent_channels=5),
}  # fmt: skip


def record_clips(folder: Path) -> None:
    for env_id, episodes in GAMES.items():
        name = env_id.split("/")[-1]
        for split, seed, count in (("train", 0, episodes), ("held_out", HELD_OUT_SEED, HELD_OUT_EPISODES)):
            command = [sys.executable, "-m", "reverie.cli.main", "record", env_id, "--episodes", str(count), "--out", str(folder / split / name),
                       "--policy", "random", "--seed", str(seed), "--size", str(SIZE), "--clip-frames", str(CLIP_FRAMES), "--format", "npy",
                       "--max-steps", str(MAX_STEPS)]  # fmt: skip
            subprocess.run(command, check=True, env=os.environ | {"MUJOCO_GL": "egl"})


def train_config(model: dict, shards: str, steps: int) -> dict:
    return {
        "task": "model",
        "model": model,
        "data": {"shards": shards, "window": CLIP_FRAMES, "batch_size": 4, "num_workers": 0},
        "trainer": {"max_steps": steps, "accelerator": "cpu", "devices": 1, "log_every_n_steps": 10},
        "optim": {"lr": 1e-3, "warmup_steps": 50},
        "checkpoint": {"every_n_steps": steps, "keep": 1},
    }


def train(name: str, model: dict, data: Path, out: Path, steps: int) -> tuple[Path, float]:
    """Train through `reverie train`, export; the model folder and the training wall time."""
    slug = name.lower().replace(" ", "_").replace("-", "_")
    return train_and_export(train_config(model, f"{data}/train/*/shards/*.tar", steps), out, slug)


def held_out(data: Path, max_clips: int) -> list[torch.Tensor]:
    shards = shard_files([str(path) for path in sorted((data / "held_out").glob("*/shards/*.tar"))])
    return [clip.frames for clip in held_out_clips(shards, CLIP_FRAMES, max_clips, [])]


def per_frame_autoencoder(folder: Path, clips: list[torch.Tensor]) -> dict:
    """The 2D model through its own encode/decode (it is per frame: no compression in time)."""
    model = load_model_folder(folder).eval()
    psnr, ssim, values = [], [], 0
    with torch.inference_mode():
        for clip in clips:
            latents = model.encode(clip[None])
            reconstruction = model.decode(latents).clamp(0, 1)[0]
            psnr.append(metrics.psnr(reconstruction, clip)), ssim.append(metrics.ssim(reconstruction, clip))
            values = latents[0].numel()
    frames, _, height, width = clips[0].shape
    return {"psnr": float(torch.cat(psnr).mean()), "ssim": float(torch.cat(ssim).mean()), "latent_values_per_pixel": values / (frames * height * width)}


def as_uint8(clip: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) floats in [0, 1] -> (T, H, W, 3) uint8, as the reference codecs take frames."""
    return (clip.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def as_clip(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) floats in [0, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


def reference(clips: list[torch.Tensor], bpp: float | None, values_per_pixel: float | None) -> dict:
    """H.264 at `bpp` or bilinear at `values_per_pixel` on the clips: PSNR, SSIM, the achieved bpp."""
    psnr, ssim, achieved = [], [], []
    for clip in clips:
        frames = as_uint8(clip)
        if bpp is not None:
            decoded, rate = h264_roundtrip(frames, bpp, FPS)
            achieved.append(rate)
        else:
            decoded = bilinear_roundtrip(frames, values_per_pixel)
        reconstruction = as_clip(decoded)
        psnr.append(metrics.psnr(reconstruction, clip)), ssim.append(metrics.ssim(reconstruction, clip))
    figures = {"psnr": float(torch.cat(psnr).mean()), "ssim": float(torch.cat(ssim).mean())}
    return figures | ({"target_bpp": bpp, "bits_per_pixel": float(np.mean(achieved))} if bpp is not None else {"latent_values_per_pixel": values_per_pixel})


def contact_sheet(path: Path, clip: torch.Tensor, rows: dict[str, torch.Tensor]) -> None:
    """Frames 0, 8 and 16 of one held-out clip, the original on top, one row per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [0, CLIP_FRAMES // 2, CLIP_FRAMES - 1]
    rows = {"original": clip} | rows
    figure, axes = plt.subplots(len(rows), len(shown), figsize=(1.6 * len(shown) + 1.6, 1.6 * len(rows)))
    for row, (name, frames) in enumerate(rows.items()):
        for column, index in enumerate(shown):
            axes[row, column].imshow(frames[index].permute(1, 2, 0).clamp(0, 1).numpy())
            axes[row, column].set_xticks([]), axes[row, column].set_yticks([])
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    for column, index in enumerate(shown):
        axes[0, column].set_title(f"frame {index}", fontsize=8)
    figure.tight_layout()
    partial = path.with_name(path.name + ".tmp.png")
    figure.savefig(partial, dpi=110)
    plt.close(figure)
    os.replace(partial, path)


def reconstruct(folder: Path, clip: torch.Tensor) -> torch.Tensor:
    model = load_model_folder(folder).eval()
    with torch.inference_mode():
        if getattr(model, "discrete", False):
            return model.decode_indices(model.tokenize(clip[None]))[0, : len(clip)]
        return model.decode(model.encode(clip[None]))[0, : len(clip)].clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800, help="training steps per tokenizer (batch 4 of 17-frame clips)")
    parser.add_argument("--max-clips", type=int, default=69, help="held-out clips measured (23 per env)")
    parser.add_argument("--out", type=Path, default=DATA / "tokenizers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = generated_once(DATA / "tokenizer_clips", record_clips, "MuJoCo clips")
    clips = held_out(data, args.max_clips)
    held_out_shards = sorted(str(path) for path in (data / "held_out").glob("*/shards/*.tar"))
    results, sheet = {}, {}
    for name, model in TOKENIZERS.items():
        folder, seconds = train(name, model, data, args.out / f"steps{args.steps}", args.steps)
        if model["name"] == "frame_autoencoder":
            figures = per_frame_autoencoder(folder, clips)
        else:
            figures = evaluate_tokenizer(folder, held_out_shards, CLIP_FRAMES, args.max_clips, batch_size=4, device="cpu", progress=False)
        results[name] = figures | {"train_seconds": seconds}
        sheet[name] = reconstruct(folder, clips[0])
        print(f"{name}: PSNR {figures['psnr']:.2f} dB, SSIM {figures['ssim']:.3f}, bpp {figures.get('bits_per_pixel')}, "
              f"codes hit {figures.get('codebook_usage')}, trained {seconds:.0f} s", flush=True)  # fmt: skip
    references = {}
    for name, figures in results.items():
        if figures.get("bits_per_pixel"):
            references[f"H.264 at {name}'s bpp"] = reference(clips, figures["bits_per_pixel"], None)
    references["bilinear at the causal AE's values per pixel"] = reference(clips, None, results["causal AE 4x8x8"]["latent_values_per_pixel"])
    for name, figures in references.items():
        print(f"{name}: PSNR {figures['psnr']:.2f} dB, SSIM {figures['ssim']:.3f}, bpp {figures.get('bits_per_pixel')}", flush=True)
    best = max((name for name in results if results[name].get("bits_per_pixel")), key=lambda name: results[name]["psnr"])
    h264, _ = h264_roundtrip(as_uint8(clips[0]), results[best]["bits_per_pixel"], FPS)
    sheet[f"H.264 ({best}'s bpp)"] = as_clip(h264)
    contact_sheet(RESULTS / "tokenizers.png", clips[0], sheet)
    claims = {
        "causal 3D beats per-frame 2D at about the same latent count (PSNR)": results["causal AE 4x8x8"]["psnr"] > results["per-frame 2D AE"]["psnr"],
        "FSQ uses >= 90% of its codes": results["causal FSQ 4x8x8"]["codebook_usage"] >= 0.9,
        "VQ with restarts uses >= 80% of its codes": results["causal VQ 4x8x8"]["codebook_usage"] >= 0.8,
        f"the best discrete tokenizer ({best}) beats H.264 at its bpp (PSNR)": results[best]["psnr"] > references[f"H.264 at {best}'s bpp"]["psnr"],
    }
    for claim, held in claims.items():
        print(f"{'yes' if held else 'NO '}  {claim}")
    write_json(RESULTS / "tokenizers.json", {
        "data": {"games": list(GAMES), "training_episodes": GAMES, "held_out_episodes": HELD_OUT_EPISODES, "held_out_seed": HELD_OUT_SEED,
                 "clip_frames": CLIP_FRAMES, "size": SIZE, "held_out_clips": len(clips), "max_steps_per_episode": MAX_STEPS},
        "budget": {"steps": args.steps, "batch_size": 4, "lr": 1e-3, "torch_threads": 1},
        "tokenizers": results, "references": references, "claims": claims, "machine": machine(), "figure": "tokenizers.png",
    })  # fmt: skip
    print(f"wrote {RESULTS / 'tokenizers.json'} and {RESULTS / 'tokenizers.png'}")


if __name__ == "__main__":
    main()
