"""Files gpustack writes: private cache folders, cache files no one else planted, and ``-o`` outputs.

* ``private_dir(path)``: the folder, created ``0700``; ``None`` when it is a link, not ours, or writable by others.
* ``read_private(path)``: a regular file of ours, opened without following a link and without blocking; else ``None``.
* ``write_private(folder, name, data)``: a new file created with ``O_EXCL`` (``mkstemp``), renamed into place.
* ``prune_private(folder, keep, suffix)``: the ``keep`` most recently modified (or ``touch``ed by ``read_private``)
  such files stay; older ones are unlinked by name inside the folder, never through a link.
* ``write_output(path, text, what)``: ``-o FILE``. It writes through a regular file (or a link to one: the link
  stays, its target is replaced) or creates it; it refuses folders, devices, FIFOs and sockets with one line. The new
  file gets the old file's mode, or ``0666 & ~umask``; the temporary file is removed on any failure.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from resolver.errors import BadInput

__all__ = ["private_dir", "read_private", "write_private", "prune_private", "write_output", "check_output"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _ours(st: os.stat_result) -> bool:
    return not hasattr(os, "geteuid") or st.st_uid == os.geteuid()


def private_dir(path: Path) -> Path | None:
    """Return ``path`` as a folder only this user can write (created ``0700`` with its parents when missing);
    ``None`` when it is a link, a file, another user's, or cannot be made private."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or not _ours(st):
            return None
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
        return path
    except OSError:
        return None


def read_private(path: Path, limit: int = 64 * 1024 * 1024, *, touch: bool = False) -> bytes | None:
    """Return the bytes of ``path`` when it is a regular file of this user's, at most ``limit`` bytes, reached
    without following a link; ``None`` otherwise (a miss, never an error). ``touch``: mark the file used now (its
    mtime, through the open descriptor), so ``prune_private`` keeps it among the newest."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _ours(st) or st.st_size > limit:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            return None
        if touch and os.utime in os.supports_fd:
            try:
                os.utime(fd)
            except OSError:
                pass  # a file we may read but not mark: it only ages sooner
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def write_private(folder: Path, name: str, data: bytes, keep: int | None = None) -> Path | None:
    """Return ``folder/name`` after writing ``data`` to a fresh ``O_EXCL`` temporary file in ``folder`` and renaming
    it there; ``None`` (nothing left behind) when ``folder`` is not private or the write fails. With ``keep``, a
    cache of one file per key, the folder then keeps only the ``keep`` newest files of ``name``'s suffix
    (``prune_private``)."""
    if private_dir(folder) is None:
        return None
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, folder / name)
        tmp = None
    except OSError:
        return None
    finally:
        if tmp is not None:
            _unlink(tmp)
    if keep is not None:
        prune_private(folder, keep, os.path.splitext(name)[1])
    return folder / name


def prune_private(folder: Path, keep: int, suffix: str) -> int:
    """Return how many files ``folder`` lost: of its regular files of this user's named ``*suffix`` (not hidden:
    ``write_private``'s temporary files start with a dot), all but the ``keep`` most recently modified are removed.

    Safe beside other gpustack processes: the folder must be private (not a link), it is opened once and every
    entry is examined and unlinked relative to that descriptor without following a link; links, folders and other
    users' files are left alone; a reader that opened a file before it was unlinked still reads all of it, and one
    that comes after finds nothing (a miss). A file that vanished meanwhile is skipped.
    """
    if private_dir(folder) is None or not hasattr(os, "O_DIRECTORY") or os.unlink not in os.supports_dir_fd:
        return 0
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError:
        return 0
    try:
        st = os.fstat(dfd)
        if not _ours(st) or st.st_mode & 0o022:
            return 0
        found: list[tuple[int, str]] = []
        for name in os.listdir(dfd):
            if name.startswith(".") or not name.endswith(suffix):
                continue
            try:
                est = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(est.st_mode) and _ours(est):
                found.append((est.st_mtime_ns, name))
        if len(found) <= keep:
            return 0
        found.sort(reverse=True)
        removed = 0
        for _, name in found[max(keep, 0):]:
            try:
                os.unlink(name, dir_fd=dfd)
                removed += 1
            except OSError:
                pass
        return removed
    except OSError:
        return 0
    finally:
        os.close(dfd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def check_output(path: str, what: str = "-o") -> tuple[Path, int | None]:
    """Return the file ``path`` resolves to (through links) and the mode it has now (``None`` when it does not
    exist yet); ``BadInput`` naming ``what`` for a folder, a device, FIFO or socket, or a missing folder."""
    hint = "pass a file path (or - for stdout)"
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        folder = target.parent
        if not folder.is_dir():
            raise BadInput(f"{what} {path}: folder {folder} does not exist; create it or {hint}") from None
        return target, None
    except OSError as exc:
        raise BadInput(f"{what} {path}: cannot use it ({exc.strerror}); {hint}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{what} {path}: is a folder; {hint}")
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(f"{what} {path}: not a regular file (a device, FIFO or socket); {hint}")
    return target, stat.S_IMODE(st.st_mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_output(path: str, text: str, what: str = "-o") -> Path:
    """Return the file written: ``text`` to ``path`` through a temporary file in the same folder, renamed over the
    target (the target of a link, so the link stays). See the module docstring for what is refused."""
    target, mode = check_output(path, what)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
        tmp = None
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "text not encodable as UTF-8"
        raise BadInput(f"{what} {path}: cannot write it ({why}); pass another path") from None
    finally:
        if tmp is not None:
            _unlink(tmp)
    return target
