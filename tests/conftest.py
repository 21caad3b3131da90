"""Fixtures shared across test modules."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def torch_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Returns a python with the CPU torch 2.13.0 (``GPUSTACK_TEST_TORCH_PYTHON`` reuses an existing one)."""
    given = os.environ.get("GPUSTACK_TEST_TORCH_PYTHON")
    if given:
        return given
    venv = tmp_path_factory.mktemp("torch-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    done = subprocess.run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot install torch==2.13.0 here: {done.stderr[-500:]}")
    return py

