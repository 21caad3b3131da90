"""resolver._subprocess: no child gpustack starts can wait for a person."""

from __future__ import annotations

import os
import sys

import pytest

from resolver import _subprocess

# what the child reports: its stdin (a read ends at once on /dev/null), git's no-prompt switch, and PIP_NO_INPUT,
# which stays unset (it would also turn off pip's default keyring lookup)
_REPORT = ("import os, sys; print(repr(sys.stdin.read()), os.environ.get('PIP_NO_INPUT'), "
           "os.environ.get('GIT_TERMINAL_PROMPT'), os.environ.get('GPUSTACK_TEST_EXTRA'))")


@pytest.fixture
def open_stdin() -> object:
    """gpustack's own stdin is a pipe held open and never written (a terminal nobody types into)."""
    read, write = os.pipe()
    saved = os.dup(0)
    os.dup2(read, 0)
    os.close(read)
    yield
    os.dup2(saved, 0)
    os.close(saved)
    os.close(write)


def test_run_gives_children_no_stdin_and_no_prompts(open_stdin: object) -> None:
    done = _subprocess.run([sys.executable, "-c", _REPORT], timeout=30)
    assert done.stdout.split() == ["''", "None", "0", "None"]


def test_stream_gives_children_no_stdin_and_no_prompts_and_keeps_the_callers_env(open_stdin: object) -> None:
    lines: list[str] = []
    rc = _subprocess.stream([sys.executable, "-c", _REPORT], lines.append, env={"GPUSTACK_TEST_EXTRA": "x"})
    assert rc == 0 and lines[-1].split() == ["''", "None", "0", "x"]


def test_a_callers_own_setting_wins(open_stdin: object) -> None:
    done = _subprocess.run([sys.executable, "-c", _REPORT], env={"GIT_TERMINAL_PROMPT": "1"}, timeout=30)
    assert done.stdout.split()[2] == "1"


def test_input_text_still_reaches_the_child() -> None:
    done = _subprocess.run([sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"], input_text="abc",
                           timeout=30)
    assert done.stdout.strip() == "cba"
