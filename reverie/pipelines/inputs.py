"""Expand `reverie ingest` arguments (files, folders searched recursively, glob patterns) into a
de-duplicated list of absolute file paths: arguments in the order given, each folder's and each
pattern's files sorted."""

from __future__ import annotations

import glob
import os
from pathlib import Path

GLOB_CHARS = set("*?[")


def _visible_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def expand_inputs(arguments: list[str]) -> list[str]:
    """Files as given (a missing one stays, to be reported as failed), folders recursively without
    hidden entries, glob patterns (with `**`) as matched."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found.extend(_visible_files(path))
        elif GLOB_CHARS & set(argument) and not path.exists():
            found.extend(sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file()))
        else:
            found.append(path)
    unique = dict.fromkeys(os.path.abspath(p) for p in found)
    return list(unique)


def read_input_list(path: Path) -> list[str]:
    """One path per line; blank lines and `#` comments are ignored."""
    lines = (line.strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]
