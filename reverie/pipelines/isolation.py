"""One input per worker process: what a decoder that raises, hangs or crashes costs is that input.

Ingestion (`reverie.pipelines.ingest`) and the LeRobot import (`reverie.pipelines.lerobot.importer`)
schedule every probe and decode on a pebble `ProcessPool` with a timeout, through `in_worker`, and
read each finished task with `outcome`: its result, or the reason it failed, in the words the
manifest keeps (`probe timed out after 30 s`, `decoder process crashed during decode (exit code
-11)`).
"""

from __future__ import annotations

import concurrent.futures

from pebble import ProcessExpired

from reverie.pipelines.errors import VideoDecodeError


def in_worker(function, *args):
    """Run `function(*args)` in a pool worker; any error comes back as a `VideoDecodeError` that
    pickles, naming `args[0]` (the input)."""
    try:
        return function(*args)
    except VideoDecodeError:
        raise
    except Exception as error:  # a library error on one input must cost that input only
        raise VideoDecodeError(args[0], f"{type(error).__name__}: {error}") from None


def outcome(future, stage: str, timeout_said: str, context: str = "") -> tuple[object, str]:
    """(the finished task's result, "") or (None, why it failed): the worker's own error, or a
    timeout (after `timeout_said`, e.g. "30 s") or a crash during `stage`, after `context`."""
    try:
        return future.result(), ""
    except VideoDecodeError as error:
        return None, error.reason
    except concurrent.futures.TimeoutError:
        return None, f"{context}{stage} timed out after {timeout_said}"
    except ProcessExpired as error:
        return None, f"{context}decoder process crashed during {stage} (exit code {error.exitcode})"
