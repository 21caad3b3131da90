"""The parsed-matrix cache: JSON data (never pickle) in a private folder, bound to the TOML it came from.

One file per matrix digest, ``<digest>.json``: a header line ``gpustack-matrix-cache <digest> <sha256 of body>``,
then the body, the parsed TOML tables as JSON. ``read`` returns the tables only when the file is a regular file of
this user's in a folder only this user can write, the digest is the one asked for and the body hashes to the
header's value; anything else (a link, a planted or truncated file, a bit flip) is a miss, and the caller re-reads
the TOML and ``write``s a fresh file (``O_EXCL`` temporary, then rename). JSON cannot run code; the typed rows are
rebuilt (and their values checked) from the tables on every load. Only tables that passed the unknown-key check are
written, and the digest covers that check's rule, so a hit is not checked for unknown keys again. Writing one keeps
the ``KEPT`` newest files (``safefiles.prune_private``): an older matrix is then a miss, read from its TOML again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from resolver.inputs import cache_dir as cache_root
from resolver.safefiles import private_dir, read_private, write_private

__all__ = ["cache_dir", "read", "write"]

_MAGIC = b"gpustack-matrix-cache"


def cache_dir() -> Path:
    """Return the ``matrix`` folder of gpustack's cache (``inputs.cache_dir``)."""
    return cache_root() / "matrix"


def read(digest: str) -> dict[str, Any] | None:
    """Return the cached tables of the matrix whose TOML hashes to ``digest``, or ``None`` (a miss)."""
    folder = cache_dir()
    if private_dir(folder) is None:
        return None
    blob = read_private(folder / f"{digest}.json")
    if blob is None:
        return None
    header, _, body = blob.partition(b"\n")
    parts = header.split(b" ")
    if len(parts) != 3 or parts[0] != _MAGIC or parts[1] != digest.encode():
        return None
    if hashlib.sha256(body).hexdigest().encode() != parts[2]:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def write(digest: str, data: dict[str, Any]) -> None:
    """Store ``data`` for ``digest``; a cache that cannot be written costs speed, never correctness."""
    body = json.dumps(data, separators=(",", ":"), default=_unsupported).encode()
    header = b" ".join([_MAGIC, digest.encode(), hashlib.sha256(body).hexdigest().encode()])
    try:  # one file per matrix version (and key rule): the newest KEPT stay
        write_private(cache_dir(), f"{digest}.json", header + b"\n" + body, keep=KEPT)
    except ValueError:
        pass


KEPT = 8


def _unsupported(value: Any) -> Any:
    # TOML dates have no JSON form; a matrix with one is simply not cached.
    raise ValueError(f"not JSON: {type(value).__name__}")
