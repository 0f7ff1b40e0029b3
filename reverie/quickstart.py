"""`make quickstart`: the main job on a small generated video set, end to end.

It generates multi-shot videos in several codecs and containers plus a few damaged files, ingests
them into webdataset shards, and prints the `reverie inspect` summary with its contact sheet.
Later stages of the stack (pretraining, post-training, planning) join this chain as they land.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from reverie.cli.main import main as reverie
from reverie.pipelines.synthetic import make_damaged_files, make_sample_set, make_variable_frame_rate


def run(out: Path) -> dict:
    stages: dict[str, float] = {}
    started = time.perf_counter()
    videos = out / "videos"
    if not videos.exists():
        samples = make_sample_set(videos / "good", count=8, seconds=8.0)
        make_variable_frame_rate(videos / "good" / "variable_rate.mkv", seconds=6.0)
        make_damaged_files(videos / "damaged", samples[0])
    stages["generate_videos_s"] = time.perf_counter() - started
    mark = time.perf_counter()
    reverie(["ingest", str(videos), "--out", str(out / "ingest"), "--size", "128", "--workers", "2"])
    stages["ingest_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    reverie(["inspect", str(out / "ingest")])
    stages["inspect_s"] = time.perf_counter() - mark
    summary = {"stages": stages, "wall_s": time.perf_counter() - started, "ingest_dir": str(out / "ingest")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(args.out), indent=2))


if __name__ == "__main__":
    main()
