"""The error every stage raises for one bad input: it names the file and the reason."""

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
