"""Running uv for a lock: where uv is, the environment it runs in (isolated from the user's configuration), the
one ``uv pip compile`` argv of a request, and ``UvRun``, a run started now and waited for (or cancelled) later.

Kept apart from ``resolver.lock_resolve`` (which turns uv's lock into locked files) so that a lock can start uv
before it has imported anything else (``resolver.lock_speculate``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from resolver import _subprocess
from resolver.errors import CommandFailed
from resolver.uvbin import find_uv  # the one finder (``install`` asks it too); kept importable from here

__all__ = ["find_uv", "isolated_env", "uv_argv", "UvRun"]


def isolated_env(**extra: str) -> dict[str, str]:
    """Return this process's environment without pip's and uv's configuration variables, with uv's and pip's config
    files switched off: a lock resolves what a clean machine would, not what this user's pip.conf adds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    for keep in ("UV_CACHE_DIR", "PIP_CACHE_DIR"):  # where caches live changes nothing that is resolved
        if keep in os.environ:
            env[keep] = os.environ[keep]
    env.update({"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "PIP_CONFIG_FILE": os.devnull,
                "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    env.update(extra)
    return env


def uv_argv(uv: str, request: Mapping[str, Any], work: Path) -> list[str]:
    """Return the ``uv pip compile`` of ``request``, its inputs written to ``work`` and its lock to
    ``work/pylock.toml`` (the one argv gpustack and bench/bench_lock.py run)."""
    project = work / "request" / "pyproject.toml"
    project.parent.mkdir()
    project.write_text(tomli_w.dumps(request["project"]))
    cons = work / "constraints.txt"
    cons.write_text("".join(f"{c}\n" for c in request["constraints"]))
    return [uv, "pip", "compile", str(project), "--format", "pylock.toml", "-o", str(work / "pylock.toml"),
            "--no-header", "--quiet", "--python-version", request["python_version"],
            "--python-platform", request["python_platform"], "--index-url", request["index_url"],
            "--constraint", str(cons), "--python", sys.executable]


class UvRun:
    """One ``uv pip compile`` of a request, started at once in a private temporary folder: ``result()`` waits for
    its lock, ``cancel()`` kills it (uv and anything it started) and removes the folder. ``cmd_lock`` starts one
    before the plan is known (``resolver.lock_speculate``); ``lock_resolve.resolve`` keeps it only when the plan's
    request is equal."""

    def __init__(self, uv: str, request: Mapping[str, Any]) -> None:
        self.request = dict(request)
        self._work = Path(tempfile.mkdtemp(prefix="gpustack-lock-"))
        try:
            self.argv = uv_argv(uv, request, self._work)
            self._proc: subprocess.Popen[str] | None = _subprocess.popen(self.argv, env=isolated_env())
        except BaseException:
            shutil.rmtree(self._work, ignore_errors=True)
            raise

    def result(self, timeout: float = 900) -> str | None:
        """Return the text of uv's lock (``None`` when it wrote none); ``CommandFailed`` when uv fails."""
        proc = self._proc
        assert proc is not None, "result() after cancel()"
        try:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise CommandFailed(self.argv, proc.returncode, "\n".join(out.strip().splitlines()[-20:]))
            try:
                return (self._work / "pylock.toml").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop uv (if still running) and remove its folder; a second call does nothing."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # uv runs in its own session (with the interpreter it queries)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(self._work, ignore_errors=True)
