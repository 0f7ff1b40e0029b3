"""Action post-training on robot video (Cosmos [25] Sec. 6, UniSim [17]) at small scale: a latent
diffusion world model pretrained on video without actions, post-trained on a little robot data
with actions in LeRobot's format, measured on held-out episodes.

Data, all at 64 x 64 px, random actions:
- video without actions: 300 episodes of reverie/ReacherJoints-v0 (15k frames), written as plain
  mp4 files and ingested as video (`reverie ingest`: no actions);
- robot data with actions, two action spaces (UniSim's unified action space): 12 episodes of
  ReacherJoints-v0 (joint-angle steps) and 12 of Reacher-v5 (joint torques), each exported to a
  LeRobot dataset (`reverie export-lerobot`, robot_type = its env id) and ingested from it;
- held-out episodes of each, from seed 10_000, never seen in training.

Models, each through `reverie train` (`benchmarks/world_models.py`'s settings: batch 4 of 8-frame
windows, lr 1e-3): a per-frame continuous tokenizer on the video, the DiT pretrained on the video
(`--pretrain-steps`), then for `--steps` on the robot data of both spaces at once:
- full: every DiT weight and the action encoders post-trained;
- LoRA: rank-4 adapters on the DiT's linear layers and the action encoders, the rest frozen;
- scratch: the same architecture and post-training from fresh weights (no video pretraining).
Beside them: the action-free model (the pretrained DiT, measured as the post-trained model at step
0, which equals it exactly: tests/posttrain/test_action_conditioning.py) and copying the last
context frame. Rollouts (`reverie.pretrain.rollout_evaluation`): 4 real frames, then the recorded
actions open-loop for 12 steps, PSNR against the real frames. Claims:
- action-conditioned rollouts (full) beat the action-free model;
- pretraining helps: full beats scratch after the same post-training;
- LoRA trains under 5% of the DiT's parameters; how close it comes to full is reported.
Writes benchmarks/results/post_training.json and post_training.png (PSNR per step).

    .venv/bin/python benchmarks/post_training.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from common import DATA, RESULTS, generated_once, machine, train_and_export, write_json
from reverie.nn.model_folder import load_model_folder
from reverie.posttrain.action_conditioning import ActionConditionedWorldModel, ActionConditioningConfig, trainable_share
from reverie.pretrain.last_frame_world_model import LastFrameWorldModel, LastFrameWorldModelConfig
from reverie.nn.world_model import rollout
from reverie.pretrain.rollout_evaluation import episode_windows, evaluate_rollout
from world_models import latent_scale, loss_curve, mean, train_config

SIZE, CLIP_FRAMES, CONTEXT, ROLLOUT_STEPS = 64, 16, 4, 12
VIDEO_ENV, VIDEO_EPISODES = "reverie/ReacherJoints-v0", 300
ROBOTS = {"reverie/ReacherJoints-v0": 12, "Reacher-v5": 12}  # robot_type -> post-training episodes with actions
HELD_OUT_EPISODES, HELD_OUT_SEED = 8, 10_000
ACTION_SPACES = {"reverie/ReacherJoints-v0": {"kind": "continuous", "dim": 2}, "Reacher-v5": {"kind": "continuous", "dim": 2}}
TOKENIZER = dict(name="causal_video_autoencoder", temporal_compression=1, spatial_compression=8, patcher="none", channels=16,
                 channel_multipliers=[1, 2, 2, 2], num_res_blocks=1, mid_attention=False, l1_weight=0.0, mse_weight=1.0, latent_channels=4)  # fmt: skip
DIT = dict(name="latent_diffusion_world_model", frame_size=[SIZE, SIZE], action_space={"kind": "discrete", "n": 2}, patch_size=2, width=128,
           depth=4, heads=4, max_frames=8, sampling_steps=10, schedule="autoregressive", stabilization_level=15)  # fmt: skip
VARIANTS = {"full": {}, "LoRA r4": {"lora_rank": 4, "lora_alpha": 8.0}, "scratch": {"from_scratch": True}}


def reverie(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "reverie.cli.main", *map(str, arguments)], check=True)


def record(env_id: str, episodes: int, seed: int, out: Path, clip_format: str = "npy") -> Path:
    reverie("record", env_id, "--episodes", episodes, "--out", out, "--seed", seed, "--size", SIZE, "--square", "--clip-frames", CLIP_FRAMES,
            "--format", clip_format)  # fmt: skip
    return out


def make_data(folder: Path) -> None:
    recorded = record(VIDEO_ENV, VIDEO_EPISODES, 0, folder / "recorded_video", "mp4")
    videos = folder / "video_files"
    videos.mkdir()
    for shard in sorted((recorded / "shards").glob("*.tar")):  # the clips' mp4 members as plain video files
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".mp4"):
                    (videos / member.name).write_bytes(tar.extractfile(member).read())
    reverie("ingest", videos, "--out", folder / "video", "--size", SIZE, "--fps", 10, "--clip-frames", CLIP_FRAMES, "--format", "npy",
            "--no-scene-cuts", "--min-duration", 0, "--min-motion", 0, "--no-dedup")  # fmt: skip
    for index, (env_id, episodes) in enumerate(ROBOTS.items()):
        name = env_id.split("/")[-1]
        episodes_folder = record(env_id, episodes, 1000 * (index + 1), folder / f"recorded_{name}")
        reverie("export-lerobot", episodes_folder, "--out", folder / f"lerobot_{name}")
        reverie("ingest", folder / f"lerobot_{name}", "--out", folder / f"robot_{name}", "--size", SIZE, "--clip-frames", CLIP_FRAMES, "--format", "npy")
        record(env_id, HELD_OUT_EPISODES, HELD_OUT_SEED, folder / f"held_out_{name}")


def rollout_psnr(model, shards: list[str], windows: int) -> dict:
    return evaluate_rollout(model, shards, CONTEXT, ROLLOUT_STEPS, windows, device="cpu", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=1500, help="steps of the DiT on video (batch 4 of 8-frame windows)")
    parser.add_argument("--steps", type=int, default=600, help="post-training steps of each variant")
    parser.add_argument("--windows", type=int, default=16, help="held-out windows rolled out per robot")
    parser.add_argument("--out", type=Path, default=DATA / "post_training")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = generated_once(DATA / "reacher_robots", make_data, "Reacher video and robot datasets")
    video = str(data / "video" / "shards" / "*.tar")
    robots = [str(data / f"robot_{env_id.split('/')[-1]}" / "shards" / "*.tar") for env_id in ROBOTS]
    held_out = {env_id: sorted(str(path) for path in (data / f"held_out_{env_id.split('/')[-1]}" / "shards").glob("*.tar")) for env_id in ROBOTS}
    out = args.out / f"pretrain{args.pretrain_steps}_post{args.steps}"
    tokenizer, seconds_tokenizer = train_and_export(train_config(TOKENIZER, video, args.pretrain_steps, 2, 8), out, "tokenizer")
    dit = DIT | {"tokenizer": str(tokenizer), "latent_scale": latent_scale(tokenizer, video, CLIP_FRAMES)}
    pretrained, seconds_pretrain = train_and_export(train_config(dit, video, args.pretrain_steps), out, "pretrained")
    seconds, losses = {"tokenizer": seconds_tokenizer, "pretrained": seconds_pretrain}, {"pretrained": loss_curve(out / "runs" / "pretrained", "loss")}
    common = {"name": "action_conditioned_world_model", "pretrained": str(pretrained), "action_spaces": ACTION_SPACES}
    models, shares = {}, {}
    for name, fields in VARIANTS.items():
        slug = name.split()[0].lower()
        folder, seconds[name] = train_and_export(train_config(common | fields, robots, args.steps), out, slug)
        losses[name], models[name] = loss_curve(out / "runs" / slug, "loss"), load_model_folder(folder).eval()
        shares[name] = dict(zip(("trainable", "total"), trainable_share(models[name].world.network)))
        print(f"{name}: post-trained {seconds[name]:.0f} s, loss {mean(losses[name][:5]):.4f} -> {mean(losses[name][-5:]):.4f}, "
              f"trains {shares[name]['trainable']} of {shares[name]['total']} DiT parameters", flush=True)  # fmt: skip
    models["action-free (pretrained)"] = ActionConditionedWorldModel(ActionConditioningConfig(pretrained=str(pretrained), action_spaces=ACTION_SPACES)).eval()
    models["last frame (baseline)"] = LastFrameWorldModel(LastFrameWorldModelConfig(height=SIZE, width=SIZE, max_context=CONTEXT))
    results = {}
    for env_id, shards in held_out.items():
        results[env_id] = {}
        for name, model in models.items():
            if isinstance(model, ActionConditionedWorldModel):
                model.use(env_id)
            results[env_id][name] = rollout_psnr(model, shards, args.windows)
            print(f"{env_id} {name}: rollout PSNR {mean(results[env_id][name]['psnr']):.2f} dB over {ROLLOUT_STEPS} steps", flush=True)
    strips = rollout_strips(models, held_out[VIDEO_ENV])
    report(results, shares, seconds, losses, strips, args)


def rollout_strips(models: dict, shards: list[str]) -> dict[str, torch.Tensor]:
    """name -> (steps, 3, H, W): the first held-out window rolled out by each model, "real" first."""
    (window,) = episode_windows(shards, CONTEXT + ROLLOUT_STEPS, 1, [])
    strips = {"real": window.frames[CONTEXT:]}
    for name, model in models.items():
        if isinstance(model, ActionConditionedWorldModel):
            model.use(VIDEO_ENV)
        with torch.inference_mode():
            steps = rollout(model, window.frames[None, :CONTEXT], window.actions[None, : CONTEXT - 1], window.actions[None, CONTEXT - 1 :],
                            ROLLOUT_STEPS, torch.Generator().manual_seed(0))  # fmt: skip
        strips[name] = torch.stack([step.frame[0] for step in steps])
    return strips


def figure(path: Path, results: dict, strips: dict[str, torch.Tensor]) -> None:
    """PSNR per rollout step, one panel per robot, over the rollout strips of one ReacherJoints window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot = plt.figure(figsize=(12, 3.4 + 1.0 * len(strips)))
    grid = plot.add_gridspec(2, 1, height_ratios=[3.4, 1.0 * len(strips)])
    panels = grid[0].subgridspec(1, len(results))
    for column, (env_id, rows) in enumerate(results.items()):
        axis = plot.add_subplot(panels[column])
        for name, row in rows.items():
            axis.plot(range(1, len(row["psnr"]) + 1), row["psnr"], label=name, linestyle="--" if "baseline" in name or "free" in name else "-")
        axis.set(title=f"{env_id}: held-out rollouts", xlabel="step after 4 real frames", ylabel="PSNR (dB)")
        axis.legend(fontsize=7)
    strip_axis = plot.add_subplot(grid[1])
    rows = [torch.cat(list(frames.clamp(0, 1)), dim=2) for frames in strips.values()]  # each (3, H, steps W)
    strip_axis.imshow(torch.cat(rows, dim=1).permute(1, 2, 0).numpy())
    height = next(iter(strips.values())).shape[-2]
    strip_axis.set_yticks([height * (index + 0.5) for index in range(len(strips))], list(strips))
    strip_axis.set_xticks([])
    plot.tight_layout()
    plot.savefig(path, dpi=110)
    plt.close(plot)


def report(results: dict, shares: dict, seconds: dict, losses: dict, strips: dict, args) -> None:
    names = list(next(iter(results.values())))
    print(f"\n{'model':26s} " + " ".join(f"{env_id.split('/')[-1]:>16s}" for env_id in results) + f" {'trains':>8s}")
    for name in names:
        share = f"{shares[name]['trainable'] / shares[name]['total']:8.1%}" if name in shares else f"{'':8s}"
        print(f"{name:26s} " + " ".join(f"{mean(games[name]['psnr']):13.2f} dB" for games in results.values()) + f" {share}")
    claims = {}
    for env_id, rows in results.items():
        psnr = {name: mean(row["psnr"]) for name, row in rows.items()}
        claims[f"{env_id}: action-conditioned rollouts (full) beat the action-free model"] = psnr["full"] > psnr["action-free (pretrained)"]
        claims[f"{env_id}: video pretraining helps (full beats scratch at the same post-training budget)"] = psnr["full"] > psnr["scratch"]
    claims["LoRA trains under 5% of the DiT's parameters"] = shares["LoRA r4"]["trainable"] / shares["LoRA r4"]["total"] < 0.05
    for claim, held in claims.items():
        print(f"{'yes' if held else 'NO '}  {claim}")
    figure(RESULTS / "post_training.png", results, strips)
    write_json(RESULTS / "post_training.json", {
        "data": {"video": {"env": VIDEO_ENV, "episodes": VIDEO_EPISODES, "actions": False}, "robots": ROBOTS, "size": SIZE,
                 "held_out": {"episodes": HELD_OUT_EPISODES, "seed": HELD_OUT_SEED}, "action_spaces": ACTION_SPACES},
        "budget": {"pretrain_steps": args.pretrain_steps, "post_training_steps": args.steps, "batch_size": 4, "window": 8, "torch_threads": 2},
        "rollout": {"context": CONTEXT, "steps": ROLLOUT_STEPS, "windows": args.windows},
        "models": {"tokenizer": TOKENIZER, "dit": DIT, "variants": VARIANTS}, "parameters": shares,
        "results": {env_id: {name: {"psnr_per_step": row["psnr"], "psnr_mean": mean(row["psnr"]), "teacher_forced_psnr": mean(row["teacher_forced_psnr"])}
                             for name, row in rows.items()} for env_id, rows in results.items()},
        "lora_gap_db": {env_id: mean(rows["full"]["psnr"]) - mean(rows["LoRA r4"]["psnr"]) for env_id, rows in results.items()},
        "training": {"seconds": seconds, "loss_first_5": {name: mean(curve[:5]) for name, curve in losses.items()},
                     "loss_last_5": {name: mean(curve[-5:]) for name, curve in losses.items()}},
        "claims": claims, "machine": machine(), "figure": "post_training.png",
    })  # fmt: skip
    print(f"wrote {RESULTS / 'post_training.json'} and {RESULTS / 'post_training.png'}")


if __name__ == "__main__":
    main()
