"""The only place that starts a process. argv lists, ``shell=False``, logged; failures raise ``CommandFailed``.

WARNING: every child process of gpustack goes through here. Keep it small and boring.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resolver.errors import CommandFailed
from resolver.logs import Logger

__all__ = ["run", "try_run", "popen", "stream", "CompletedText"]

log = Logger("gpustack.subprocess")

_PR_SET_PDEATHSIG = 1

# Signals an install turned into exceptions (``resolver.install``) that may have been swallowed: a handler that runs
# inside fork's at-fork callbacks or a finalizer has its exception ignored. ``stream`` raises them at the next line.
pending: list[BaseException] = []


def raise_pending() -> None:
    """Raise a signal's exception that could not be raised where it arrived (once)."""
    if pending:
        raise pending.pop()


# Held back while a child is being started: a signal whose handler raises must not land between fork and the
# moment gpustack holds the child's Popen (it could not stop a child it never got).
_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _hold_signals() -> set[int | signal.Signals] | None:
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    except (AttributeError, OSError, ValueError):
        return None


def _release_signals(old: set[int | signal.Signals] | None) -> None:
    if old is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _find_prctl() -> Callable[..., Any] | None:
    """Return libc's ``prctl``, looked up once in gpustack's own process (Linux), else ``None``: a child forked from a
    threaded parent (verify runs children from a thread pool) must not load a library, which can deadlock on the
    loader's lock another thread held at fork time."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()


def _die_with_parent() -> None:
    """In the child, before exec: let the held signals through again, and ask Linux to SIGKILL it when gpustack
    dies (even by SIGKILL), so no installer outlives gpustack and goes on changing an environment whose journal
    says otherwise. Elsewhere a no-op. (Linux sends it when the thread that started the child ends: every caller
    waits for its child on that thread.)"""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    except (AttributeError, OSError, ValueError):
        pass
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class CompletedText:
    """Return code and decoded output of a finished command."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


# Nothing gpustack starts may wait for a person. Its output is captured, so a prompt never shows: pip asking "User
# for host:" when an index answers 401, or git asking for a password for a git+https requirement, was a silent
# hang. So children read no stdin (/dev/null: pip's prompt ends at once, and the step fails), and git does not ask on
# the terminal (it opens /dev/tty itself; its credential helpers still answer). Not PIP_NO_INPUT: with it, pip's
# default keyring provider ("auto") stops asking the keyring too, and private indexes reached through keyring
# would fail. A caller's own ``env`` still wins.
_NO_PROMPTS = {"GIT_TERMINAL_PROMPT": "0"}


def _merged_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    """Return a child's environment: this process's, with no prompts (``_NO_PROMPTS``), plus ``env`` (a ``None``
    value removes the variable: ``installers.IGNORED_SETTINGS``)."""
    merged = dict(os.environ)
    merged.update(_NO_PROMPTS)
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _child(argv: Sequence[str], env: Mapping[str, str | None] | None) -> tuple[list[str], dict[str, str]]:
    """Return the argv and environment a child starts with: a pip or uv index URL with credentials goes in its
    environment, not in its argv, which every local user can read (``redact.secrets_to_env``)."""
    from resolver.redact import secrets_to_env

    args, secrets = secrets_to_env(list(argv))
    return args, _merged_env({**(env or {}), **secrets})


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    input_text: str | None = None,
) -> CompletedText:
    """Return the finished command's output; raise ``CommandFailed`` on a non-zero exit when ``check``.

    ``env`` is added to this process's environment, not a replacement for it. The child runs in its own session, and
    on any exception here (a timeout, Ctrl-C, a signal) its whole process group is killed, not only the child: a
    child of its own (``python -m venv``'s ensurepip) went on writing after gpustack had given up on its parent.
    """
    log.debug("run: %s (env+%s)", " ".join(argv), sorted(env) if env else [])
    held = _hold_signals()
    try:
        args, child_env = _child(argv, env)
        child = subprocess.Popen(args, env=child_env, cwd=cwd, text=True, shell=False,
                                 stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                 preexec_fn=_die_with_parent)
    except BaseException:
        _release_signals(held)
        raise
    try:
        _release_signals(held)  # a signal that came meanwhile is raised here, with the child in hand
        out, err = child.communicate(input_text, timeout=timeout)
    except BaseException:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # its group is its pid (own session): the child and its children
        except (ProcessLookupError, PermissionError):
            child.kill()
        child.wait()
        raise
    proc = subprocess.CompletedProcess(list(argv), child.returncode, out, err)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise CommandFailed(argv, proc.returncode, tail)
    return CompletedText(argv, proc.returncode, proc.stdout, proc.stderr)


def try_run(argv: Sequence[str], *, timeout: float = 10.0, env: Mapping[str, str | None] | None = None) -> CompletedText | None:
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
    argv: Sequence[str], *, env: Mapping[str, str | None] | None = None, cwd: str | None = None
) -> subprocess.Popen[str]:
    """Return a running process whose merged stdout/stderr can be streamed line by line (builds, installs)."""
    log.debug("popen: %s", " ".join(argv))
    args, child_env = _child(argv, env)
    return subprocess.Popen(
        args,
        env=child_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        shell=False,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def stream(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: str | None = None,
) -> int:
    """Return the exit code of ``argv`` after passing each output line to ``on_line`` as it comes.

    The child runs in its own session, so a Ctrl-C reaches gpustack alone: on any exception here (``KeyboardInterrupt``
    included) the child's process group is terminated, then killed after 10 s, before the exception goes on.
    A child killed by a signal returns ``-signal`` (SIGKILL: -9).
    """
    held = _hold_signals()
    try:
        proc = popen(argv, env=env, cwd=cwd)
    except BaseException:
        _release_signals(held)
        raise
    try:
        _release_signals(held)  # a signal that came meanwhile is raised here, with the child in hand
        assert proc.stdout is not None
        for line in proc.stdout:
            raise_pending()
            on_line(line.rstrip("\n"))
        rc = proc.wait()
        raise_pending()
        return rc
    except BaseException:
        _end_group(proc)
        raise


def _end_group(proc: subprocess.Popen[str]) -> None:
    """Terminate ``proc``'s process group (pip and its build backend), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    log.debug("terminating process group of pid %d", proc.pid)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
