"""The only place that starts a process. argv lists, ``shell=False``, logged; failures raise ``CommandFailed``.

WARNING: every child process of gpustack goes through here. Keep it small and boring.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence

from resolver.errors import CommandFailed

__all__ = ["run", "try_run", "CompletedText"]

log = logging.getLogger("gpustack.subprocess")


class CompletedText:
    """Return code and decoded output of a finished command."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def _merged_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    merged = dict(os.environ)
    merged.update(env)
    return merged


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    input_text: str | None = None,
) -> CompletedText:
    """Return the finished command's output; raise ``CommandFailed`` on a non-zero exit when ``check``.

    ``env`` is added to this process's environment, not a replacement for it.
    """
    log.debug("run: %s (env+%s)", " ".join(argv), sorted(env) if env else [])
    proc = subprocess.run(
        list(argv),
        env=_merged_env(env),
        cwd=cwd,
        timeout=timeout,
        capture_output=True,
        text=True,
        input=input_text,
        shell=False,
    )
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise CommandFailed(argv, proc.returncode, tail)
    return CompletedText(argv, proc.returncode, proc.stdout, proc.stderr)


def try_run(argv: Sequence[str], *, timeout: float = 10.0, env: Mapping[str, str] | None = None) -> CompletedText | None:
    """Return the command's output, or ``None`` when the program is missing, times out or fails."""
    try:
        done = run(argv, timeout=timeout, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("probe %s unavailable: %s", argv[0], exc)
        return None
    if done.returncode != 0:
        log.debug("probe %s exited %d", argv[0], done.returncode)
        return None
    return done


def popen(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen[str]:
    """Return a running process whose merged stdout/stderr can be streamed line by line (builds, installs)."""
    log.debug("popen: %s", " ".join(argv))
    return subprocess.Popen(
        list(argv),
        env=_merged_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        shell=False,
        start_new_session=True,
    )
