"""Genie [18] from unlabeled Atari video: a per-frame VQ tokenizer, then the latent action model,
then the MaskGIT dynamics model on the LAM's labels, each through `reverie train`; measured on
held-out episodes with the actions that training never saw.

Data: random-policy episodes of three ALE games (Breakout, Pong, SpaceInvaders) recorded with
`reverie record --size 64 --square` in clips of 32 frames, at least 50k training frames in all
from seeds 0..; held-out episodes from seed 10_000. The recorded actions are withheld: the LAM
trains on frames alone, the dynamics model on the LAM's codes, and the actions are read only by
the evaluation.

Measured per game on up to `--windows` held-out windows of 5 frames (`reverie.pretrain.genie_evaluation`):
- controllability, Genie's Delta_t PSNR at t = 4 with its 95% interval: PSNR of frame 4 generated
  from frame 0 with the LAM's inferred latent actions minus that with random latent actions; the
  claim is an interval above 0. Beside it the PSNR of copying frame 0 (the trivial baseline) and
  of the tokenizer's round trip of frame 4 (the ceiling of any frame the dynamics model decodes);
- the NMI between latent codes and true actions beside a shuffled baseline, and a linear probe's
  accuracy beside the majority class;
- the LAM's codebook use and the generated frames per second (batch 1 and batched, 2 threads).
Both action conditionings of the dynamics model train on the same LAM and data: Genie's "add" and
Jasmine's "prepend". Writes benchmarks/results/genie.json and genie.gif (per game, one start frame
with each of the 8 latent actions held for 8 steps).

    .venv/bin/python benchmarks/genie.py
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
from pathlib import Path

import torch

from common import DATA, RESULTS, generated_once, machine, train_and_export, write_json
from reverie.nn.model_folder import load_model_folder
from reverie.planning.control import write_gif
from reverie.pretrain.genie_evaluation import evaluate_genie, latent_action_panels
from reverie.shards.manifest import read_manifest
from world_models import LR, loss_curve, mean, train_config

GAMES = {"breakout": ("ALE/Breakout-v5", 100), "pong": ("ALE/Pong-v5", 20), "spaceinvaders": ("ALE/SpaceInvaders-v5", 30)}  # name -> (id, episodes)
HELD_OUT_EPISODES, HELD_OUT_SEED, SIZE, CLIP_FRAMES = 4, 10_000, 64, 32
WINDOW, BATCH, GRID_STEPS = 8, 8, 8
TOKENIZER = dict(name="causal_video_autoencoder", temporal_compression=1, spatial_compression=8, patcher="none", channels=16,
                 channel_multipliers=[1, 2, 2, 2], num_res_blocks=1, mid_attention=False, l1_weight=0.0, mse_weight=1.0, latent_channels=8,
                 bottleneck="vq", quantizer={"codebook_size": 512, "codebook_dim": 8, "cosine_similarity": True, "dead_code_threshold": 0.5})  # fmt: skip
LAM = dict(name="latent_action_model", input="pixels", patch_size=8, encoder_width=128, encoder_depth=3, encoder_heads=4, decoder_width=128,
           decoder_depth=3, decoder_heads=4, latent_dim=32, num_actions=8, reset_after_steps=50)  # fmt: skip
DYNAMICS = dict(name="maskgit_dynamics", frame_size=[SIZE, SIZE], num_actions=8, width=128, depth=4, heads=4, max_frames=WINDOW,
                sampling_steps=8, sampling_temperature=1.0)  # fmt: skip
CONDITIONINGS = ("add", "prepend")


def record_games(folder: Path) -> None:
    for name, (game, episodes) in GAMES.items():
        for split, seed, count in (("train", 0, episodes), ("held_out", HELD_OUT_SEED, HELD_OUT_EPISODES)):
            command = [sys.executable, "-m", "reverie.cli.main", "record", game, "--episodes", str(count), "--out", str(folder / name / split),
                       "--seed", str(seed), "--size", str(SIZE), "--square", "--clip-frames", str(CLIP_FRAMES), "--format", "npy"]  # fmt: skip
            subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200, help="training steps of the LAM (batch 8 of 8-frame windows)")
    parser.add_argument("--dynamics-steps", type=int, help="training steps of each dynamics model (default: --steps)")
    parser.add_argument("--tokenizer-steps", type=int, default=800, help="training steps of the tokenizer (batch 8 of 2-frame windows)")
    parser.add_argument("--windows", type=int, default=128, help="held-out windows per game")
    parser.add_argument("--out", type=Path, default=DATA / "genie")
    args = parser.parse_args()
    args.dynamics_steps = args.dynamics_steps or args.steps
    torch.set_num_threads(2)
    data = generated_once(DATA / "genie_atari", record_games, "Atari episodes of three games")
    train_shards = [str(data / name / "train" / "shards" / "*.tar") for name in GAMES]
    held_out = {name: sorted(glob.glob(str(data / name / "held_out" / "shards" / "*.tar"))) for name in GAMES}
    train_frames = {name: sum(line["length"] for line in read_manifest(data / name / "train" / "manifest.jsonl")) for name in GAMES}
    out = args.out / f"steps{args.steps}"
    tokenizer, seconds = train_and_export(train_config(TOKENIZER, train_shards, args.tokenizer_steps, 2, BATCH), out, "tokenizer")
    lam, seconds_lam = train_and_export(train_config(LAM, train_shards, args.steps, WINDOW, BATCH), out, "lam")
    seconds, losses = {"tokenizer": seconds, "lam": seconds_lam}, {"lam": loss_curve(out / "runs" / "lam", "loss")}
    results, models = {}, {}
    for conditioning in CONDITIONINGS:
        fields = DYNAMICS | {"tokenizer": str(tokenizer), "latent_action_model": str(lam), "action_conditioning": conditioning}
        slug = f"dynamics_{conditioning}_{args.dynamics_steps}"
        folder, seconds[conditioning] = train_and_export(train_config(fields, train_shards, args.dynamics_steps, WINDOW, BATCH), out, slug)
        losses[conditioning] = loss_curve(out / "runs" / slug, "tokens")
        models[conditioning] = load_model_folder(folder).eval()
        results[conditioning] = {name: evaluate_genie(models[conditioning], shards, max_windows=args.windows, device="cpu", progress=False)
                                 for name, shards in held_out.items()}  # fmt: skip
        for name, figures in results[conditioning].items():
            delta = figures["delta_psnr"]
            print(f"{conditioning} {name}: Delta_t PSNR {delta['mean']:.2f} dB [{delta['ci95'][0]:.2f}, {delta['ci95'][1]:.2f}]; NMI {figures['nmi']:.3f} "
                  f"(shuffled {figures['nmi_shuffled']:.3f}); probe {figures['linear_probe']['accuracy']:.3f} (majority "
                  f"{figures['linear_probe']['majority_baseline']:.3f})", flush=True)  # fmt: skip
    write_gif(RESULTS / "genie.gif", [latent_action_panels(models["prepend"], shards, GRID_STEPS) for shards in held_out.values()], fps=4)
    report(results, seconds, losses, train_frames, args)


def report(results: dict, seconds: dict, losses: dict, train_frames: dict, args) -> None:
    print(f"\n{'model':9s} {'game':14s} {'dt PSNR':>8s} {'95% interval':>16s} {'PSNR a^':>8s} {'PSNR rnd':>8s} {'copy x0':>8s} {'tokens':>7s} {'NMI':>6s} "
          f"{'shuf':>6s} {'probe':>6s} {'major':>6s} {'codes':>6s} {'FPS b1':>7s}")  # fmt: skip
    for conditioning, games in results.items():
        for name, row in games.items():
            delta, probe = row["delta_psnr"], row["linear_probe"]
            print(f"{conditioning:9s} {name:14s} {delta['mean']:8.2f} [{delta['ci95'][0]:6.2f}, {delta['ci95'][1]:6.2f}] {row['psnr_inferred_actions'][-1]:8.2f} "
                  f"{row['psnr_random_actions'][-1]:8.2f} {row['psnr_first_frame_at_t']:8.2f} {row['psnr_tokenizer_at_t']:7.2f} {row['nmi']:6.3f} {row['nmi_shuffled']:6.3f} {probe['accuracy']:6.3f} "
                  f"{probe['majority_baseline']:6.3f} {row['latent_action_use']['fraction_used']:6.2f} {row['frames_per_second_batch_1']:7.1f}")  # fmt: skip
    claims = {}
    for conditioning, games in results.items():
        for name, row in games.items():
            claims[f"{conditioning}, {name}: Delta_t PSNR's 95% interval lies above 0"] = row["delta_psnr"]["ci95"][0] > 0
            claims[f"{conditioning}, {name}: NMI of latent and true actions above the shuffled baseline"] = row["nmi"] > row["nmi_shuffled"]
            claims[f"{conditioning}, {name}: the linear probe beats the majority class"] = row["linear_probe"]["accuracy"] > row["linear_probe"]["majority_baseline"]
    for claim, held in claims.items():
        print(f"{'yes' if held else 'NO '}  {claim}")
    mean_delta = {conditioning: mean([row["delta_psnr"]["mean"] for row in games.values()]) for conditioning, games in results.items()}
    print(f"mean Delta_t PSNR over the games: " + ", ".join(f"{name} {value:.2f} dB" for name, value in mean_delta.items()))
    write_json(RESULTS / "genie.json", {
        "data": {"games": {name: game for name, (game, _) in GAMES.items()}, "size": SIZE, "clip_frames": CLIP_FRAMES, "training_frames": train_frames,
                 "held_out_episodes_per_game": HELD_OUT_EPISODES, "held_out_seed": HELD_OUT_SEED, "actions_in_training": False},
        "budget": {"lam_steps": args.steps, "dynamics_steps": args.dynamics_steps, "tokenizer_steps": args.tokenizer_steps, "batch_size": BATCH, "window": WINDOW, "lr": LR, "torch_threads": 2},
        "models": {"tokenizer": TOKENIZER, "lam": LAM, "dynamics": DYNAMICS},
        "results": results, "mean_delta_psnr": mean_delta,
        "training": {"seconds": seconds, "loss_first_5": {name: mean(curve[:5]) for name, curve in losses.items()},
                     "loss_last_5": {name: mean(curve[-5:]) for name, curve in losses.items()}},
        "claims": claims, "machine": machine(), "figure": "genie.gif",
    })  # fmt: skip
    print(f"wrote {RESULTS / 'genie.json'} and {RESULTS / 'genie.gif'}")


if __name__ == "__main__":
    main()
