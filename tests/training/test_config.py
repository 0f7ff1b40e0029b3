"""Run configs are checked before any work: unknown `data` and `model` keys are errors that name the
key and list the known ones (in `reverie train` and `reverie submit --dry-run`), and a resumed run
may change only its length, its logging, its checkpointing and where its folder and data are."""

from __future__ import annotations

import pytest

from reverie.cli.main import main
from reverie.training.config import RunInputError, check_resumable, load_config, save_config
from training_runs import TINY


def test_an_unknown_data_key_names_it_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"data\.batchsize") as error:
        load_config(TINY, ["data.batchsize=64"])
    assert "known: name, shards, window, batch_size, num_workers, shuffle_buffer, samples_per_epoch" in str(error.value)


def test_the_data_config_is_typed():
    config = load_config(TINY, ["data.batch_size=64"])
    assert (config.data.batch_size, config.data.shuffle_buffer, config.data.name) == (64, 64, "shards")  # the YAML, then the defaults
    with pytest.raises(ValueError, match=r"data\.batch_size"):
        load_config(TINY, ["data.batch_size=many"])


def test_an_unknown_model_key_names_it_and_the_models_fields():
    with pytest.raises(ValueError, match=r"model\.chanels: not a field of frame_autoencoder's config") as error:
        load_config(TINY, ["model.chanels=[8]"])
    assert "known: channels, latent_channels, image_channels, l1_weight" in str(error.value)
    with pytest.raises(ValueError, match=r"model\.name: unknown model 'frame_autoencodr'"):
        load_config(TINY, ["model.name=frame_autoencodr"])


def test_an_unknown_model_key_stops_train_and_submit_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(TINY), "model.chanels=[8]", f"run.dir={tmp_path / 'run'}"]) == 2
    assert "model.chanels: not a field of frame_autoencoder's config" in capsys.readouterr().err
    assert main(["submit", str(TINY), "model.chanels=[8]", "--dry-run"]) == 2
    assert "model.chanels: not a field of frame_autoencoder's config" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no run folder, no script


@pytest.fixture
def stored_run(tmp_path):
    """A run folder whose config.yaml is tiny.yaml with its data under /data/old."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(load_config(TINY, ["data.shards=/data/old", f"run.dir={run_dir}"]), run_dir / "config.yaml")
    return run_dir


def test_a_resumed_run_may_change_its_length_logging_checkpoints_and_layout(stored_run, tmp_path):
    changed = ["trainer.max_steps=500", "trainer.log_every_n_steps=1", "run.wandb=true", "checkpoint.every_n_steps=7", "checkpoint.keep=9"]
    moved = ["data.shards=/data/new", f"run.dir={stored_run}"]  # the data moved; run.dir is the folder itself
    check_resumable(load_config(TINY, [*changed, *moved]), stored_run)
    check_resumable(load_config(TINY, ["data.shards=/data/old", f"run.dir={tmp_path / 'copy'}"]), stored_run)  # a copied folder


def test_a_resumed_run_with_another_config_is_refused_with_the_differences(stored_run):
    asked = load_config(TINY, ["data.shards=/data/old", f"run.dir={stored_run}", "optim.lr=0.5", "data.window=2", "model.channels=[8]"])
    with pytest.raises(RunInputError) as error:
        check_resumable(asked, stored_run)
    message = str(error.value)
    assert message.startswith(f"{stored_run} holds a run of another config (")
    assert "data.window: 4 -> 2" in message and "model.channels: [16, 32] -> [8]" in message and "optim.lr: 0.002 -> 0.5" in message
    assert "trainer.max_steps" in message and "checkpoint.*" in message  # what may change
