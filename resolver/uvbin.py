"""Which uv binary gpustack runs: one finder for ``lock``, ``install``, ``recover``, ``install --venv`` and the
benchmarks, so that every command runs the same uv, and one message for when there is none.

Kept apart (and importing only ``os``, ``shutil`` and ``sys`` until it needs more) because ``install`` asks it on
every run, before anything else of uv's is known.
"""

from __future__ import annotations

import os
import shutil
import sys

__all__ = ["find_uv", "uv_not_found"]

_EXE = "uv.exe" if os.name == "nt" else "uv"


def find_uv() -> str | None:
    """Return the uv executable gpustack runs (``None`` when there is none): the first of

    1. ``uv`` beside this interpreter: the scripts folder of its virtual environment, where installing gpustack put
       the ``uv`` wheel it depends on (one ``stat``, the common case);
    2. where the ``uv`` package itself says its binary is (``uv.find_uv_bin``): the same wheel installed with
       ``--user``, ``--prefix`` or ``--target``, or seen through ``uv run --with``, whose folder need not be on PATH;
    3. ``uv`` on ``PATH``.

    The uv installed with gpustack comes first because it is the one gpustack declares (``uv>=0.8``, which writes
    ``--format pylock.toml``) and is tested with; a uv on PATH can be any version, and running one uv to lock and
    another to install would make them disagree.
    """
    beside = os.path.join(os.path.dirname(sys.executable), _EXE)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):  # no uv package, or its binary is gone (UvNotFound)
        return shutil.which("uv")


def uv_not_found(what: str) -> str:
    """Return the one line saying that ``what`` (``--installer uv``, ...) found no uv, where it looked, and what to do."""
    return (f"{what}: uv not found (looked beside {sys.executable}, for the uv package installed with gpustack, "
            f"and on PATH); install it with `{sys.executable} -m pip install uv`, or pass --installer pip")
