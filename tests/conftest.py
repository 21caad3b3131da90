"""Fixtures shared across test modules."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

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


def plan_json(*args: str) -> tuple[int, dict[str, Any]]:
    """Return the exit code and the JSON document of `gpustack plan ARGS --json` (the real CLI, through CliRunner)."""
    import json

    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["plan", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def package_of(plan: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the package ``name`` of a plan's JSON document."""
    return next(p for p in plan["packages"] if p["name"] == name)
