"""What every CLI test needs: a console wide enough that rich never wraps a line, paths included."""

import pytest


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
