"""The errors of ingestion: one bad input (`VideoDecodeError`, it costs that input only) and one bad
setting (`SettingsError`, `SettingsChangedError`: they stop the run before it starts, naming the
flag)."""

from __future__ import annotations

from pathlib import Path


class VideoDecodeError(Exception):
    """An input that cannot be ingested, e.g. `VideoDecodeError("cityCC0.mpg", "no video stream")`."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class SettingsError(ValueError):
    """A setting that cannot work, e.g. `SettingsError("--size", 255, "must be even ...")`."""

    def __init__(self, flag: str, value, reason: str):
        self.flag, self.value, self.reason = flag, value, reason
        super().__init__(f"{flag} {_shown(value)}: {reason}")


def check_setting(holds: bool, flag: str, value, reason: str) -> None:
    """Raise `SettingsError(flag, value, reason)` unless `holds`."""
    if not holds:
        raise SettingsError(flag, value, reason)


class SettingsChangedError(RuntimeError):
    """A resumed run whose settings would change the clips its folder already holds.

    `changes` maps each flag to (this run's value, the folder's value)."""

    def __init__(self, folder: Path, saved: Path, changes: dict[str, tuple]):
        self.folder, self.changes = folder, changes
        listed = ", ".join(f"{flag} {_shown(new)} (was {_shown(old)})" for flag, (new, old) in changes.items())
        super().__init__(
            f"{folder} was ingested with other settings ({saved}): {listed}; "
            "rerun with the folder's values, or ingest into a new --out"
        )
