"""The environment's lock: an exclusive ``flock(2)`` on ``<prefix>/.gpustack/lock`` (``envstate.env_lock``).

filelock, gpustack's locking dependency, takes the very same ``flock(2)`` on POSIX, so a run holding this lock and
one holding ``filelock.FileLock`` on the file exclude each other. This module takes it directly because filelock's
import alone costs ~10 ms, an eighth of what ``gpustack install`` adds to the installer it runs (measured, see
docs/install.md). Where ``flock(2)`` is missing or refused (Windows, a file system without it), it hands over to
filelock, which falls back to its own soft lock there.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

__all__ = ["EnvLock"]

_POLL_S = 0.05
_CONTENDED = {errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK}  # some file systems report EACCES for contention


class EnvLock:
    """An exclusive lock on the file ``path`` (created when missing, never through a link), not re-entrant: a
    second ``EnvLock`` on the same file waits for the first, in this process too."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._fallback: Any = None

    def acquire(self, timeout: float) -> bool:
        """Return ``True`` once the lock is held, ``False`` when another holder kept it for ``timeout`` seconds.
        Raises ``OSError`` when the file cannot be opened."""
        try:
            import fcntl
        except ImportError:  # Windows
            return self._acquire_fallback(timeout)
        deadline = time.monotonic() + timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _CONTENDED:
                    return self._acquire_fallback(max(0.0, deadline - time.monotonic()))
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_POLL_S)
                continue
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except OSError:
                same = False
            if same:  # else the file was removed or replaced between open and flock: lock the one there now
                self._fd = fd
                return True
            os.close(fd)

    def _acquire_fallback(self, timeout: float) -> bool:
        import filelock

        lock = filelock.FileLock(self.path)
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            return False
        self._fallback = lock
        return True

    def release(self) -> None:
        """Let the lock go (closing the file releases ``flock``); a second call does nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            fallback.release()

    def __enter__(self) -> EnvLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
