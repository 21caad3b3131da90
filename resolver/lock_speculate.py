"""Start ``gpustack lock``'s uv run before the plan is known, and keep it only when the plan asks for exactly it.

A lock's own work (loading the matrix, solving, planning) takes a fraction of a second, and uv's resolution cannot
start before it: it needs the plan's pins. But the same command line mostly asks for the same uv run as last time.
So the uv request (``lock_resolve.uv_request``: the throwaway project, the constraints, the target, the default
index) of each run is remembered, keyed by the command line (its arguments but the output file, and the working
folder), and the next run with that key starts uv on it at once - ``resolver.cli`` calls ``begin`` before it even
imports the command - while gpustack plans. ``lock_resolve.resolve`` then uses that run only when the plan's own
request is *equal* to the one it was started with; otherwise it kills it and runs uv on the plan's request. A stale
or wrong hint costs time, never a different lock: what uv is given is always what the plan asks for.

Hints are JSON (data, never code) in a private folder of the user's cache (``safefiles``: this user's regular
files only, reached without following a link), and one that is not the expected shape is ignored. A hint read is
marked used; writing a new one keeps the ``KEEP`` most recently written or used and removes the rest
(``safefiles.prune_private``: a lock reading one meanwhile reads it whole or misses it). A hint may only
name indexes by http(s)/file URL and direct URLs of wheels (a wheel is never built, so uv runs no code for it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver.errors import GpuStackError

if TYPE_CHECKING:
    from resolver.lock_uv import UvRun

__all__ = ["hint_key", "begin", "current", "end", "start", "remember"]

_FORMAT = "lock-hint-v1"
_LIMIT = 1 << 20
KEEP = 64  # hints kept: the last 64 distinct lock command lines written or used (a few hundred bytes each)


def _folder() -> Path:
    from resolver.cache import LOCK_HINTS, cache_dir

    return cache_dir() / LOCK_HINTS


def hint_key(args: Sequence[str]) -> str:
    """Return the key of a ``gpustack lock`` command line: its arguments without the output file (a lock written
    elsewhere asks for the same uv run), and the working folder (``-r`` paths are relative to it)."""
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ("-o", "--output"):
            skip = True
        elif not a.startswith(("--output=", "-o")):
            kept.append(a)
    text = json.dumps([_FORMAT, os.getcwd(), kept])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_current: tuple[str, UvRun | None] | None = None


def begin(args: Sequence[str]) -> None:
    """Start uv on the request remembered for the ``gpustack lock`` command line ``args`` (if any); ``current()``
    hands it to the command, ``end()`` stops it if the command did not take it. A run already begun for the same
    command line (by ``resolver.start``) is kept."""
    global _current
    try:
        key = hint_key(args)
    except (OSError, TypeError, ValueError):  # no working folder, an argument that is not text: no hint
        end()
        return
    if _current is not None and _current[0] == key:
        return
    end()
    try:
        _current = (key, start(key))
    except (GpuStackError, OSError):  # an early start only: the command meets the same fault and says it in one line
        _current = (key, None)


def current() -> tuple[str | None, UvRun | None]:
    """Return the key of this command line and the uv run ``begin`` started for it (``None, None`` when the command
    was not started through ``resolver.cli``)."""
    return _current if _current is not None else (None, None)


def end() -> None:
    """Stop the run ``begin`` started (if it is still running) and forget it."""
    global _current
    if _current is not None and _current[1] is not None:
        _current[1].cancel()
    _current = None


def _url_ok(url: object, *, wheel: bool = False) -> bool:
    if not isinstance(url, str) or not url.startswith(("https://", "http://", "file://")):
        return False
    return not wheel or url.split("#", 1)[0].split("?", 1)[0].endswith(".whl")


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and "\n" not in v for v in value)


def _safe(data: object) -> dict[str, Any] | None:
    """Return ``data`` when it has exactly the shape ``uv_request`` writes and names nothing uv would build."""
    if not isinstance(data, dict) or set(data) != {"project", "constraints", "python_version", "python_platform",
                                                   "index_url"}:
        return None
    project = data["project"]
    if not isinstance(project, dict) or set(project) != {"project", "tool"}:
        return None
    meta, tool = project["project"], project["tool"]
    if not isinstance(meta, dict) or set(meta) != {"name", "version", "dependencies"}:
        return None
    if not _strings(meta["dependencies"]) or not _strings(data["constraints"]):
        return None
    for req in [*meta["dependencies"], *data["constraints"]]:
        if not req[:1].isalnum():
            return None  # an option line (-e, -r, --index-url in a constraints file) or a local path
        if "@" in req and not _url_ok(req.split("@", 1)[1].strip(), wheel=True):
            return None  # an sdist or a source tree by URL would be built: never from a hint
        if "@" not in req and ("://" in req or "/" in req.split(";", 1)[0]):
            return None  # a path or URL given without a name
    if not isinstance(tool, dict) or set(tool) - {"uv"}:
        return None
    uv = tool.get("uv", {})
    if not isinstance(uv, dict) or set(uv) - {"index", "sources"}:
        return None
    for index in uv.get("index", []):
        if not isinstance(index, dict) or set(index) != {"name", "url", "explicit"} or not _url_ok(index["url"]):
            return None
    if not _url_ok(data["index_url"]):
        return None
    for key in ("python_version", "python_platform"):
        value = data[key]
        if not isinstance(value, str) or not value or not all(c.isalnum() or c in "._-" for c in value):
            return None
    return data


def start(key: str) -> UvRun | None:
    """Return a uv run started on the request remembered under ``key`` (``None`` when there is none, it is not a
    well-formed hint, or uv is missing or cannot be started)."""
    from resolver.safefiles import read_private

    blob = read_private(_folder() / f"{key}.json", limit=_LIMIT, touch=True)
    if blob is None:
        return None
    try:
        request = _safe(json.loads(blob))
    except ValueError:
        return None
    if request is None:
        return None
    from resolver.lock_uv import UvRun, find_uv

    uv = find_uv()
    if uv is None:
        return None
    try:
        return UvRun(uv, request)
    except OSError:
        return None


def remember(key: str, request: Mapping[str, Any]) -> None:
    """Remember ``request`` as the uv run the command keyed ``key`` asks for (a cache that cannot be written costs
    speed, never correctness). A request naming an index with credentials is not remembered (and an older hint of
    the key is removed): a password never goes into the cache; such a lock runs uv after planning."""
    from resolver.redact import redact
    from resolver.safefiles import write_private

    text = json.dumps(request, sort_keys=True)
    if redact(text) != text:
        try:
            (_folder() / f"{key}.json").unlink(missing_ok=True)
        except OSError:
            pass
        return
    write_private(_folder(), f"{key}.json", text.encode(), keep=KEEP)
