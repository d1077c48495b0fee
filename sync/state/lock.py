"""The run lock of a state directory: `state.lock`, and `state.lock.info` naming the holder.

Only one run may write a state directory at a time: `run` and `snapshot adopt` take this lock without
waiting; plan, reconcile and export read without it. While a run holds the lock, the side file names its
pid and start time, so that a second run can say who is in the way.

With sync.state.store, the only module of the sync engine that imports filelock; it touches no database.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Final

import filelock

from sync.errors import StateError, StateLockedError
from sync.state.clock import iso, now

__all__ = ["LOCK_INFO_NAME", "LOCK_NAME", "acquire_lock", "release_lock"]

LOCK_NAME: Final = "state.lock"
LOCK_INFO_NAME: Final = "state.lock.info"
_WRITABLE: Final = "make the state directory and its files writable by the user that runs ims-sync"


def acquire_lock(state_dir: Path) -> filelock.BaseFileLock:
    """Take the run lock without waiting, and say who holds it in the side file.

    Raises:
        StateLockedError: another process holds the lock.
        StateError: the lock or its side file cannot be written.
    """
    lock = filelock.FileLock(state_dir / LOCK_NAME, timeout=0, mode=0o600, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise StateLockedError(_locked_message(state_dir)) from exc
    except OSError as exc:
        raise StateError(
            f"cannot lock state directory {state_dir}: {exc.strerror or exc}; {_WRITABLE}"
        ) from exc
    info = {"pid": os.getpid(), "since": iso(now())}
    try:
        fd = os.open(state_dir / LOCK_INFO_NAME, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
    except OSError as exc:
        lock.release()
        raise StateError(
            f"cannot write {state_dir / LOCK_INFO_NAME}: {exc.strerror or exc}; {_WRITABLE}"
        ) from exc
    return lock


def release_lock(state_dir: Path, lock: filelock.BaseFileLock) -> None:
    """Release the run lock taken by `acquire_lock`."""
    # Remove the side file while still holding the lock, so it never describes the next holder.
    with contextlib.suppress(OSError):
        (state_dir / LOCK_INFO_NAME).unlink()
    lock.release()


def _locked_message(state_dir: Path) -> str:
    try:
        info = json.loads((state_dir / LOCK_INFO_NAME).read_text(encoding="utf-8"))
        holder = f"pid {int(info['pid'])}, since {info['since']}"
        pid = str(int(info["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        holder, pid = "pid unknown, just starting", "?"
    return (
        f"state directory {state_dir} is in use by another ims-es-sync run ({holder}); "
        f"if no run is active, check that process {pid} has exited (the lock frees itself when it "
        f"does; on a file system without locking, delete {state_dir / LOCK_NAME})"
    )
