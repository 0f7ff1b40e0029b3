"""What `reverie train` checks before it trains: one writer per run folder, a newest checkpoint that
does not load is skipped, checkpoints are data under FSDP too, a missing data path is named, and a
resumed run with another config is refused. Each refusal exits 2 and changes no file."""

from __future__ import annotations

import pathlib
import subprocess
from types import SimpleNamespace

import pytest
import torch

from reverie.cli.main import main
from reverie.training.config import RunInputError, load_config, save_config
from reverie.training.trainer import build_strategy, resume_checkpoint
from training_runs import TINY, train_command



class CreatesAFile:
    """A pickle that, when loaded, calls `Path.touch`: code, not data."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def write_checkpoint(run_dir: pathlib.Path, step: int, **extra) -> pathlib.Path:
    path = run_dir / "checkpoints" / f"step-{step:08d}.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {"weight": torch.full((2, 2), float(step))}, **extra}, path)
    return path


def files_of(folder: pathlib.Path) -> dict[str, bytes]:
    """The run's files and their bytes, the lock file aside."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file() and path.name != ".lock"}


def test_a_truncated_newest_checkpoint_is_skipped_saying_so(tmp_path, capsys):
    older, newest = write_checkpoint(tmp_path, 8), write_checkpoint(tmp_path, 16)
    newest.write_bytes(newest.read_bytes()[:100])  # what a copy cut short leaves
    assert resume_checkpoint(tmp_path) == str(older)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"skipping {newest}: ") and "truncated" in line


def test_a_newest_checkpoint_that_would_run_code_is_skipped_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "created-by-the-pickle"
    older, newest = write_checkpoint(tmp_path, 8), write_checkpoint(tmp_path, 16, callbacks=CreatesAFile(marker))
    assert resume_checkpoint(tmp_path) == str(older)
    assert not marker.exists()
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"skipping {newest}: ") and "not only tensors and plain data" in line


def test_a_run_whose_checkpoints_all_fail_to_load_is_not_started_over(tmp_path):
    write_checkpoint(tmp_path, 8).write_bytes(b"")
    with pytest.raises(RunInputError, match=f"{tmp_path / 'checkpoints'}: no checkpoint loads"):
        resume_checkpoint(tmp_path, say=lambda line: None)
    assert resume_checkpoint(tmp_path / "new") is None


def test_the_fsdp_strategy_loads_a_full_checkpoint_as_data(tmp_path):
    """Lightning's own FSDP load of a full checkpoint unpickles anything (its lazy loader); the
    strategy `reverie train` builds refuses the file before it touches the model."""
    marker = tmp_path / "created-by-the-pickle"
    path = write_checkpoint(tmp_path, 8, callbacks=CreatesAFile(marker))
    strategy = fsdp_strategy_around(torch.nn.Linear(2, 2, bias=False))
    with pytest.raises(ValueError, match=f"{path}: .*not only tensors and plain data"):
        strategy.load_checkpoint(path)
    assert not marker.exists()


def test_the_fsdp_strategy_puts_a_data_checkpoint_into_the_model(tmp_path):
    model = torch.nn.Linear(2, 2, bias=False)
    rest = fsdp_strategy_around(model).load_checkpoint(write_checkpoint(tmp_path, 8))
    assert torch.equal(model.weight.detach(), torch.full((2, 2), 8.0)) and rest == {"global_step": 8}


def fsdp_strategy_around(model: torch.nn.Module):
    """The strategy `trainer.strategy=fsdp` builds, holding `model` (one process, so no FSDP
    wrapping: the full state loads as into a plain module), outside fitting."""
    strategy = build_strategy(load_config(TINY, ["trainer.strategy=fsdp"]), ())
    strategy.model = model
    strategy._lightning_module = SimpleNamespace(strict_loading=True, trainer=SimpleNamespace(state=SimpleNamespace(fn="validate")))
    return strategy


def test_a_second_training_of_the_same_folder_exits_2_naming_the_holder_and_changes_nothing(tmp_path, clip_shards, hold_lock):
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 8)
    holder = hold_lock(run_dir)
    before = files_of(run_dir)
    done = subprocess.run(train_command(run_dir, clip_shards, "trainer.max_steps=2"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().endswith(f"{run_dir} is being written by process {holder.pid} (lock {run_dir / '.lock'}); wait for it to finish, or stop it")
    assert files_of(run_dir) == before


def test_a_missing_data_path_exits_2_naming_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(TINY), f"data.shards={tmp_path / 'nowhere'}", f"run.dir={run_dir}"]) == 2
    assert capsys.readouterr().err == f"reverie train: data.shards: {tmp_path / 'nowhere'} does not exist\n"
    assert not (run_dir / "config.yaml").exists()


def test_a_resumed_run_with_another_config_exits_2_listing_the_differences(tmp_path, clip_shards, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stored = load_config(TINY, [f"data.shards={clip_shards}", f"run.dir={run_dir}"])
    save_config(stored, run_dir / "config.yaml")
    before = files_of(run_dir)
    assert main(["train", str(TINY), f"data.shards={clip_shards}", f"run.dir={run_dir}", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reverie train: {run_dir} holds a run of another config (optim.lr: 0.002 -> 0.5)")
    assert files_of(run_dir) == before
