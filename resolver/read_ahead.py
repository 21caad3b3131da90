"""Read the target environment while ``gpustack install`` starts, and keep the reading only while it is still true.

An install's first fact is the environment's snapshot (``resolver.target``, mode ``installed``), taken under the
environment's lock: a child of the target interpreter that reads every distribution, about 20 ms. gpustack's own
start (its imports, reading the plan) takes longer, and the child does not need it. So ``resolver.start`` (the
entry point) calls ``begin`` with the command line before even click is imported (``resolver.cli`` does, when it
is called directly), which starts that child for the interpreter the command line names (``--python-exe``,
``--venv``, or gpustack's own). Under the lock, ``install.guarded`` takes it with ``take``: only for exactly that
interpreter, and only while ``target.still_current`` proves that nothing in its site-packages folders changed since
the child began reading; a reading that is no longer current is read again (in this process when no ``.pth`` file
changed: ``target.read_again``). Anything else (another interpreter, a child that failed, a dry run, a command that
never asks) costs the child, never a different snapshot.

Where uv will install, uv reads the interpreter meanwhile too (``begin``), which it would otherwise do first thing
in the install's own ``uv pip install``.

Both children only read: a command line that turns out to be bad input still changes nothing on disk, but for uv's
own record of the interpreter in uv's cache (which any uv command on that interpreter writes).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing's import is ~2 ms, before the children start: only mypy needs these (it takes it as true)
if TYPE_CHECKING:
    from collections.abc import Sequence

    import subprocess

    from resolver.target import TargetFacts

__all__ = ["begin", "take", "end", "interpreter_of"]

class _Reading:
    """The child, and a thread that collects its output (so a large environment's answer never blocks it)."""

    def __init__(self, python_exe: str, proc: subprocess.Popen[str], args: list[str]) -> None:
        self.python_exe = python_exe
        self.proc = proc
        self.args = args
        self.out: list[str] = []
        import threading  # once the child runs

        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        self.out.append(self.proc.stdout.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.thread.join()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_current: _Reading | None = None
_warm: subprocess.Popen[bytes] | None = None  # uv's reading of the same interpreter (``begin``)


def interpreter_of(args: Sequence[str]) -> str | None:
    """Return the interpreter an ``install`` command line (its arguments after ``install``) installs into, as the
    command will name it: ``--python-exe PATH``, ``--venv DIR``'s, else this one's; ``None`` for a run that reads no
    environment first (a dry run, help) or an interpreter that is not there yet."""
    return _parse(args)[0]


def _parse(args: Sequence[str]) -> tuple[str | None, str]:
    """Return ``interpreter_of(args)`` and the ``--installer`` the command line asks for (``auto`` by default)."""
    from resolver.venvs import venv_python

    python, venv, installer = None, None, "auto"
    it = iter(args)
    for a in it:
        if a in ("--dry-run", "-h", "--help") or a.startswith("--dry-run="):
            return None, installer
        if a == "--":
            break
        for flag in ("--python-exe", "--venv", "--installer"):
            if a == flag:
                value = next(it, None)
            elif a.startswith(flag + "="):
                value = a[len(flag) + 1:]
            else:
                continue
            if flag == "--venv":
                venv = value
            elif flag == "--installer":
                installer = value or ""
            else:
                python = value
    if venv is not None:
        python = venv_python(os.path.abspath(venv))
    python = python or sys.executable
    return (python if os.sep in python and os.path.isfile(python) else None), installer


def begin(args: Sequence[str]) -> None:
    """Start reading the environment an ``install`` command line (``args``, after ``install``) installs into; a
    reading already begun for these very arguments (by ``resolver.start``) is kept.

    Where the install will run uv (``--installer uv``, or ``auto`` with a uv to run: ``installers.choose_backend``),
    uv's own reading of the interpreter starts beside it: ``uv python find PYTHON``, which records what uv learns
    in uv's cache, so the install's ``uv pip install --python PYTHON`` skips that step (~40 ms; uv does it once per
    interpreter path). It reads; the one thing it writes is that record in uv's cache, which any uv command on the
    interpreter writes."""
    global _current, _warm
    if _current is not None and _current.args == list(args):
        return
    end()
    python, installer = _parse(args)
    if python is None:
        return
    import subprocess

    from resolver._child import PROBE_ENV

    # Plain children, not ``_subprocess.popen``'s: both only read (nothing to undo if one outlives gpustack by its few
    # ms), and without a ``preexec_fn`` Python starts a child ~1.5 ms sooner (vfork) and needs no ctypes first.
    try:
        proc = subprocess.Popen([python, PROBE_ENV, "--mode", "installed"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    except OSError:
        return
    _current = _Reading(python, proc, list(args))
    if installer in ("auto", "uv"):
        from resolver.uvbin import find_uv

        uv = find_uv()
        if uv is not None:
            try:
                _warm = subprocess.Popen([uv, "python", "find", python], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError:
                pass


def take(python_exe: str) -> TargetFacts | None:
    """Return the reading ``begin`` started, when it was started for ``python_exe`` and answered, as it is now:
    itself while ``target.still_current``, else read again. ``None`` (read it as usual) otherwise; either way the
    reading is used up."""
    global _current
    reading, _current = _current, None
    if reading is None:
        return None
    try:
        if reading.python_exe != python_exe:
            return None
        from resolver.target import TIMEOUT_S, parse_facts, read_again, still_current  # loaded by the install

        reading.thread.join(TIMEOUT_S["installed"])  # as long as the install's own reading may take
        if reading.thread.is_alive() or reading.proc.wait() != 0 or not reading.out:
            return None

        try:
            facts = parse_facts(reading.out[0], "installed")
        except (ValueError, KeyError, TypeError, IndexError):
            return None
        return facts if still_current(facts) else read_again(facts)
    finally:
        reading.stop()


def end() -> None:
    """Stop the reading ``begin`` started, if nothing took it, and uv's reading, if it still runs (it only fills
    uv's cache)."""
    global _current, _warm
    reading, _current = _current, None
    if reading is not None:
        reading.stop()
    warm, _warm = _warm, None
    if warm is not None:
        if warm.poll() is None:
            warm.kill()
        warm.wait()
