"""Model folders: `config.json` + `model.safetensors`, the layout LeRobot and huggingface_hub use.

`config.json` names a class registered in `MODELS` and holds its dataclass config; loading builds
that class and reads the tensors with safetensors. Nothing is unpickled and no class outside the
registry is ever imported, so a folder from someone else is data, not code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from reverie.registry import Registry

MODELS: Registry[type[torch.nn.Module]] = Registry(
    "model",
    lazy={
        "mlp_policy": "reverie.nn.policies",
        "frame_autoencoder": "reverie.tokenizers.frame_autoencoder",
        "vjepa": "reverie.pretrain.vjepa",
        "vjepa_ac": "reverie.posttrain.ac_predictor",
    },
)


def save_model_folder(model: torch.nn.Module, folder: str | Path) -> Path:
    """Write `model` (a registered class with a dataclass `config` attribute) to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model": model.registry_name, "config": dataclasses.asdict(model.config)}
    partial = folder / "config.json.tmp"
    partial.write_text(json.dumps(config, indent=2))
    os.replace(partial, folder / "config.json")
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors.tmp"), metadata={"model": model.registry_name})
    os.replace(folder / "model.safetensors.tmp", folder / "model.safetensors")
    return folder


def load_model_folder(folder: str | Path) -> torch.nn.Module:
    """Build the registered model that `folder/config.json` names and load its weights."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.exists() or not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"{folder}: not a model folder (needs config.json and model.safetensors)")
    config = json.loads(config_file.read_text())
    model_class = MODELS.get(config["model"])
    config_class = model_class.config_class
    model = model_class(config_class(**config["config"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval()
