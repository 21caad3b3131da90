"""Virtual environments gpustack creates for ``install --venv DIR``: where their interpreter is, and making one."""

from __future__ import annotations

import os
import sys

__all__ = ["venv_python", "create_venv"]


def venv_python(venv: str) -> str:
    """Return the path of the interpreter of the virtual environment ``venv`` (which may not exist yet)."""
    return os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")


def create_venv(venv: str, backend: str) -> None:
    """Create ``venv`` with uv (no pip inside) when ``backend`` is ``"uv"``, else with this interpreter's ``venv``
    (``_subprocess.run``: interrupted, its whole process group goes, ensurepip's child included)."""
    from resolver import _subprocess  # not at the top: ``read_ahead`` asks ``venv_python`` before anything is loaded

    if backend == "uv":
        from resolver.uvbin import find_uv
        _subprocess.run([find_uv() or "uv", "venv", "--python", sys.executable, venv], timeout=600)
    else:
        _subprocess.run([sys.executable, "-m", "venv", venv], timeout=600)
