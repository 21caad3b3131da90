"""``gpustack verify`` on a real NVIDIA GPU: SDPA backends pass, a broken xformers is named and explained.

Marked ``gpu``; skipped cleanly where ``nvidia-smi`` or a working driver is absent. The target interpreter is
``GPUSTACK_VERIFY_PYTHON`` or the one running pytest (it needs torch with CUDA).
"""

from __future__ import annotations

import os
import sys

import pytest

from resolver.verify import VerifyReport, run_verify
from _gpu import gpu_present

pytestmark = pytest.mark.gpu


if not gpu_present():
    pytest.skip("no NVIDIA GPU (nvidia-smi absent or lists none)", allow_module_level=True)


@pytest.fixture(scope="module")
def report() -> VerifyReport:
    rep = run_verify(os.environ.get("GPUSTACK_VERIFY_PYTHON", sys.executable))
    if rep.device is None:
        pytest.skip("the target interpreter's torch sees no CUDA device: " + "; ".join(rep.notes))
    return rep


def test_sdpa_backends_run_and_pass(report: VerifyReport) -> None:
    by_backend = {r.backend: r for r in report.results}
    for name in ("sdpa-flash", "sdpa-efficient", "sdpa-math"):
        rows = [r for r in report.results if r.backend == name]
        assert rows and not any(r.skipped for r in rows), by_backend.get(name)
        assert all(r.passed for r in rows), [r.to_dict() for r in rows if not r.passed]
        timed = [r for r in rows if r.ms is not None]
        assert len(timed) == 1 and timed[0].dtype == "bfloat16" and timed[0].tflops and timed[0].tflops > 0
        assert {r.op for r in rows} == {"forward", "backward"}
        assert {r.dtype for r in rows} == {"float16", "bfloat16"}
    assert report.device and report.device["compute_capability"]


def test_full_run_is_affordable(report: VerifyReport) -> None:
    if "H100" in str((report.device or {}).get("name")):
        assert report.wall_s < 20, report.wall_s


def test_xformers_is_proven_or_diagnosed(report: VerifyReport) -> None:
    rows = [r for r in report.results if r.backend == "xformers"]
    if not rows or all(r.skipped for r in rows):
        pytest.skip("xformers is not installed in the target environment")
    failed = [r for r in rows if not r.passed]
    if not failed:
        return
    xb = (report.facts.get("xformers_build") or {}).get("version", {}).get("torch")
    if xb and xb != report.facts.get("torch"):  # the case: a wheel built for another torch
        for r in failed:
            assert r.kind == "xformers_abi", r.to_dict()
            assert f"built for torch {xb}" in (r.error or "")
            assert r.hint and "variant" in r.hint
        assert "xformers" in report.failed_backends() and not report.ok
    else:
        assert all(r.kind and r.hint is not None or r.kind == "error" for r in failed)
