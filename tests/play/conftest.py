"""Model folders and start frames for the play tests: a tiny sampling pixel diffusion world model
(`play_models`), Genie's MaskGIT dynamics with 8 latent actions, a last-frame model, a tokenizer's
folder (no world model), a prompt image of another size, and episode shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reverie.nn.model_folder import MODELS, save_model_folder
from play_models import pixel_model_folder
from tiny_tokenizers import FSQ, per_frame_tokenizer, sliding_square, write_shard


@pytest.fixture(scope="session")
def pixel_folder(tmp_path_factory) -> Path:
    return pixel_model_folder(tmp_path_factory.mktemp("play") / "pixel")


@pytest.fixture(scope="session")
def last_frame_folder(tmp_path_factory) -> Path:
    model_class = MODELS.get("last_frame_world_model")
    return save_model_folder(model_class(model_class.config_class(height=16, width=24)), tmp_path_factory.mktemp("play") / "last_frame")


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory) -> Path:
    return per_frame_tokenizer(tmp_path_factory.mktemp("play") / "tokenizer")


@pytest.fixture(scope="session")
def prompt_image(tmp_path_factory) -> Path:
    """A 40 x 30 (H x W) noise image: another size than every model's here."""
    path = tmp_path_factory.mktemp("play") / "prompt.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
    return path


def episode_sample(key: str, clip: np.ndarray, episode: int, step: int) -> dict:
    frames, height, width, _ = clip.shape
    meta = {"key": key, "fps": 8.0, "frames": frames, "height": height, "width": width, "episode": episode, "step": step}
    return {"__key__": key, "npy": clip, "actions.npy": np.zeros(frames, np.int64), "json": meta}


@pytest.fixture(scope="session")
def episode_shards(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A shard whose first sample is a later clip of episode 0 (step 4) and whose second starts
    episode 1, 32 x 32 px: (shard, the frame play should start from)."""
    later, first = sliding_square(0, 4, 32, 32), sliding_square(1, 4, 32, 32)
    samples = [episode_sample("ep0_step4", later, 0, 4), episode_sample("ep1_step0", first, 1, 0)]
    return write_shard(tmp_path_factory.mktemp("episodes") / "000000.tar", samples), first[0]


@pytest.fixture(scope="session")
def genie_folder(tmp_path_factory) -> Path:
    """Genie's MaskGIT dynamics of dynamics_tiny.yaml's sizes on 32 x 32 frames (4 x 4 FSQ codes), 8 latent actions."""
    tokenizer = per_frame_tokenizer(tmp_path_factory.mktemp("play") / "fsq", **FSQ)
    model_class = MODELS.get("maskgit_dynamics")
    fields = dict(tokenizer=str(tokenizer), frame_size=[32, 32], num_actions=8, width=32, depth=1, heads=2, max_frames=4, sampling_steps=2)
    torch.manual_seed(0)
    return save_model_folder(model_class(model_class.config_class(**fields)), tmp_path_factory.mktemp("play") / "genie")
