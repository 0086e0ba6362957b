"""Exclusive locks on folders, so two processes never write one run folder or one prompt library at once.

A lock is a file in the folder (``LOCK_FILE``, ``.attempt.lock``, unless the caller names another: a run folder's
is named by `attempt.runs.layout`), held with ``fcntl.flock`` and holding the holder's pid (for the error
message only). Why ``fcntl`` and not the ``filelock`` package (installed with transformers): the kernel drops
an flock when its process dies, however it dies, so a lock left behind by a killed run never blocks a rerun
and needs no pid-liveness guessing; and we control the file, so the pid we write is never truncated by a
contender's open (``filelock``'s file handling changed a lot between its 3.x and 4.x releases). Where
``fcntl`` is missing (Windows) folders are not locked, with a warning.

The lock file is removed on release; a contender that opened it just before checks, once it holds the lock,
that its file is still the one at the path, and starts again otherwise.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".attempt.lock"  # the default lock file name of a folder
POLL_S = 0.1


class FolderInUse(OSError):
    """Another live process holds the folder's lock; the message names its pid."""


def holder_pid(folder: str | Path, lock_file: str = LOCK_FILE) -> int | None:
    """The pid written in ``folder``'s lock file (None when there is none or it is unreadable)."""
    try:
        return int((Path(folder) / lock_file).read_text().strip())
    except (OSError, ValueError):
        return None


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding the lock on `path`, or None while another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's pid stays readable
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed the file between our open and our lock: take the new one


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


@contextlib.contextmanager
def locked(
    folder: str | Path, what: str, wait_s: float = 0.0, hint: str = "", lock_file: str = LOCK_FILE
) -> Iterator[Path]:
    """Hold the exclusive lock of `folder` (created if needed) for the duration of the block.

    Args:
        folder: the folder to lock.
        what: what the folder is, for the error ("run folder", "prompt library").
        wait_s: how long to wait for the holder to finish before giving up (0: fail at once).
        hint: what to do instead, appended to the error.
        lock_file: the name of the lock file inside `folder`.

    Raises:
        FolderInUse: another live process holds the lock (its pid is in the message).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        warnings.warn(
            f"cannot lock {folder} on this platform: do not run two writers on it at once", stacklevel=3
        )
        yield folder
        return
    path = folder / lock_file
    deadline = time.monotonic() + wait_s
    fd = _try_lock(path)
    while fd is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
        fd = _try_lock(path)
    if fd is None:
        pid = holder_pid(folder, lock_file)
        holder = f"process {pid}" if pid is not None else "another process"
        raise FolderInUse(f"The {what} {folder} is in use by {holder} ({path} is locked). {hint}".rstrip())
    try:
        _write_pid(fd)
        yield folder
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # still holding the lock: a contender that opened it re-checks the inode
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a run that failed before writing anything leaves no folder
