"""V-JEPA: the EMA target encoder, a loss that falls on moving squares, per-frame features, model
folders, the real-scale config, and the online and target encoders sharded alike by FSDP."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.pretrain.vjepa import VJEPA, VJEPAConfig
from reverie.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "vjepa"
TINY = dict(
    frames=8, image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, predictor_dim=32, predictor_depth=1, predictor_heads=2
)


def tiny_model(**overrides) -> VJEPA:
    torch.manual_seed(0)
    return VJEPA(VJEPAConfig(**(TINY | overrides)))


def moving_squares(batch: int, frames: int = 8, size: int = 32, side: int = 10) -> torch.Tensor:
    """(B, T, 3, H, W) in [0, 1]: a coloured square per clip, moving at a constant velocity."""
    clips = torch.zeros(batch, frames, 3, size, size)
    start = torch.randint(0, size - side, (batch, 2))
    velocity = torch.randint(-2, 3, (batch, 2))
    colours = torch.rand(batch, 3)
    for b in range(batch):
        for t in range(frames):
            top, left = (start[b] + velocity[b] * t).clamp(0, size - side).tolist()
            clips[b, t, :, top : top + side, left : left + side] = colours[b, :, None, None]
    return clips


def test_the_target_encoder_is_an_ema_of_the_encoder_without_gradients():
    model = tiny_model().double()  # float32 may round the EMA's fused multiply-add a unit (1.2e-7 near 1) off the formula
    with torch.no_grad():
        for parameter in model.encoder.parameters():
            parameter.add_(torch.randn_like(parameter))
    online = [p.detach().clone() for p in model.encoder.parameters()]
    before = [p.detach().clone() for p in model.target_encoder.parameters()]
    model.after_optimizer_step(step=5, total_steps=10)
    m = 0.998 + (1.0 - 0.998) * 0.5
    assert model.momentum(5, 10) == pytest.approx(m)
    for target, old, new in zip(model.target_encoder.parameters(), before, online):
        torch.testing.assert_close(target, m * old + (1 - m) * new, rtol=0, atol=1e-14)
    assert model.momentum(0, 10) == pytest.approx(0.998) and model.momentum(10, 10) == 1.0
    model.training_losses({"frames": moving_squares(2).double()})["loss"].backward()
    assert all(not p.requires_grad and p.grad is None for p in model.target_encoder.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_the_loss_falls_on_moving_squares(positions):
    model = tiny_model(positions=positions)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(30):
        terms = model.training_losses({"frames": moving_squares(8)})
        assert set(terms) == {"loss", "l1_mask0", "l1_mask1"}
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        model.after_optimizer_step(step + 1, 30)
        losses.append(terms["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_encode_frames_encodes_every_frame_alone():
    model = tiny_model().eval()
    frames = torch.rand(2, 3, 3, 32, 48)
    features = model.encode_frames(frames)
    assert features.shape == (2, 3, model.tokens_per_frame(32, 48), model.feature_dim) == (2, 3, 24, 64)
    torch.testing.assert_close(model.encode_frames(frames[:, 1:2]), features[:, 1:2])
    torch.testing.assert_close(features.mean(-1), torch.zeros(2, 3, 24), atol=1e-5, rtol=0)  # layer-normed
    raw = model.encode_frames(frames, normalize_features=False)
    torch.testing.assert_close(torch.nn.functional.layer_norm(raw, (64,)), features)


def test_a_model_folder_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model(positions="learned").eval()
    model.after_optimizer_step(1, 2)
    save_model_folder(model, tmp_path / "vjepa")
    loaded = load_model_folder(tmp_path / "vjepa")
    frames = torch.rand(2, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), model(frames), rtol=0, atol=0)
        torch.testing.assert_close(loaded.encode_frames(frames), model.encode_frames(frames), rtol=0, atol=0)


def real_scale_config() -> VJEPAConfig:
    model = dict(load_config(CONFIGS / "vitl.yaml").model)
    assert model.pop("name") == "vjepa"
    return VJEPAConfig(**model)


def test_the_real_scale_config_builds_a_vit_large():
    with torch.device("meta"):
        model = VJEPA(real_scale_config())
    encoder = sum(p.numel() for p in model.encoder.parameters())
    predictor = sum(p.numel() for p in model.predictor.parameters())
    assert 295e6 < encoder < 310e6  # ViT-L/16 with a tubelet embedding: about 304M
    assert 20e6 < predictor < 24e6  # 12 blocks of width 384: about 22M
    assert sum(p.numel() for p in model.target_encoder.parameters()) == encoder
    assert model.feature_dim == 1024 and model.tokens_per_frame(256, 256) == 256


@pytest.mark.slow
def test_the_real_scale_model_takes_a_step():
    model = VJEPA(real_scale_config())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    terms = model.training_losses({"frames": torch.rand(1, 16, 3, 256, 256)})
    terms["loss"].backward()
    optimizer.step()
    model.after_optimizer_step(1, 10)
    assert torch.isfinite(terms["loss"])


def shard_and_compare(rank: int, port: int, overrides: dict) -> None:
    """One rank of a 2-process CPU FSDP run, wrapped by `checkpoint_blocks` as the trainer does."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = tiny_model(**overrides)
        policy = ModuleWrapPolicy(set(VJEPA.checkpoint_blocks))
        FullyShardedDataParallel(model, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))
        online = [p.shape for p in model.encoder.parameters()]
        target = [p.shape for p in model.target_encoder.parameters()]
        assert online == target, f"rank {rank}: the encoders are sharded differently"
        model.after_optimizer_step(1, 10)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("backbone", ["vit", "hf"])
def test_fsdp_shards_the_online_and_target_encoders_alike(backbone, request):
    overrides = {"backbone": "hf", "hf_folder": str(request.getfixturevalue("vjepa2_folder")[0])} if backbone == "hf" else {}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(shard_and_compare, args=(port, overrides), nprocs=2)
