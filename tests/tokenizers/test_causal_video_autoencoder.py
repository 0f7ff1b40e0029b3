"""The Cosmos-style causal video autoencoder: causality, shapes per compression, bottlenecks,
frame counts that do not fit, a loss that falls, model folders, and the real-scale configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.tokenizers.causal_video_autoencoder import (
    CausalVideoAutoencoder,
    CausalVideoAutoencoderConfig,
    FrameShapeError,
    TokenizerConfigError,
)
from reverie.training.config import load_config
from synthetic_videos import moving_squares

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "tokenizers"
COMPRESSIONS = [(4, 8), (8, 8), (8, 16)]  # (s_T, s_HW)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def small(**fields) -> CausalVideoAutoencoder:
    """A model of a few thousand weights; two stage boundaries reach every compression above."""
    defaults = dict(channels=8, channel_multipliers=[1, 2, 2], num_res_blocks=1, latent_channels=4)
    torch.manual_seed(0)
    return CausalVideoAutoencoder(CausalVideoAutoencoderConfig(**defaults | fields))


def from_yaml(name: str) -> CausalVideoAutoencoder:
    fields = OmegaConf.to_container(load_config(CONFIGS / name).model)
    model_class = MODELS.get(fields.pop("name"))
    return model_class(model_class.config_class(**fields))


def clip(frames: int, size: int, batch: int = 2, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(frames * size), dtype=dtype)


@pytest.mark.parametrize("patcher", ["haar", "none"])
@pytest.mark.parametrize("bottleneck", ["ae", "vae"])
@pytest.mark.parametrize("temporal, spatial", [(4, 8), (8, 16)])
def test_the_latents_of_a_prefix_are_the_prefix_of_the_latents(patcher, bottleneck, temporal, spatial):
    multipliers = [1, 2, 2] if patcher == "haar" else [1, 1, 2, 2, 2]  # without the patcher every 2x is a stage
    model = small(temporal_compression=temporal, spatial_compression=spatial, patcher=patcher, bottleneck=bottleneck, channel_multipliers=multipliers)
    model = model.double().eval()
    frames = clip(1 + 2 * temporal, spatial, dtype=torch.float64)
    latents = model.encode(frames)
    assert latents.shape[2] == 3
    for k in (0, 1):  # k = 0: the first frame is encoded alone
        torch.testing.assert_close(model.encode(frames[:, : 1 + k * temporal]), latents[:, :, : 1 + k], rtol=0, atol=1e-5)
    decoded = model.decode(latents)
    torch.testing.assert_close(model.decode(latents[:, :, :2]), decoded[:, : 1 + temporal], rtol=0, atol=1e-5)


def test_an_image_is_a_one_frame_video():
    model = small().eval()
    image = clip(1, 16)
    latents = model.encode(image)
    assert latents.shape == (2, 4, 1, 2, 2)
    assert model(image).shape == image.shape and model.decode(latents).shape == image.shape


@pytest.mark.parametrize("temporal, spatial", COMPRESSIONS)
def test_latent_shapes_follow_the_compression(temporal, spatial):
    model = small(temporal_compression=temporal, spatial_compression=spatial).eval()
    frames = clip(1 + 2 * temporal, 2 * spatial)
    latents = model.encode(frames)
    assert model.compression == (temporal, spatial, spatial)
    assert latents.shape == (2, *model.latent_shape(1 + 2 * temporal, 2 * spatial, 2 * spatial)) == (2, 4, 3, 2, 2)
    assert model.decode(latents).shape == frames.shape
    assert model.codebook_size is None and not model.discrete


def test_compressions_the_config_cannot_reach_are_named():
    with pytest.raises(TokenizerConfigError, match=r"temporal_compression 6: .* reach 4, 8, 16"):
        small(temporal_compression=6)
    with pytest.raises(TokenizerConfigError, match=r"spatial_compression 32: patcher haar with patch_size 4 and 3 channel_multipliers"):
        small(spatial_compression=32)
    with pytest.raises(TokenizerConfigError, match=r"temporal_compression 8: patcher none and 3 channel_multipliers .* reach 1, 2, 4"):
        small(patcher="none")
    with pytest.raises(TokenizerConfigError, match="patcher 'wavelet'"):
        small(patcher="wavelet")
    with pytest.raises(TokenizerConfigError, match="bottleneck 'kl'"):
        small(bottleneck="kl")


def test_a_frame_count_that_does_not_fit_is_padded_with_the_last_frame():
    model = small(temporal_compression=4, spatial_compression=8).eval()
    frames = clip(7, 16)  # 1 + 4k for no k: padded to 9 frames
    latents = model.encode(frames)
    assert latents.shape[2] == 3 and model.latent_shape(7, 16, 16) == (4, 3, 2, 2)
    torch.testing.assert_close(latents[:, :, :2], model.encode(frames[:, :5]))  # the fitting prefix is untouched
    padded = torch.cat([frames, frames[:, -1:], frames[:, -1:]], dim=1)
    torch.testing.assert_close(latents, model.encode(padded))
    assert model(frames).shape == frames.shape and model.decode(latents).shape[1] == 9
    assert model.training_losses({"frames": clip(2, 16)})["loss"].isfinite()


def test_frames_whose_size_does_not_divide_are_named():
    model = small(spatial_compression=8)
    with pytest.raises(FrameShapeError, match="20x16: height and width must divide by the spatial compression 8"):
        model.encode(torch.rand(1, 5, 3, 20, 16))
    with pytest.raises(FrameShapeError, match=r"frames of shape \(1, 5, 16, 16\)"):
        model.encode(torch.rand(1, 5, 16, 16))
    with pytest.raises(FrameShapeError, match=r"latents of shape \(1, 3, 1, 2, 2\)"):
        model.decode(torch.rand(1, 3, 1, 2, 2))


def test_the_vae_adds_a_positive_kl_term_and_encodes_the_mean_outside_training():
    model = small(bottleneck="vae", kl_weight=0.1)
    terms = model.training_losses({"frames": clip(5, 16)})
    assert {"loss", "l1", "mse", "kl"} <= set(terms) and terms["kl"] > 0
    torch.testing.assert_close(terms["loss"], terms["l1"] + 0.1 * terms["kl"])
    model.eval()
    torch.testing.assert_close(model.encode(clip(5, 16)), model.encode(clip(5, 16)), rtol=0, atol=0)
    assert small(bottleneck="ae").training_losses({"frames": clip(5, 16)}).keys() == {"loss", "l1", "mse"}


def test_the_tiny_config_learns_a_moving_square_in_thirty_steps():
    model = from_yaml("causal_video_ae_tiny.yaml")
    batch = {"frames": moving_squares(4, 5, 32)}  # what the config trains on: 5-frame clips at 32 px
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = model.training_losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.25 * losses[0], losses


@pytest.mark.parametrize("bottleneck", ["ae", "vae"])
def test_a_saved_model_folder_loads_with_identical_outputs(tmp_path, bottleneck):
    model = small(bottleneck=bottleneck).eval()
    frames = clip(5, 16)
    loaded = load_model_folder(save_model_folder(model, tmp_path / "tokenizer"))
    assert isinstance(loaded, CausalVideoAutoencoder) and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(frames), model.encode(frames), rtol=0, atol=0)
        torch.testing.assert_close(loaded(frames), model(frames), rtol=0, atol=0)


def test_a_continuous_model_has_no_codes():
    with pytest.raises(TokenizerConfigError, match="tokenize: bottleneck 'ae' is continuous"):
        small().tokenize(clip(1, 16))


@pytest.mark.parametrize("bottleneck, options, codebook_size", [("fsq", {"levels": [5, 5, 5]}, 125), ("vq", {"codebook_size": 32}, 32)])
def test_a_discrete_bottleneck_tokenizes_and_decodes_its_codes(tmp_path, bottleneck, options, codebook_size):
    model = small(bottleneck=bottleneck, quantizer=options, latent_channels=3)
    assert model.discrete and model.codebook_size == codebook_size
    terms = model.training_losses({"frames": clip(5, 16)})
    assert terms["loss"].isfinite() and {"l1", "mse"} <= set(terms)
    model.eval()
    frames = clip(9, 16)
    codes = model.tokenize(frames)
    assert codes.shape == (2, 2, 2, 2) and codes.dtype == torch.int64  # 1 + 8 frames at 16 px, 8x8x8
    with torch.no_grad():
        torch.testing.assert_close(model.decode_indices(codes), model.decode(model.encode(frames)))
        loaded = load_model_folder(save_model_folder(model, tmp_path / "tokenizer"))
        assert torch.equal(loaded.tokenize(frames), codes)


@pytest.mark.parametrize(
    "name, temporal, spatial, channels",
    [("cosmos_cv_4x8x8.yaml", 4, 8, 16), ("cosmos_cv_8x16x16.yaml", 8, 16, 16), ("cosmos_dv_8x16x16.yaml", 8, 16, 6)],
)
def test_the_real_scale_configs_build_and_take_a_training_step(name, temporal, spatial, channels):
    torch.manual_seed(0)
    model = from_yaml(name)
    assert model.compression == (temporal, spatial, spatial) and model.latent_channels == channels
    frames = clip(1 + temporal, spatial, batch=1)  # the smallest clip: two latent frames of 1x1
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    terms = model.training_losses({"frames": frames})
    terms["loss"].backward()
    optimizer.step()
    assert terms["loss"].isfinite() and model.encode(frames).shape == (1, channels, 2, 1, 1)
    if model.discrete:  # Cosmos DV: FSQ [8, 8, 8, 5, 5, 5], 64,000 codes
        assert model.codebook_size == 64_000 and model.tokenize(frames).shape == (1, 2, 1, 1)
