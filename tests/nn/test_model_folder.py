"""Model folders are written whole (config and weights never mismatch, even when a save fails half
way or overwrites an older folder), and a folder this version cannot read names itself and the field."""

from __future__ import annotations

import json

import pytest
import torch

from reverie.nn import model_folder
from reverie.nn.model_folder import ModelFolderError, load_model_folder, save_model_folder
from reverie.nn.policies import MLPPolicy, MLPPolicyConfig

BOX = {"type": "box", "shape": [2], "low": [-1.0, -1.0], "high": [1.0, 1.0]}


def policy(hidden: list[int], seed: int = 0) -> MLPPolicy:
    torch.manual_seed(seed)
    return MLPPolicy(MLPPolicyConfig(observation_dim=3, action_space=BOX, hidden=hidden))


def assert_same_weights(folder, model) -> None:
    loaded = load_model_folder(folder)
    assert loaded.config == model.config
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_a_save_replaces_an_older_folder_whole(tmp_path):
    save_model_folder(policy([4]), tmp_path / "model")
    newer = policy([8, 8], seed=1)
    assert save_model_folder(newer, tmp_path / "model") == tmp_path / "model"
    assert_same_weights(tmp_path / "model", newer)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]  # no temporary or old folder left
    assert sorted(path.name for path in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors"]


def test_a_save_that_fails_half_way_leaves_the_older_folder_as_it_was(tmp_path, monkeypatch):
    older = policy([4])
    save_model_folder(older, tmp_path / "model")

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(model_folder, "save_file", disk_full)  # the weights fail after the config was written
    with pytest.raises(OSError, match="No space left"):
        save_model_folder(policy([8, 8], seed=1), tmp_path / "model")
    assert_same_weights(tmp_path / "model", older)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]


def test_a_folder_holding_other_files_is_not_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelFolderError, match=f"{tmp_path}: holds files that are not a model folder's \\(notes.txt\\)"):
        save_model_folder(policy([4]), tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.fixture
def saved(tmp_path):
    return save_model_folder(policy([4]), tmp_path / "model")


def rewrite_config(folder, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_a_config_without_a_model_name_names_the_folder(saved):
    rewrite_config(saved, lambda config: config.pop("model"))
    with pytest.raises(ModelFolderError, match=f"{saved / 'config.json'}: no 'model' field"):
        load_model_folder(saved)


def test_fields_from_another_version_are_named(saved):
    rewrite_config(saved, lambda config: config["config"].update(dropout=0.1, norm="layer"))
    with pytest.raises(ModelFolderError, match=f"{saved / 'config.json'}: dropout, norm: not fields of mlp_policy's config") as error:
        load_model_folder(saved)
    assert "known: observation_dim, action_space, hidden" in str(error.value)


def test_an_unknown_model_or_a_missing_field_is_named(saved):
    rewrite_config(saved, lambda config: config.update(model="mlp_polcy"))
    with pytest.raises(ModelFolderError, match=f"{saved / 'config.json'}: model 'mlp_polcy' is not registered"):
        load_model_folder(saved)
    rewrite_config(saved, lambda config: config.update(model="mlp_policy") or config["config"].pop("observation_dim"))
    with pytest.raises(ModelFolderError, match=f"{saved / 'config.json'}: observation_dim: missing"):
        load_model_folder(saved)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match=f"{saved / 'config.json'}: not JSON"):
        load_model_folder(saved)
