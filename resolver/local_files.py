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
    """Return ``locked`` with every hashed file the lock lists that lies in ``folders`` pointing at that file: each
    package's, and each wheel and sdist of its PEP 751 table, so the copy of whichever file ``lock.selected`` chooses
    for the target is the one used (not only its first wheel's); raise ``BadInput`` when such a file's sha256 is not
    the lock's. Packages without a hash are left to their URL."""
    checked: dict[Path, str] = {}  # each local file hashed once

    def local(url: str | None, want: str | None, name: object, version: object) -> str | None:
        path = _local(url, folders) if url and want else None
        if path is None:
            return None
        digest = checked.get(path) or checked.setdefault(path, sha256_of(path))
        if digest != want:
            raise BadInput(f"--find-links {path}: sha256 {digest[:16]}... is not the lock's {str(want)[:16]}... for "
                           f"{name} {version}; remove the file or download it again")
        return path.resolve().as_uri()

    packages = []
    for p in locked.packages:
        uri = local(p.url, p.sha256, p.name, p.version) if p.kind != "vcs" else None
        packages.append(dataclasses.replace(p, url=uri) if uri else p)
    listed = []
    for q in locked.pylock.packages:
        wheels = [dataclasses.replace(w, url=uri) if (uri := local(w.url or w.path, w.hashes.get("sha256"), q.name,
                                                                  q.version)) else w for w in q.wheels or ()]
        sdist = q.sdist
        if sdist is not None and (uri := local(sdist.url or sdist.path, sdist.hashes.get("sha256"), q.name, q.version)):
            sdist = dataclasses.replace(sdist, url=uri)
        listed.append(dataclasses.replace(q, wheels=wheels if q.wheels is not None else None, sdist=sdist))
    return dataclasses.replace(locked, packages=tuple(packages),
                               pylock=dataclasses.replace(locked.pylock, packages=listed))
