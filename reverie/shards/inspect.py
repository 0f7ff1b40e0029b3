"""What an ingested folder holds: inputs by status, failures by reason, clips, hours, resolution and
frame-rate spread, filter scores; and a contact sheet of sample clips.

Only reads the folder (a run may be writing it): a torn manifest line is skipped, not repaired, and
unfinished `.tar.tmp` shards are not looked at."""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import tarfile
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from reverie.shards.payloads import decode_mp4
from reverie.shards.manifest import read_manifest


def manifest_lines(folder: Path) -> list[dict]:
    if (folder / "manifest.jsonl").exists():
        return read_manifest(folder / "manifest.jsonl")
    return [line for part in sorted((folder / "manifests").glob("slice-*.jsonl")) for line in read_manifest(part)]


def _shards(folder: Path) -> list[Path]:
    return sorted((folder / "shards").glob("*.tar"))


def clip_metadata(folder: Path) -> Iterator[tuple[Path, dict]]:
    for shard in _shards(folder):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    yield shard, json.load(tar.extractfile(member))


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in their details: drop parentheses and numbers."""
    return re.sub(r"\b\d+(\.\d+)?\b", "N", re.sub(r"\s*\(.*?\)", "", reason)).strip()


def summarize(folder: Path) -> dict:
    folder = Path(folder)
    lines = manifest_lines(folder)
    if not lines and not _shards(folder):
        raise FileNotFoundError(f"{folder}: no manifest.jsonl and no shards/*.tar (is it a `reverie ingest --out` folder?)")
    metas = [meta for _, meta in clip_metadata(folder)]
    seconds = [meta["frames"] / meta["fps"] for meta in metas]
    motion = [meta["scores"]["motion"] for meta in metas if "motion" in meta.get("scores", {})]
    return {
        "folder": str(folder),
        "inputs": len(lines),
        "status": dict(Counter(line["status"] for line in lines)),
        "failures": dict(Counter(_reason_kind(line["reason"]) for line in lines if line["status"] == "failed").most_common()),
        "skips": dict(Counter(_reason_kind(line["reason"]) for line in lines if line["status"] == "skipped").most_common()),
        "source_hours": sum(line.get("duration", 0.0) for line in lines) / 3600,
        "clips": len(metas),
        "clip_hours": sum(seconds) / 3600,
        "shards": len(_shards(folder)),
        "shard_bytes": sum(p.stat().st_size for p in _shards(folder)),
        "resolution": dict(Counter(f"{m['width']}x{m['height']}" for m in metas).most_common()),
        "fps": dict(Counter(f"{m['fps']:g}" for m in metas).most_common()),
        "source_resolution": dict(Counter(f"{m['source_width']}x{m['source_height']}" for m in metas if "source_width" in m).most_common(10)),
        "source_fps": dict(Counter(f"{m['source_fps']:.3g}" for m in metas if "source_fps" in m).most_common(10)),
        "episodes": len({(m.get("env_id"), m["episode"]) for m in metas if m.get("episode") is not None}),
        "with_actions": sum(bool(m.get("has_actions")) for m in metas),
        "dropped": dict(sum((Counter(line.get("dropped", {})) for line in lines), Counter())),
        "motion": {"min": min(motion), "median": statistics.median(motion), "max": max(motion)} if motion else {},
    }


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"reverie inspect {summary['folder']}", show_header=False)
    status = ", ".join(f"{count} {name}" for name, count in summary["status"].items())
    rows = [
        ("inputs", f"{summary['inputs']} ({status})"),
        ("source hours", f"{summary['source_hours']:.3f}"),
        ("clips", f"{summary['clips']} in {summary['shards']} shards, {summary['shard_bytes'] / 1e6:.1f} MB"),
        ("clip hours", f"{summary['clip_hours']:.3f}"),
        ("episodes", f"{summary['episodes']} ({summary['with_actions']} clips with actions)"),
        ("resolution", _spread(summary["resolution"])),
        ("fps", _spread(summary["fps"])),
        ("source resolution", _spread(summary["source_resolution"])),
        ("source fps", _spread(summary["source_fps"])),
        ("dropped clips", _spread(summary["dropped"])),
        ("motion min/median/max", " / ".join(f"{v:.4f}" for v in summary["motion"].values())),
    ]
    rows += [(f"failed: {reason}", str(count)) for reason, count in summary["failures"].items()]
    rows += [(f"skipped: {reason}", str(count)) for reason, count in summary["skips"].items()]
    if summary.get("contact_sheet"):
        rows.append(("contact sheet", summary["contact_sheet"]))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _spread(counts: dict) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "-"


def _clip_frames(tar: tarfile.TarFile, member: tarfile.TarInfo) -> np.ndarray:
    payload = tar.extractfile(member).read()
    return decode_mp4(payload) if member.name.endswith(".mp4") else np.load(io.BytesIO(payload), allow_pickle=False)


def _member_names(shard: Path) -> list[str]:
    with tarfile.open(shard) as tar:
        return tar.getnames()


def contact_sheet(folder: Path, out: Path, clips: int = 8, frames: int = 8, tile: int = 96) -> Path | None:
    """A PNG grid: `clips` clips spread over the shards (rows) x `frames` frames of each (columns)."""
    members = [(shard, name) for shard in _shards(folder) for name in _member_names(shard) if name.partition(".")[2] in ("mp4", "npy")]
    if not members:
        return None
    picks = [members[i] for i in np.linspace(0, len(members) - 1, min(clips, len(members))).round().astype(int)]
    sheet = Image.new("RGB", (frames * tile, len(picks) * tile), "black")
    for row, (shard, name) in enumerate(picks):
        with tarfile.open(shard) as tar:
            clip = _clip_frames(tar, tar.getmember(name))
        for column, index in enumerate(np.linspace(0, len(clip) - 1, frames).round().astype(int)):
            image = Image.fromarray(clip[index])
            image.thumbnail((tile, tile))
            sheet.paste(image, (column * tile, row * tile))
    out = Path(out)
    partial = out.with_suffix(".tmp.png")
    sheet.save(partial)
    os.replace(partial, out)
    return out
