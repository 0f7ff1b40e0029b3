"""One writer per output folder: an exclusive, non-blocking `fcntl.flock` on `DIR/.lock`.

Resubmitting a job is how a reverie run resumes, so two copies of the same command can end up
running at once (a resubmission while the first job still runs, a job run twice by hand). Every
command that writes a folder (`reverie ingest --out`, `reverie record --out`, `reverie train`'s run
folder, `reverie agent --out`) holds the folder's lock for as long as it writes. A second process
finds the lock held and stops at once, naming the folder and the holder's pid, before it has
changed any file.

The lock file holds the holder's pid (for the message only: the kernel's lock is what counts, so a
holder killed with kill -9 frees the folder at once, and a stale pid in the file means nothing).

Writers that share a folder by design, each with files of its own (the tasks of a SLURM ingest
array: `shards/sNNNN-*`, `manifests/slice-NNNN.jsonl`), each lock a file of their own `name`
(`.lock-s0003`) instead of the whole folder's.

    with FolderLock(out):
        ...  # write into out
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class FolderLockedError(RuntimeError):
    """Another process writes this folder; `.pid` is the holder's, as its lock file says."""

    def __init__(self, folder: Path, pid: int | None, lock_path: Path | None = None):
        holder = f"process {pid}" if pid else "another process"
        lock_path = lock_path or folder / LOCK_NAME
        super().__init__(f"{folder} is being written by {holder} (lock {lock_path}); wait for it to finish, or stop it")
        self.folder, self.pid = folder, pid


class FolderLock:
    """Hold `folder`'s lock file `name` (creating the folder) from `acquire` to `release`, or in a `with`."""

    def __init__(self, folder: str | Path, name: str = LOCK_NAME):
        self.folder = Path(folder)
        self.path = self.folder / name
        self._descriptor: int | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(descriptor)
            os.close(descriptor)
            raise FolderLockedError(self.folder, pid, self.path) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing drops the lock; the file stays, harmless
            self._descriptor = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
