"""What gpustack says of an unfinished transaction's journal: only what the journal holds (the s10 trial)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resolver import journal as journals


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("journal") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def gpustack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resolver", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("text", ['{"version": 1, "trunc', "[]", "\xff\xfe"])
def test_an_unreadable_journal_is_said_to_be_unreadable_and_nothing_more(venv: Path, text: str) -> None:
    # It said "(started 1970-01-01 00:00:00 by pid None, state unreadable journal (...), before its first step)",
    # "[]" said "state running", and install sent the user to `recover`, which can only say "remove the journal".
    journal = venv / ".gpustack" / "transaction.json"
    journal.parent.mkdir(exist_ok=True)
    journal.write_bytes(text.encode("latin-1"))
    try:
        python = str(venv / "bin" / "python")
        for args in (["recover", "--venv", str(venv)], ["install", "--cpu", "torch", "--python-exe", python,
                                                        "--dry-run"]):
            done = gpustack(*args)
            assert done.returncode == 1, done.stderr
            said = done.stderr.strip()
            assert len(said.splitlines()) == 1, said
            assert f"whose journal {journal} cannot be read" in said, said
            assert f"then remove {journal}" in said and "gpustack recover" not in said, said
            for invented in ("1970", "pid None", "before its first step", "state running"):
                assert invented not in said, said
        assert journal.read_bytes() == text.encode("latin-1")  # nothing removed or rewritten
    finally:
        journal.unlink()


def test_a_lock_install_is_not_said_to_be_before_its_first_step(venv: Path) -> None:
    # An `install --lock` SIGKILLed with 3 of its 15 packages in was "state running, before its first step":
    # a lock install runs one installer and records no steps.
    python = str(venv / "bin" / "python")
    for plan, expected in ((None, "installing a lock"), ({"steps": []}, "before its first step")):
        journal = journals.begin(python, str(venv), {}, command="install", plan=plan, backend="pip",
                                 restore_args=[])
        try:
            said = journals.pending(str(venv))
            assert said is not None and said.describe().endswith(f", state running, {expected})"), said.describe()
            assert said.readable and "gpustack recover" in said.next_step(python)
        finally:
            journal.finish()
