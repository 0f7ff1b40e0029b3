"""Shards of real ingested clips (32 px, 8 frames, npy) for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reverie.pipelines.clips import ClipSpec
from reverie.pipelines.ingest import IngestConfig, run_ingest

@pytest.fixture(scope="session")
def clip_shards(tmp_path_factory, sample_videos) -> Path:
    out = tmp_path_factory.mktemp("clips")
    spec = ClipSpec(clip_frames=8, fps=8.0, size=32, clip_format="npy", min_motion=0)
    run_ingest(IngestConfig(inputs=[str(v) for v in sample_videos], out=out, spec=spec, workers=2, shard_max_count=4, progress=False))
    return out / "shards"
