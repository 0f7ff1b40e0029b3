"""`MetricsCSV` on resume: the rows past the resumed step (and a row cut short by a kill) are cut
off the end of the file in place; the rows before them are never rewritten."""

from __future__ import annotations

import builtins
from types import SimpleNamespace

import pytest

from reverie.training import callbacks
from reverie.training.callbacks import MetricsCSV

ROWS = b"step,loss,lr\r\n1,0.9,0.1\r\n2,0.8,0.1\r\n3,0.7,0.1\r\n4,0.6,0.1\r\n"


@pytest.fixture
def opened_modes(monkeypatch) -> list[str]:
    """The modes the callbacks module opens files with."""
    modes = []

    def recording_open(file, mode="r", *args, **kwargs):
        modes.append(mode)
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(callbacks, "open", recording_open, raising=False)
    return modes


def resume_at(path, step: int) -> MetricsCSV:
    metrics = MetricsCSV(path)
    metrics.on_train_start(SimpleNamespace(global_step=step, is_global_zero=True), None)
    return metrics


def test_a_resume_cuts_the_rows_past_its_step_in_place(tmp_path, opened_modes):
    path = tmp_path / "metrics.csv"
    path.write_bytes(ROWS + b"5,0.5")  # the last row was cut short by a kill
    metrics = resume_at(path, 2)
    assert path.read_bytes() == b"step,loss,lr\r\n1,0.9,0.1\r\n2,0.8,0.1\r\n"
    assert not any("w" in mode for mode in opened_modes)
    metrics._write({"step": 3, "loss": 0.65, "lr": 0.1, "samples_per_s": 10.0})
    assert path.read_bytes().endswith(b"2,0.8,0.1\r\n3,0.65,0.1\r\n")  # the file's columns, appended


@pytest.mark.parametrize("content, kept", [(ROWS, ROWS), (b"step,lo", b""), (b"", b"")])
def test_a_resume_keeps_what_it_can(tmp_path, content, kept):
    path = tmp_path / "metrics.csv"
    path.write_bytes(content)
    resume_at(path, 10)
    assert path.read_bytes() == kept
