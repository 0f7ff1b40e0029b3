"""`reverie train CONFIG [key=value ...]`: the config and its overrides reach the trainer, and a
missing config or a bad override exits 2 naming it before anything trains. Training itself, resume
and signals are in `tests/training/test_train.py`."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from reverie.cli.main import main

TINY = Path(__file__).resolve().parents[2] / "configs" / "autoencoder" / "tiny.yaml"


@pytest.fixture
def fits(monkeypatch) -> list:
    """The configs `fit` is called with; a stand-in trainer module, so Lightning is not imported."""
    calls = []
    trainer = ModuleType("reverie.training.trainer")
    trainer.fit = lambda config: calls.append(config) or Path(config.run.dir)
    monkeypatch.setitem(sys.modules, "reverie.training.trainer", trainer)
    return calls


def test_overrides_reach_the_trainer_and_the_run_folder_is_printed(fits, tmp_path, capsys):
    assert main(["train", str(TINY), "trainer.max_steps=7", "optim.lr=0.5", f"run.dir={tmp_path / 'run'}"]) == 0
    (config,) = fits
    assert (config.trainer.max_steps, config.optim.lr, config.data.window) == (7, 0.5, 4)  # the window from the YAML
    assert config.model.name == "frame_autoencoder"
    assert capsys.readouterr().out == f"run folder: {tmp_path / 'run'}\n"


def test_without_overrides_the_yaml_and_the_defaults_apply(fits):
    assert main(["train", str(TINY)]) == 0
    (config,) = fits
    assert config.trainer.max_steps == 60 and config.run.dir == "runs/autoencoder-tiny"  # run.dir resolved from run.name
    assert config.trainer.precision == "32-true"  # not in the YAML: the default


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.max_step=5"], "trainer.max_step"),
        (["trainer.max_steps=lots"], "trainer.max_steps"),
        (["data.batchsize=64"], "data.batchsize: Key 'batchsize' not in 'DataSettings'. Did you mean: 'batch_size'?; known: name, shards, "),
        (["model.latent_chanels=2"], "model.latent_chanels: not a field of frame_autoencoder's config; known: channels, latent_channels, "),
    ],
)
def test_a_bad_override_exits_2_naming_the_key(fits, overrides, message, capsys):
    assert main(["train", str(TINY), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reverie train: config {TINY}: ") and message in err
    assert fits == []


def test_a_missing_config_exits_2_naming_it(fits, tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"reverie train: config {tmp_path / 'nope.yaml'} not found\n"
    assert fits == []


def test_a_config_is_required(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train"])
    assert exit.value.code == 2 and "CONFIG" in capsys.readouterr().err
