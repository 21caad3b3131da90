"""Oracle: the PyPI-side pins of real plans resolve with uv for the plan's own platform, Python and glibc.

For a sample of targets across platforms, Pythons and manylinux floors, ``gpustack plan --json`` is asked for a stack
and every package it takes from PyPI is handed to ``uv pip compile --python-platform ... --python-version ...``
(isolated from any user configuration: UV_NO_CONFIG=1, only https://pypi.org/simple, wheels only). uv, not our own
tag logic, decides whether PyPI has a wheel the target can install. Marked ``network``: skips cleanly when PyPI does
not answer or uv is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.models import PYPI_SIMPLE
from resolver.uvbin import find_uv
from _net import pypi_answers

pytestmark = pytest.mark.network

# (plan arguments, requirements): each target names platform, Python and (Linux) glibc explicitly
SAMPLES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("--gpu", "Tesla T4", "--driver", "550.54.15", "--platform", "linux_x86_64", "--python", "3.10", "--glibc", "2.17"),
     ("torch",)),
    (("--gpu", "H100", "--driver", "580.65.06", "--platform", "linux_x86_64", "--python", "3.12", "--glibc", "2.28"),
     ("torch", "xformers")),
    (("--gpu", "A100", "--driver", "550.54.15", "--platform", "linux_x86_64", "--python", "3.11", "--glibc", "2.17"),
     ("torch",)),
    (("--cpu", "--platform", "linux_aarch64", "--python", "3.11", "--glibc", "2.17"), ("torch",)),
    (("--cpu", "--platform", "linux_aarch64", "--python", "3.13", "--glibc", "2.28"), ("torch<2.11",)),
    (("--gpu", "GH200", "--driver", "580.65.06", "--platform", "linux_aarch64", "--python", "3.12", "--glibc", "2.34"),
     ("torch",)),
    (("--cpu", "--platform", "win_amd64", "--python", "3.12"), ("torch",)),
    (("--cpu", "--platform", "win_amd64", "--python", "3.9"), ("torch",)),
    (("--gpu", "RTX 4090", "--driver", "550.54.15", "--platform", "linux_x86_64", "--python", "3.9", "--glibc", "2.31"),
     ("torch", "xformers")),
]


def _uv() -> str | None:
    return find_uv()


def _uv_platform(target: dict[str, Any]) -> str:
    if target["platform"] == "win_amd64":
        return "x86_64-pc-windows-msvc"
    arch = target["platform"].removeprefix("linux_")
    major, minor = str(target["glibc"]).split(".")
    return f"{arch}-manylinux_{major}_{minor}"


@pytest.mark.parametrize("args,reqs", SAMPLES, ids=[" ".join(a[1:2] + a[-5:] + r) for a, r in SAMPLES])
def test_pypi_pins_resolve_with_uv(args: tuple[str, ...], reqs: tuple[str, ...], tmp_path: Path) -> None:
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed")
    if not pypi_answers():
        pytest.skip("PyPI does not answer")
    res = CliRunner().invoke(main, ["plan", "--json", *args, *reqs])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    target = plan["target"]
    pins = [f"{p['name']}=={p['version'].split('+')[0]}" for p in plan["packages"]
            if p["method"] == "wheel" and p.get("index_url") == PYPI_SIMPLE]
    assert pins, plan  # every sample takes torch from PyPI
    (tmp_path / "in.txt").write_text("\n".join(pins) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [uv, "pip", "compile", str(tmp_path / "in.txt"), "--no-deps", "--only-binary", ":all:",
           "--index-url", "https://pypi.org/simple", "--python-platform", _uv_platform(target),
           "--python-version", target["python"], "--no-header", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0 and ("error sending request" in done.stderr or "Failed to fetch" in done.stderr):
        pytest.skip(f"PyPI did not answer uv: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, f"{' '.join(cmd)}\n{pins}\n{done.stderr}"
    for pin in pins:
        assert pin in done.stdout, done.stdout
