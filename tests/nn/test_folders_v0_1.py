"""Model folders written by reverie 0.1 (two transformer blocks, V-JEPA's with `mlp.0`/`mlp.2`
keys) still load and give the outputs that 0.1 stored beside them for the same calls, and a model
built with 0.1's seed gets 0.1's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reverie.nn.model_folder import MODELS, load_model_folder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0.1"


@pytest.fixture(scope="module")
def stored() -> dict[str, torch.Tensor]:
    """The inputs and the outputs that reverie 0.1 computed from them."""
    return load_file(str(FIXTURES / "outputs.safetensors"))


def assert_as_stored(outputs: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> None:
    for name, output in outputs.items():
        torch.testing.assert_close(output, stored[name], rtol=1e-4, atol=1e-5, msg=lambda message: f"{name}: {message}")


@torch.no_grad()
def test_a_v0_1_vjepa_folder_gives_its_stored_outputs(stored):
    vjepa = load_model_folder(FIXTURES / "vjepa")
    context_index, target_index = torch.tensor([[0, 1, 2, 3]]), torch.tensor([[4, 5, 6, 7]])
    context = vjepa.encoder(vjepa.normalize(stored["clip"][:1]), context_index)
    outputs = {
        "vjepa.clip_features": vjepa(stored["clip"]),
        "vjepa.frame_features": vjepa.encode_frames(stored["frames"]),
        "vjepa.predicted": vjepa.predictor(context, context_index, target_index, (2, 2, 2)),
    }
    assert_as_stored(outputs, stored)


@torch.no_grad()
def test_a_v0_1_vjepa_ac_folder_gives_its_stored_outputs(stored):
    model = load_model_folder(FIXTURES / "vjepa_ac")
    features = model.encode(stored["frames"])
    imagined = model.rollout(features[0], stored["actions"], states=stored["states"], context_actions=stored["context_actions"])
    assert_as_stored({"vjepa_ac.features": features, "vjepa_ac.imagined": imagined}, stored)


@pytest.mark.parametrize("name, seed", [("vjepa", 0), ("vjepa_ac", 1)])  # the seeds the fixtures were made with
def test_a_model_built_with_the_v0_1_seed_gets_the_v0_1_weights(name, seed):
    model_class = MODELS.get(name)
    config = json.loads((FIXTURES / name / "config.json").read_text())["config"]
    torch.manual_seed(seed)
    state = model_class(model_class.config_class(**config)).state_dict()
    stored = load_file(str(FIXTURES / name / "model.safetensors"))
    stored = {key.replace(".mlp.0.", ".fc1.").replace(".mlp.2.", ".fc2."): tensor for key, tensor in stored.items()}
    assert state.keys() == stored.keys()
    assert all(torch.equal(state[key], stored[key]) for key in state)
