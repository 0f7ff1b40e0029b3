"""Human sizes on the command line: `512MB`, `1GB`, `3.5GiB`, or plain bytes."""

from __future__ import annotations

import re

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(text: str | int) -> int:
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in UNITS:
        raise ValueError(f"not a size: {text!r} (try 512MB or 1GiB)")
    try:
        number = float(match.group(1))
    except ValueError:
        raise ValueError(f"not a size: {text!r} (try 512MB or 1GiB)") from None
    return round(number * UNITS[match.group(2).upper()])
