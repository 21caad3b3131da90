"""The built wheel carries the matrices: `pip install` it into a fresh venv and run gpustack from another folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.network
@pytest.mark.slow
def test_installed_wheel_finds_its_matrices(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(wheels)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("gpustack_resolver-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, capture_output=True,
                   timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([str(venv / "bin" / "gpustack"), "matrix", "validate"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "site-packages/resolver/matrices" in done.stdout
    done = subprocess.run([str(venv / "bin" / "gpustack"), "plan", "--gpu", "Tesla T4", "--driver", "535.104.05",
                           "--json"], cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"ok": true' in done.stdout
