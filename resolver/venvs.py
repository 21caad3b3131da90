"""Virtual environments gpustack creates for ``install --venv DIR``: where their interpreter is, and making one."""

from __future__ import annotations

import os
import sys

__all__ = ["venv_python", "create_venv", "venv_argv", "base_python", "externally_managed"]


def venv_python(venv: str) -> str:
    """Return the path of the interpreter of the virtual environment ``venv`` (which may not exist yet)."""
    return os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")


def _version_of(exe: str) -> str | None:
    """Return the ``X.Y`` of the interpreter ``exe``, or ``None`` when it does not run (a pyenv shim of a version
    that is not selected, a broken link)."""
    from resolver._subprocess import try_run

    done = try_run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=30)
    return done.stdout.strip() if done is not None else None


def base_python(version: str | None) -> str:
    """Return the interpreter a new venv is made from: the one running gpustack, or for ``--python X.Y`` of another
    version, a Python X.Y that runs, found as ``pythonX.Y`` on PATH or by ``uv python find`` (no download).
    ``BadInput`` naming how to get one when there is none: the venv is not created."""
    import shutil

    if version is None or version == "%d.%d" % sys.version_info[:2]:
        return sys.executable
    from resolver.uvbin import find_uv

    found = [shutil.which(f"python{version}")]
    uv = find_uv()
    if uv is not None:
        from resolver._subprocess import try_run

        done = try_run([uv, "python", "find", "--no-python-downloads", version], timeout=60)
        found.append(done.stdout.strip() if done is not None else None)
    for exe in found:
        if exe and _version_of(exe) == version:
            return exe
    from resolver.errors import BadInput

    raise BadInput(f"--python {version}: no Python {version} interpreter found (python{version} on PATH, or uv's) to "
                   f"create the new --venv with; install one (`uv python install {version}`, or your system's "
                   f"python{version}), or drop --python to create it with this Python "
                   f"({sys.version_info[0]}.{sys.version_info[1]})")


def create_venv(venv: str, backend: str, python: str | None = None) -> None:
    """Create ``venv`` from ``python`` (default: this interpreter; ``base_python``) with uv (no pip inside) when
    ``backend`` is ``"uv"``, else with its ``venv`` module (``_subprocess.run``: interrupted, its whole process group
    goes, ensurepip's child included)."""
    from resolver import _subprocess  # not at the top: ``read_ahead`` asks ``venv_python`` before anything is loaded

    _subprocess.run(venv_argv(venv, backend, python), timeout=600)


def venv_argv(venv: str, backend: str, python: str | None = None) -> list[str]:
    """Return the command that creates ``venv`` from ``python`` (``create_venv`` runs it; ``install --dry-run`` prints
    it): ``uv venv --python PYTHON VENV`` for uv, else ``PYTHON -m venv VENV``."""
    python = python or sys.executable
    if backend == "uv":
        from resolver.uvbin import find_uv

        return [find_uv() or "uv", "venv", "--python", python, venv]
    return [python, "-m", "venv", venv]


_STDLIB = "import sys, sysconfig; print(sysconfig.get_path('stdlib') if sys.prefix == sys.base_prefix else '')"


def externally_managed(python_exe: str) -> str | None:
    """Return the PEP 668 marker (``<stdlib>/EXTERNALLY-MANAGED``) that makes ``python_exe``'s environment one pip
    and uv refuse to change (a distribution's system Python), or ``None``: a virtual environment (never managed), no
    marker, or ``PIP_BREAK_SYSTEM_PACKAGES``/``UV_BREAK_SYSTEM_PACKAGES`` set (the user's override, as pip's and uv's).
    A venv is known by its ``pyvenv.cfg``; any other interpreter is asked in a child (one run, a conda or system
    Python only)."""
    from pathlib import Path

    if (Path(python_exe).parent.parent / "pyvenv.cfg").is_file():
        return None
    if any(os.environ.get(v, "").strip().lower() not in ("", "0", "false", "no", "off")
           for v in ("PIP_BREAK_SYSTEM_PACKAGES", "UV_BREAK_SYSTEM_PACKAGES")):
        return None
    if os.path.abspath(python_exe) == os.path.abspath(sys.executable):
        import sysconfig

        stdlib = sysconfig.get_path("stdlib") if sys.prefix == sys.base_prefix else ""
    else:
        from resolver._subprocess import try_run

        done = try_run([python_exe, "-c", _STDLIB], timeout=30)
        stdlib = done.stdout.strip() if done is not None else ""
    marker = os.path.join(stdlib, "EXTERNALLY-MANAGED") if stdlib else ""
    return marker if marker and os.path.isfile(marker) else None
