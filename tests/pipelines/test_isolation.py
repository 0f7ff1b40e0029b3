"""One input per worker: an error, a hang and a crash each come back as the input's failure reason."""

from __future__ import annotations

import os
import time

from pebble import ProcessPool

from reverie.pipelines.isolation import in_worker, outcome


def fails(path: str) -> None:
    raise OSError("bad header")


def hangs(path: str) -> None:
    time.sleep(60)


def crashes(path: str) -> None:
    os._exit(7)


def doubles(path: str, value: int) -> int:
    return 2 * value


def test_each_way_a_worker_can_end_gives_its_result_or_reason():
    with ProcessPool(max_workers=2) as pool:
        futures = {
            "result": pool.schedule(in_worker, (doubles, "a.mp4", 21), timeout=30),
            "error": pool.schedule(in_worker, (fails, "b.mp4"), timeout=30),
            "hang": pool.schedule(in_worker, (hangs, "c.mp4"), timeout=0.5),
            "crash": pool.schedule(in_worker, (crashes, "d.mp4"), timeout=30),
        }
        assert outcome(futures["result"], "decode", "30 s") == (42, "")
        assert outcome(futures["error"], "probe", "30 s") == (None, "OSError: bad header")
        assert outcome(futures["hang"], "decode", "0.5 s", context="episode 3: ") == (None, "episode 3: decode timed out after 0.5 s")
        assert outcome(futures["crash"], "decode", "30 s") == (None, "decoder process crashed during decode (exit code 7)")
