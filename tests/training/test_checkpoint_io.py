"""Checkpoint files are data: every load, whatever the strategy, builds tensors and plain containers
only, and a file that is cut short or holds code is named with the reason."""

from __future__ import annotations

import pathlib

import pytest
import torch

from reverie.training.checkpoint_io import AtomicCheckpointIO, CheckpointError, checkpoint_problem, load_data, load_deepspeed_file


class CreatesAFile:
    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


@pytest.fixture
def code_checkpoint(tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    """(a checkpoint whose pickle would create a file, that file)."""
    marker = tmp_path / "created-by-the-pickle"
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "callbacks": CreatesAFile(marker)}, tmp_path / "code.ckpt")
    return tmp_path / "code.ckpt", marker


@pytest.mark.parametrize(
    "load",
    [load_data, AtomicCheckpointIO().load_checkpoint, load_deepspeed_file],
    ids=["load_data", "checkpoint_io", "deepspeed_files"],
)
def test_every_loader_refuses_a_pickle_that_runs_code(code_checkpoint, load):
    path, marker = code_checkpoint
    with pytest.raises(CheckpointError, match=f"{path}: .*not only tensors and plain data"):
        load(path)
    assert not marker.exists()


def test_a_checkpoint_round_trips_through_the_atomic_io(tmp_path):
    state = {"global_step": 3, "state_dict": {"weight": torch.arange(4.0)}, "loops": {"positions": [1, 2]}}
    AtomicCheckpointIO().save_checkpoint(state, tmp_path / "step.ckpt")
    loaded = AtomicCheckpointIO().load_checkpoint(tmp_path / "step.ckpt")
    assert loaded["loops"] == state["loops"] and torch.equal(loaded["state_dict"]["weight"], state["state_dict"]["weight"])
    assert [path.name for path in tmp_path.iterdir()] == ["step.ckpt"]


def test_problems_are_named(tmp_path, code_checkpoint):
    torch.save({"weight": torch.zeros(100)}, tmp_path / "good.ckpt")
    assert checkpoint_problem(tmp_path / "good.ckpt") is None
    (tmp_path / "cut.ckpt").write_bytes((tmp_path / "good.ckpt").read_bytes()[:-30])
    assert "truncated" in checkpoint_problem(tmp_path / "cut.ckpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert "truncated" in checkpoint_problem(tmp_path / "empty.ckpt")
    assert "not only tensors and plain data" in checkpoint_problem(code_checkpoint[0])
    (tmp_path / "cut-deepspeed.ckpt").mkdir()  # a DeepSpeed save killed before it wrote `latest`
    assert "no `latest` file" in checkpoint_problem(tmp_path / "cut-deepspeed.ckpt")
