"""Virtual environments gpustack creates for ``install --venv DIR``: where their interpreter is, and making one."""

from __future__ import annotations

import os
import sys

__all__ = ["venv_python", "create_venv"]


def venv_python(venv: str) -> str:
    """Return the path of the interpreter of the virtual environment ``venv`` (which may not exist yet)."""
    return os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")


def create_venv(venv: str, backend: str) -> None:
    """Create ``venv`` with uv (no pip inside) when ``backend`` is ``"uv"``, else with this interpreter's ``venv``.

    The creator runs as its own process group, ended whole when gpustack is interrupted (``_subprocess.stream``):
    ``python -m venv`` installs pip through a child of its own (ensurepip), which went on writing into the new venv
    after gpustack had stopped its parent and removed the folder, so the folder came back."""
    from resolver import _subprocess  # not at the top: ``read_ahead`` asks ``venv_python`` before anything is loaded
    from resolver.errors import CommandFailed

    if backend == "uv":
        from resolver.uvbin import find_uv
        argv = [find_uv() or "uv", "venv", "--python", sys.executable, venv]
    else:
        argv = [sys.executable, "-m", "venv", venv]
    said: list[str] = []
    rc = _subprocess.stream(argv, said.append)
    if rc != 0:
        raise CommandFailed(argv, rc, "\n".join(said[-20:]))
