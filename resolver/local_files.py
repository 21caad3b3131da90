"""``install --lock FILE --find-links DIR``: take a locked file from a local folder only when its sha256 is the lock's.

A file in a find-links folder is as untrusted as the network: ``use_local_files`` hashes each one that a lock names
(by file name) and refuses the install, naming the file, when it differs; a matching file replaces the package's URL
(``file://``), and pip checks the same hash again (``--require-hashes``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from resolver.errors import BadInput
from resolver.lock import LockedPlan

__all__ = ["use_local_files", "sha256_of"]


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of the regular file ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local(url: str, folders: Sequence[str]) -> Path | None:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in (".", ".."):
        return None
    for folder in folders:
        path = Path(folder) / name
        try:
            if stat.S_ISREG(os.stat(path).st_mode):
                return path
        except OSError:
            continue
    return None


def use_local_files(locked: LockedPlan, folders: Sequence[str]) -> LockedPlan:
    """Return ``locked`` with every hashed package whose file lies in ``folders`` pointing at that file; raise
    ``BadInput`` when such a file's sha256 is not the lock's. Packages without a hash are left to their URL."""
    packages = []
    for p in locked.packages:
        want = p.sha256
        path = _local(p.url, folders) if want and p.kind != "vcs" else None
        if want and path is not None:
            digest = sha256_of(path)
            if digest != want:
                raise BadInput(f"--find-links {path}: sha256 {digest[:16]}... is not the lock's {want[:16]}... for "
                               f"{p.name} {p.version}; remove the file or download it again")
            p = dataclasses.replace(p, url=path.resolve().as_uri())
        packages.append(p)
    return dataclasses.replace(locked, packages=tuple(packages))
