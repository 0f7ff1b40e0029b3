"""One writer per folder: a second lock on a held folder fails at once, naming the holder's pid; a
released or killed holder frees the folder."""

from __future__ import annotations

import os
import re
import signal

import pytest

from reverie.shards.folder_lock import LOCK_NAME, FolderLock, FolderLockedError

def test_a_second_process_is_refused_with_the_holders_pid(tmp_path, hold_lock):
    process = hold_lock(tmp_path / "out")
    with pytest.raises(FolderLockedError, match=f"{tmp_path / 'out'} is being written by process {process.pid}") as error:
        FolderLock(tmp_path / "out").acquire()
    assert error.value.pid == process.pid


def test_a_holder_killed_with_kill_9_frees_the_folder(tmp_path, hold_lock):
    process = hold_lock(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(process.pid)  # a stale pid is left, and means nothing
    with FolderLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_release_frees_the_folder_within_one_process(tmp_path):
    lock = FolderLock(tmp_path).acquire()
    with pytest.raises(FolderLockedError):  # flock locks belong to the open file: a second open is refused too
        FolderLock(tmp_path).acquire()
    lock.release()
    with FolderLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_a_named_lock_guards_its_own_file_only(tmp_path, hold_lock):
    """SLURM array tasks share DIR and write per-slice files: each holds a lock of its own name."""
    process = hold_lock(tmp_path, ".lock-s0000")
    with pytest.raises(FolderLockedError, match=re.escape(f"by process {process.pid} (lock {tmp_path / '.lock-s0000'})")):
        FolderLock(tmp_path, name=".lock-s0000").acquire()
    with FolderLock(tmp_path, name=".lock-s0001"), FolderLock(tmp_path):
        assert (tmp_path / ".lock-s0001").read_text().strip() == str(os.getpid())
