"""The live ingestion bar: files done, clips written, and the realtime factor (video seconds per
wall-clock second)."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class IngestProgress:
    def __init__(self, total: int, done: int = 0, enabled: bool = True):
        self.clips = 0
        self.failed = 0
        self.video_seconds = 0.0
        self._started = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files  {task.fields[clips]} clips  {task.fields[failed]} failed  {task.fields[speed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self._task = self._progress.add_task("ingest", total=total, completed=done, clips=0, failed=0, speed="")

    @property
    def realtime_factor(self) -> float:
        return self.video_seconds / max(time.perf_counter() - self._started, 1e-9)

    def committed(self, record: dict, clips: int) -> None:
        self.clips += clips
        self.failed += record["status"] == "failed"
        self.video_seconds += record.get("info", {}).get("duration", 0.0)
        self._progress.update(
            self._task,
            advance=1,
            clips=self.clips,
            failed=self.failed,
            speed=f"x{self.realtime_factor:.1f} realtime",
        )

    def __enter__(self) -> "IngestProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()
