"""Model folders: `config.json` + `model.safetensors`, the layout LeRobot and huggingface_hub use.

`config.json` names a class registered in `MODELS` and holds its dataclass config; loading builds
that class and reads the tensors with safetensors. Nothing is unpickled and no class outside the
registry is ever imported, so a folder from someone else is data, not code; one this version
cannot read (no model name, fields of another version) is a `ModelFolderError` naming the field.

A folder is written whole: both files go to a temporary folder beside it, which is then renamed
into place, so its config and weights never come from two saves. An older model folder there is
renamed away first and removed after; a folder holding anything else is never replaced.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from reverie.registry import Registry

MODELS: Registry[type[torch.nn.Module]] = Registry(
    "model",
    lazy={
        "mlp_policy": "reverie.nn.policies",
        "frame_autoencoder": "reverie.tokenizers.frame_autoencoder",
        "causal_video_autoencoder": "reverie.tokenizers.causal_video_autoencoder",
        "st_vivit_tokenizer": "reverie.tokenizers.st_vivit",
        "discrete_frame_autoencoder": "reverie.tokenizers.discrete_frame_autoencoder",
        "vjepa": "reverie.pretrain.vjepa",
        "vjepa_ac": "reverie.posttrain.ac_predictor",
        "pixel_diffusion_world_model": "reverie.pretrain.pixel_diffusion",
        "latent_diffusion_world_model": "reverie.pretrain.latent_diffusion",
        "last_frame_world_model": "reverie.pretrain.last_frame_world_model",
        "token_world_model": "reverie.pretrain.token_world_model",
        "latent_action_model": "reverie.pretrain.latent_actions",
        "maskgit_dynamics": "reverie.pretrain.maskgit_dynamics",
        "action_conditioned_world_model": "reverie.posttrain.action_conditioning",
        "reward_model": "reverie.pretrain.reward_model",
    },
)
FILES = ("config.json", "model.safetensors")
LEFTOVERS = ("config.json.tmp", "model.safetensors.tmp")  # what a save by reverie 0.1 that was killed left


class ModelFolderError(ValueError):
    """A folder that is not a model folder this version can read or replace; names it and why."""


def save_model_folder(model: torch.nn.Module, folder: str | Path) -> Path:
    """Write `model` (a registered class with a dataclass `config` attribute) to `folder`, whole."""
    folder = Path(folder)
    foreign = sorted(path.name for path in folder.iterdir() if path.name not in FILES + LEFTOVERS) if folder.is_dir() else []
    if foreign or (folder.exists() and not folder.is_dir()):
        raise ModelFolderError(f"{folder}: holds files that are not a model folder's ({', '.join(foreign) or 'a file'}); not replacing it")
    resolved = folder.resolve()
    partial, replaced = resolved.with_name(f".{resolved.name}.partial"), resolved.with_name(f".{resolved.name}.replaced")
    if replaced.is_dir() and not folder.exists():  # a save killed between its two renames: the older folder is whole
        os.rename(replaced, folder)
    for leftover in (partial, replaced):
        shutil.rmtree(leftover, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        write_files(model, partial)
        if folder.exists():
            os.rename(folder, replaced)
        os.rename(partial, folder)
    except BaseException:
        if replaced.exists() and not folder.exists():
            os.rename(replaced, folder)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(replaced, ignore_errors=True)
    return folder


def write_files(model: torch.nn.Module, folder: Path) -> None:
    config = {"model": model.registry_name, "config": dataclasses.asdict(model.config)}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"model": model.registry_name})
    for name in FILES:  # on disk before the rename makes them the folder
        descriptor = os.open(folder / name, os.O_RDONLY)
        os.fsync(descriptor)
        os.close(descriptor)


def load_model_folder(folder: str | Path) -> torch.nn.Module:
    """Build the registered model that `folder/config.json` names and load its weights."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.exists() or not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"{folder}: not a model folder (needs config.json and model.safetensors)")
    model_class, fields = read_config(config_file)
    model = model_class(model_class.config_class(**fields))
    try:
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
    except RuntimeError as error:  # keys or shapes of another version
        raise ModelFolderError(f"{folder / 'model.safetensors'}: {' '.join(str(error).split())}") from error
    return model.eval()


def read_config(config_file: Path) -> tuple[type[torch.nn.Module], dict]:
    """(the registered class, its config fields) that a `config.json` holds, each checked."""
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ModelFolderError(f"{config_file}: not JSON ({error})") from error
    if not isinstance(config, dict) or "model" not in config:
        raise ModelFolderError(f"{config_file}: no 'model' field naming a registered model ({', '.join(MODELS.names())})")
    if config["model"] not in MODELS:
        raise ModelFolderError(f"{config_file}: model {config['model']!r} is not registered; known: {', '.join(MODELS.names())}")
    model_class = MODELS.get(config["model"])
    fields = config.get("config", {})
    known = {field.name: field for field in dataclasses.fields(model_class.config_class)}
    unknown = [name for name in fields if name not in known]
    if unknown:
        where = f"{config_file}: {', '.join(unknown)}: not fields of {config['model']}'s config"
        raise ModelFolderError(f"{where} (written by another version?); known: {', '.join(known)}")
    unset = dataclasses.MISSING
    required = [name for name, field in known.items() if field.default is unset and field.default_factory is unset]
    missing = [name for name in required if name not in fields]
    if missing:
        raise ModelFolderError(f"{config_file}: {', '.join(missing)}: missing from {config['model']}'s config")
    return model_class, fields
