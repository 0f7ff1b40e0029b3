"""transformers' VJEPA2Model, saved to a local folder (conftest's `vjepa2_folder`), as V-JEPA's backbone."""

from __future__ import annotations

import pathlib

import pytest
import torch

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.pretrain.vjepa import VJEPA, VJEPAConfig

pytest.importorskip("transformers", reason="transformers (with VJEPA2Model) is not installed")
HIDDEN = 48  # the width of conftest's tiny VJEPA2Model


def hf_vjepa(folder) -> VJEPA:
    config = VJEPAConfig(backbone="hf", hf_folder=str(folder), predictor_dim=32, predictor_depth=1, predictor_heads=2)
    return VJEPA(config).eval()


def test_the_backbone_gives_the_features_of_the_saved_model(vjepa2_folder):
    folder, reference = vjepa2_folder
    model = hf_vjepa(folder)
    frames = torch.rand(2, 8, 3, 32, 32)
    with torch.no_grad():
        features = model(frames)
        assert features.shape == (2, 4 * 4 * 4, HIDDEN)
        torch.testing.assert_close(features, reference.get_vision_features(model.normalize(frames)))
        assert model.encode_frames(frames[:, :3]).shape == (2, 3, model.tokens_per_frame(32, 32), model.feature_dim) == (2, 3, 16, HIDDEN)


def test_the_backbone_trains_and_round_trips_through_a_model_folder(vjepa2_folder, tmp_path):
    folder, _ = vjepa2_folder
    model = hf_vjepa(folder).train()
    terms = model.training_losses({"frames": torch.rand(2, 8, 3, 32, 32)})
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.target_encoder.parameters())
    save_model_folder(model, tmp_path / "model")
    loaded = load_model_folder(tmp_path / "model")
    frames = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_frames(frames), model.eval().encode_frames(frames), rtol=0, atol=0)


def test_wrong_folders_and_frame_sizes_are_named(vjepa2_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        hf_vjepa(tmp_path / "missing")
    with pytest.raises(ValueError, match="built for 32x32 px frames, not 64x64"):
        hf_vjepa(vjepa2_folder[0]).encode_frames(torch.rand(1, 1, 3, 64, 64))


class CreatesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def test_only_safetensors_weights_are_read(vjepa2_folder, tmp_path):
    """A pickled `pytorch_model.bin` is refused, even one that holds only tensors, and nothing in it runs."""
    folder, reference = vjepa2_folder
    pickled = tmp_path / "pickled"
    reference.save_pretrained(pickled)
    (pickled / "model.safetensors").unlink()
    torch.save(reference.state_dict(), pickled / "pytorch_model.bin")  # the weights as older transformers pickled them
    with pytest.raises(FileNotFoundError, match=f"{pickled}: no model.safetensors"):
        hf_vjepa(pickled)
    marker = tmp_path / "created-by-the-pickle"
    torch.save({"weight": CreatesAFile(marker)}, pickled / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        hf_vjepa(pickled)
    assert not marker.exists()
