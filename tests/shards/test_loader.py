"""ClipDataset and ClipLoader on shards made here: episodes whose frames encode their step index,
ingested video, latent shards, and broken samples."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from reverie.shards.clip_tensors import BadSampleError
from reverie.pipelines.clips import ClipSpec
from reverie.shards.payloads import encode_mp4
from reverie.shards.episodes import Episode, episode_samples
from reverie.pipelines.ingest import IngestConfig, run_ingest
from reverie.shards.loader import ClipDataset, ClipLoader, LoaderStateError
from reverie.shards.sample_order import Source
from reverie.shards.writer import ShardWriter
from reverie.pipelines.synthetic import make_video

EPISODE_LENGTH, CLIP_FRAMES = 24, 8  # 3 clips per episode


def episode(index: int, length: int = EPISODE_LENGTH) -> Episode:
    """Frame t has red = t and green = the episode index; every aligned array encodes t too."""
    steps = np.arange(length)
    frames = np.zeros((length, 4, 4, 3), np.uint8)
    frames[..., 0], frames[..., 1] = steps[:, None, None], index
    actions = np.stack([steps, np.full(length, index)], axis=1).astype(np.float32)
    meta = {"episode": index, "action_space": {"type": "box", "shape": [2]}}
    return Episode(frames, actions, steps * 0.5, steps == length - 1, np.zeros(length, bool), steps[:, None].astype(np.float32), meta)


def write_shards(folder: Path, samples, per_shard: int) -> Path:
    writer = ShardWriter(folder, max_count=per_shard)
    for sample in samples:
        writer.write(sample)
    writer.finalize()
    return folder


def episode_shard_samples(episodes: range):
    for index in episodes:
        yield from episode_samples(episode(index), f"ep{index:03d}", CLIP_FRAMES, None, 8.0, "npy")


def video_sample(index: int, clip_format: str = "npy") -> dict:
    """An ingested-style clip: frames and json, no actions."""
    clip_frames = np.full((CLIP_FRAMES, 4, 4, 3), 10 * index % 256, np.uint8)
    payload = encode_mp4(clip_frames, 8.0) if clip_format == "mp4" else clip_frames
    meta = {"key": f"video{index:04d}", "fps": 8.0, "frames": CLIP_FRAMES, "height": 4, "width": 4}
    return {"__key__": f"video{index:04d}", clip_format: payload, "json": meta}


@pytest.fixture(scope="module")
def episode_shards(tmp_path_factory) -> Path:
    """8 episodes x 3 clips = 24 samples in 8 shards of 3."""
    return write_shards(tmp_path_factory.mktemp("episodes"), episode_shard_samples(range(8)), per_shard=3)


@pytest.fixture(scope="module")
def video_shards(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("video"), (video_sample(i) for i in range(12)), per_shard=4)


def keys_of(loader) -> list[str]:
    return [key for batch in loader for key in batch["key"]]


def test_windows_keep_frames_and_aligned_arrays_together(episode_shards):
    dataset = ClipDataset(episode_shards, window=5, seed=0)
    starts = set()
    for batch in ClipLoader(dataset, batch_size=4):
        steps = (batch["frames"][:, :, 0, 0, 0] * 255).round()  # (B, T)
        first = torch.tensor([meta["step"] for meta in batch["meta"]]) + batch["window_start"]
        assert torch.equal(steps, first[:, None] + torch.arange(5))
        assert torch.equal(batch["actions"][..., 0], steps)
        assert torch.equal(batch["actions"][..., 1], (batch["frames"][:, :, 1, 0, 0] * 255).round())
        assert torch.equal(batch["rewards"], steps * 0.5) and torch.equal(batch["states"][..., 0], steps)
        assert torch.equal(batch["terminated"], steps == EPISODE_LENGTH - 1) and batch["has_actions"].all()
        assert batch["frames"].shape[1:] == (5, 3, 4, 4) and batch["frames"].dtype == torch.float32
        starts |= set(batch["window_start"].tolist())
    assert starts == set(range(CLIP_FRAMES - 5 + 1))


@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_and_workers_cover_every_sample_once_per_epoch(episode_shards, epoch):
    every_key = [f"ep{e:03d}_{start:06d}" for e in range(8) for start in (0, 8, 16)]
    seen = []
    for rank in range(2):
        dataset = ClipDataset(episode_shards, seed=5, rank=rank, world_size=2)
        dataset.set_epoch(epoch)
        seen.append(keys_of(ClipLoader(dataset, batch_size=2, num_workers=2)))
    assert len(seen[0]) == len(seen[1]) == 12
    assert sorted(seen[0] + seen[1]) == sorted(every_key)


def test_order_and_windows_follow_seed_and_epoch(episode_shards):
    def epoch_of(seed, epoch):
        dataset = ClipDataset(episode_shards, window=3, seed=seed)
        dataset.set_epoch(epoch)
        return [
            (key, start) for batch in ClipLoader(dataset, batch_size=4) for key, start in zip(batch["key"], batch["window_start"].tolist())
        ]

    assert epoch_of(0, 0) == epoch_of(0, 0)
    assert epoch_of(0, 0) != epoch_of(1, 0) and epoch_of(0, 0) != epoch_of(0, 1)
    assert sorted(epoch_of(0, 0)) != sorted(epoch_of(0, 1))  # the windows differ too, not only the order


def test_weighted_mixing_draws_sources_in_proportion(episode_shards, video_shards):
    sources = [Source(tuple(map(str, sorted(episode_shards.glob("*.tar")))), 3.0, "episodes"), video_shards]
    dataset = ClipDataset(sources, window=2, seed=0, samples_per_epoch=800)
    batches = list(ClipLoader(dataset, batch_size=16))
    counts = Counter(name for batch in batches for name in batch["source"])
    assert sum(counts.values()) == 800 and counts["episodes"] / 800 == pytest.approx(0.75, abs=0.05)
    mixed = next(batch for batch in batches if len(set(batch["source"])) == 2)
    assert [actions is None for actions in mixed["actions"]] == [not has for has in mixed["has_actions"].tolist()]
    again = list(ClipLoader(ClipDataset(sources, window=2, seed=0, samples_per_epoch=800), batch_size=16))
    assert [b["key"] for b in again] == [b["key"] for b in batches]


def batch_record(batch) -> tuple:
    return tuple(batch["key"]), batch["window_start"].tolist(), batch["frames"].sum().item()


@pytest.mark.parametrize("mixed", [False, True], ids=["one-source", "mixed"])
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_sees_what_an_uninterrupted_run_sees_next(episode_shards, video_shards, workers, mixed):
    sources, weights = ([episode_shards, video_shards], [2.0, 1.0]) if mixed else (episode_shards, None)

    def loader():
        dataset = ClipDataset(sources, weights=weights, window=4, seed=3, shuffle_buffer=4, samples_per_epoch=24)
        return ClipLoader(dataset, batch_size=2, num_workers=workers)

    uninterrupted = loader()
    reference = [batch_record(b) for epoch in range(2) for b in uninterrupted]
    assert len(reference) == 2 * len(uninterrupted) == 24

    interrupted, taken = loader(), 5  # odd: with 2 workers the next batch is worker 1's
    for _, batch in zip(range(taken), interrupted):
        pass
    saved = json.loads(json.dumps(interrupted.state_dict()))  # plain data, as in a checkpoint
    resumed = loader()
    resumed.load_state_dict(saved)
    rest = [batch_record(b) for epoch in range(2) for b in resumed]
    assert rest == reference[taken:]


def test_a_mid_epoch_state_refuses_another_layout(episode_shards):
    dataset = ClipDataset(episode_shards, seed=3)
    loader = ClipLoader(dataset, batch_size=2, num_workers=2)
    next(iter(loader))
    state = loader.state_dict()
    with pytest.raises(LoaderStateError, match="batch_size=2"):
        ClipLoader(ClipDataset(episode_shards, seed=3), batch_size=4).load_state_dict(state)
    with pytest.raises(LoaderStateError, match="seed"):
        ClipLoader(ClipDataset(episode_shards, seed=4), batch_size=2).load_state_dict(state)
    one_worker = ClipLoader(ClipDataset(episode_shards, seed=3), batch_size=2)
    one_worker.load_state_dict(state)
    with pytest.raises(LoaderStateError, match="num_workers"):
        next(iter(one_worker))


def _rank_main(rank: int, shard_dir: str, rendezvous: str, result_dir: str) -> None:
    """One rank of a 2-process gloo run: all_reduce after every batch as DDP does, then a barrier."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2, timeout=timedelta(seconds=20))
    loader = ClipLoader(ClipDataset(shard_dir, seed=0), batch_size=2)
    batches, shards = 0, set()
    for batch in loader:
        torch.distributed.all_reduce(torch.ones(1))
        batches, shards = batches + 1, shards | set(batch["shard"])
    torch.distributed.barrier()
    Path(result_dir, f"{rank}.json").write_text(json.dumps({"batches": batches, "len": len(loader), "shards": sorted(shards)}))
    torch.distributed.destroy_process_group()


def test_uneven_shards_do_not_hang_a_distributed_run(tmp_path):
    """3 shards of 6, 6 and 2 clips: one rank gets 2 shards, the other 1, with different sample counts."""
    write_shards(tmp_path / "shards", (video_sample(i) for i in range(14)), per_shard=6)
    context = multiprocessing.get_context("spawn")
    args = (str(tmp_path / "shards"), str(tmp_path / "rendezvous"), str(tmp_path))
    processes = [context.Process(target=_rank_main, args=(rank, *args)) for rank in range(2)]
    for process in processes:
        process.start()
    deadline = time.monotonic() + 60
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    hung = [process for process in processes if process.is_alive()]
    for process in hung:
        process.kill()
    assert not hung and [process.exitcode for process in processes] == [0, 0]
    results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2)]
    assert sorted(len(result["shards"]) for result in results) == [1, 2]
    assert results[0]["batches"] == results[1]["batches"] == results[0]["len"] == 4  # 7 clips each: ceil(14 / 2)


def latent_sample(index: int) -> dict:
    """A latent shard's sample: latents (T, C, h, w), tokens (T, h, w) and actions, step t encoded."""
    steps = np.arange(6)
    latents = np.broadcast_to((steps + 10 * index)[:, None, None, None], (6, 4, 2, 2)).astype(np.float32)
    tokens = np.broadcast_to(steps[:, None, None], (6, 2, 2)).astype(np.int16)
    meta = {"key": f"lat{index:03d}", "step": 0, "has_actions": True, "action_space": {"type": "discrete", "n": 6}}
    return {"__key__": f"lat{index:03d}", "latents.npy": latents, "tokens.npy": tokens, "actions.npy": steps.astype(np.int64), "json": meta}


def test_latent_shards_are_read_without_frames(tmp_path):
    write_shards(tmp_path, (latent_sample(i) for i in range(6)), per_shard=3)
    batches = list(ClipLoader(ClipDataset(tmp_path, window=3, seed=0), batch_size=3))
    assert sum(len(batch["key"]) for batch in batches) == 6
    for batch in batches:
        assert "frames" not in batch and batch["latents"].shape == (3, 3, 4, 2, 2) and batch["tokens"].dtype == torch.int64
        episode_index = torch.tensor([int(key[3:]) for key in batch["key"]])
        steps = batch["latents"][:, :, 0, 0, 0] - 10 * episode_index[:, None]
        assert torch.equal(steps.long(), batch["actions"]) and torch.equal(batch["tokens"][:, :, 0, 0], batch["actions"])
        assert torch.equal(batch["actions"][:, 0], batch["window_start"])


def test_ingested_mp4_clips_decode_to_float_frames(tmp_path, needs_ffmpeg):
    video = make_video(tmp_path / "input.mp4", seconds=3.0, size=(96, 64))
    spec = ClipSpec(clip_frames=8, size=32, min_motion=0.0)
    run_ingest(IngestConfig(inputs=[str(video)], out=tmp_path / "out", spec=spec, progress=False))
    batches = list(ClipLoader(ClipDataset(tmp_path / "out", window=6, seed=0), batch_size=2))
    frames = torch.cat([batch["frames"] for batch in batches])
    assert frames.shape == (3, 6, 3, 32, 32) and frames.dtype == torch.float32
    assert 0.0 <= frames.min() < frames.max() <= 1.0 and frames.std() > 0.05
    assert all("actions" not in batch and not batch["has_actions"].any() for batch in batches)
    assert {meta["source"] for batch in batches for meta in batch["meta"]} == {str(video)}


def test_bad_samples_are_skipped_with_a_warning_naming_shard_and_key(tmp_path):
    corrupt = video_sample(1, "mp4") | {"mp4": b"not an mp4 at all"}
    misaligned = next(episode_shard_samples(range(1))) | {"__key__": "misaligned", "actions.npy": np.zeros((3, 2), np.float32)}
    write_shards(tmp_path, [video_sample(0), corrupt, misaligned, video_sample(3)], per_shard=4)
    dataset = ClipDataset(tmp_path, seed=0, samples_per_epoch=4)
    with pytest.warns(UserWarning) as caught:
        keys = keys_of(ClipLoader(dataset, batch_size=4))
    messages = " ".join(str(warning.message) for warning in caught)
    assert "000000.tar: sample video0001" in messages and "misaligned" in messages and "not aligned" in messages
    assert len(keys) == 4 and set(keys) == {"video0000", "video0003"}  # the good ones, wrapped to fill the epoch
    with pytest.raises(BadSampleError, match="000000.tar: sample (video0001|misaligned)"):
        keys_of(ClipLoader(ClipDataset(tmp_path, seed=0, samples_per_epoch=4, skip_bad=False), batch_size=4))


def corrupt_samples() -> dict[str, dict]:
    """One sample per way a member can be broken, by key."""
    good = next(episode_shard_samples(range(1)))
    mp4 = video_sample(0, "mp4")["mp4"]
    cases = {
        "truncated": video_sample(0, "mp4") | {"mp4": mp4[: len(mp4) // 2]},
        "longer": video_sample(0, "mp4") | {"mp4": encode_mp4(np.zeros((100, 4, 4, 3), np.uint8), 8.0)},
        "larger": video_sample(0, "mp4") | {"mp4": encode_mp4(np.zeros((CLIP_FRAMES, 64, 64, 3), np.uint8), 8.0)},
        "flat_frames": video_sample(0) | {"npy": np.zeros((CLIP_FRAMES, 4, 4), np.uint8)},
        "text_actions": good | {"actions.npy": np.array(["left"] * CLIP_FRAMES)},
        "wide_rewards": good | {"rewards.npy": np.zeros((CLIP_FRAMES, 2), np.float32)},
        "no_sizes": video_sample(0, "mp4") | {"json": {"key": "no_sizes", "fps": 8.0}},
        "json_list": video_sample(0) | {"json": [1, 2]},
    }
    return {key: sample | {"__key__": key} for key, sample in cases.items()}


@pytest.fixture(scope="module")
def corrupt_shards(tmp_path_factory) -> Path:
    """2 shards, each with 4 good clips and 4 broken ones."""
    good = [video_sample(index) for index in range(8)]
    broken = list(corrupt_samples().values())
    mixed = [sample for pair in zip(good, broken) for sample in pair]
    return write_shards(tmp_path_factory.mktemp("corrupt"), mixed, per_shard=8)


def test_corrupt_members_are_skipped_by_dataloader_workers(corrupt_shards):
    """Each worker reads one shard: its 4 good clips, wrapped around to its quota of 8."""
    keys = keys_of(ClipLoader(ClipDataset(corrupt_shards, seed=0), batch_size=2, num_workers=2))
    assert len(keys) == 16 and set(keys) == {f"video{index:04d}" for index in range(8)}


READ_IN_WORKERS = """
import sys
from reverie.shards.loader import ClipDataset, ClipLoader
loader = ClipLoader(ClipDataset(sys.argv[1], seed=0), batch_size=2, num_workers=2)
print(sorted({key for batch in loader for key in batch["key"]}))
"""


def test_each_skipped_sample_is_one_warning_line_naming_its_shard_and_key(corrupt_shards):
    """Run as training runs, outside pytest: workers print their warnings to the real stderr."""
    environment = os.environ | {"PYTHONWARNINGS": "default"}
    run = subprocess.run(
        [sys.executable, "-c", READ_IN_WORKERS, str(corrupt_shards)], capture_output=True, text=True, timeout=120, env=environment
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(sorted(f"video{index:04d}" for index in range(8)))
    skipped = [line for line in run.stderr.splitlines() if "skipping a bad sample" in line]
    shards = sorted(str(path) for path in corrupt_shards.glob("*.tar"))
    for key in corrupt_samples():
        mentions = [line for line in skipped if f": sample {key}: " in line]
        assert mentions and all(any(f"{shard}: sample {key}: " in line for shard in shards) for line in mentions), key
