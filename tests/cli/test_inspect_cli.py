"""`reverie inspect DIR`: the summary as JSON or a table, the contact sheet in DIR unless --sheet
names it, --sheet-clips rows. Summaries of ingested video, failures and the sheet's tiles are in
`tests/shards/test_inspect.py` (with ffmpeg); here a recorded folder needs none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from reverie.cli import inspect
from reverie.cli.main import main
from reverie.pipelines.record import RecordConfig, run_record

TILE, COLUMNS = 96, 8  # the contact sheet's tile size and frames per row


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """2 CartPole episodes of 12 steps in clips of 4 frames: 6 clips."""
    out = tmp_path_factory.mktemp("recorded") / "cartpole"
    run_record(RecordConfig("CartPole-v1", episodes=2, out=out, size=32, clip_frames=4, clip_format="npy", max_steps=12, progress=False))
    return out


def inspect_json(capsys, *arguments: str) -> dict:
    capsys.readouterr()
    assert main(["inspect", *arguments, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_summary_of_a_recorded_folder_with_the_sheet_inside_it(recorded, capsys):
    summary = inspect_json(capsys, str(recorded))
    assert (summary["inputs"], summary["clips"], summary["episodes"], summary["with_actions"]) == (2, 6, 2, 6)
    assert summary["contact_sheet"] == str(recorded / "contact_sheet.png")
    assert Image.open(recorded / "contact_sheet.png").size == (COLUMNS * TILE, 6 * TILE)  # one row per clip, up to 8


def test_sheet_and_sheet_clips_choose_where_and_how_many_rows(recorded, tmp_path, capsys):
    summary = inspect_json(capsys, str(recorded), "--sheet", str(tmp_path / "sheet.png"), "--sheet-clips", "2")
    assert summary["contact_sheet"] == str(tmp_path / "sheet.png")
    assert Image.open(tmp_path / "sheet.png").size == (COLUMNS * TILE, 2 * TILE)


def test_without_json_the_table_is_printed_with_the_sheet(monkeypatch, tmp_path, capsys):
    printed, sheets = [], []
    monkeypatch.setattr(inspect, "summarize", lambda folder: {"folder": str(folder), "clips": 0})
    monkeypatch.setattr(inspect, "contact_sheet", lambda folder, out, clips: sheets.append((out, clips)))  # None: no clips to show
    monkeypatch.setattr(inspect, "print_summary", printed.append)
    assert main(["inspect", str(tmp_path)]) == 0
    assert printed == [{"folder": str(tmp_path), "clips": 0, "contact_sheet": None}] and capsys.readouterr().out == ""
    assert sheets == [(tmp_path / "contact_sheet.png", 8)]


def test_a_folder_that_is_not_an_ingest_output_exits_2_naming_it(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert f"reverie inspect: {tmp_path}: no manifest.jsonl and no shards/*.tar" in capsys.readouterr().err
