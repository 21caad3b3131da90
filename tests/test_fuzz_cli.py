"""Bounded CLI fuzz (issue 12): every subcommand given malformed input exits 2 with one line on stderr, no traceback,
no hang, and leaves every file as it was. In-process (fast) and as the installed console script (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

import fuzz_cases  # noqa: E402

from resolver.cli import main  # noqa: E402

GPUSTACK = shutil.which("gpustack", path=os.path.dirname(sys.executable)) or "gpustack"


@pytest.fixture()
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "box"
    root.mkdir()
    fuzz_cases.sandbox(root)
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(root)
    return root


def test_fuzz_in_process(box: Path) -> None:
    before = fuzz_cases.snapshot(box)
    bad = []
    for label, argv in fuzz_cases.cases(box):
        result = CliRunner().invoke(main, argv)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            bad.append((label, argv, f"raised {type(result.exception).__name__}: {result.exception}"))
            continue
        why = fuzz_cases.verdict(result.exit_code, result.stdout, result.stderr)
        if why != "clean":
            bad.append((label, argv, why, result.stderr[-300:]))
    assert bad == []
    assert fuzz_cases.snapshot(box) == before


@pytest.mark.slow
def test_fuzz_console_script(box: Path, tmp_path: Path) -> None:
    before = fuzz_cases.snapshot(box)
    env = {**os.environ, "GPUSTACK_CACHE_DIR": str(tmp_path / "cache"), "PIP_CONFIG_FILE": "/dev/null"}
    subprocess.run([GPUSTACK, "plan", *fuzz_cases.TARGET], env=env, capture_output=True)  # warm the matrix cache

    def one(case: tuple[str, list[str]]) -> tuple[str, list[str], str, str]:
        label, argv = case
        try:
            done = subprocess.run([GPUSTACK, *argv], env=env, cwd=box, capture_output=True, text=True, timeout=60)
            return label, argv, fuzz_cases.verdict(done.returncode, done.stdout, done.stderr), done.stderr[-300:]
        except subprocess.TimeoutExpired:
            return label, argv, "hang", ""

    # argv cannot carry NUL; every other case keeps the run near a minute on 2 cores (all run in-process above)
    chosen = [c for c in fuzz_cases.cases(box) if not any("\x00" in a for a in c[1])][::2]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, chosen))
    assert [r for r in results if r[2] != "clean"] == []
    assert fuzz_cases.snapshot(box) == before
