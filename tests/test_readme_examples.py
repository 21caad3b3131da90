"""The README's "Real output" examples are what the real command prints today.

Each ``$ gpustack ...`` line of a ``console`` block in README.md runs as written (the installed ``gpustack``
command, user configuration left out) and its output must equal the lines under it. The examples describe their
targets, but a described target without ``--platform`` or ``--python`` takes this machine's (and says so), and a
source build's ``MAX_JOBS`` is sized to this machine: so the examples are this machine's kind (CI's: Linux x86_64,
Python 3.11), and ``MAX_JOBS=N`` is compared as a number's place, not its value.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests._isolation import isolate_installers

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11)),
    reason="README's examples were written on Linux x86_64 with Python 3.11 (a described target without --platform "
           "or --python takes this machine's)")


def examples() -> list[tuple[str, str]]:
    """Return each ``(command, output)`` of README.md's console blocks."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), re.S):
        parts = re.split(r"^\$ (.*)\n", block, flags=re.M)
        out.extend(zip(parts[1::2], parts[2::2]))
    return out


def _same_kind(text: str) -> str:
    return re.sub(r"MAX_JOBS=\d+", "MAX_JOBS=N", text.strip())


def test_readme_has_examples() -> None:
    assert len(examples()) >= 6  # a refactor of the README that drops its console blocks must not pass silently


@pytest.mark.parametrize("command,expected", examples(), ids=[c for c, _ in examples()])
def test_readme_example_prints_what_it_shows(command: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_installers(monkeypatch)
    argv = shlex.split(command)
    assert argv[0] == "gpustack"
    exe = Path(sys.executable).with_name("gpustack")
    done = subprocess.run([str(exe), *argv[1:]], capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert _same_kind(done.stdout + done.stderr) == _same_kind(expected), (
        f"README.md shows another output for `{command}` (exit {done.returncode}); the real one:\n"
        f"{done.stdout}{done.stderr}")
