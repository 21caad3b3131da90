"""SageAttention 1.0.6 and flash-attn-4 on a real NVIDIA GPU, through ``gpustack verify`` (issue 13).

Marked ``gpu``; skipped cleanly where ``nvidia-smi`` lists no GPU, where the target interpreter
(``GPUSTACK_VERIFY_PYTHON`` or the one running pytest) has no CUDA torch, or where the package is not installed
there (``bench/gpu_attn.sh`` installs both from carried wheels, then runs these tests).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from resolver.verify import BackendResult, VerifyReport, run_verify
from _gpu import gpu_present

pytestmark = pytest.mark.gpu
PY = os.environ.get("GPUSTACK_VERIFY_PYTHON", sys.executable)


if not gpu_present():
    pytest.skip("no NVIDIA GPU (nvidia-smi absent or lists none)", allow_module_level=True)


def _installed(dist: str) -> str | None:
    code = f"from importlib.metadata import version\ntry: print(version({dist!r}))\nexcept Exception: pass"
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() or None


@pytest.fixture(scope="module")
def report() -> VerifyReport:
    rep = run_verify(PY, timeout=300)
    if rep.device is None:
        pytest.skip("the target interpreter's torch sees no CUDA device: " + "; ".join(rep.notes))
    return rep


def _rows(report: VerifyReport, backend: str) -> list[BackendResult]:
    rows = [r for r in report.results if r.backend == backend]
    assert rows, f"{backend} produced no row"
    assert not any(r.skipped for r in rows), [r.to_dict() for r in rows]
    assert all(r.passed for r in rows), [r.to_dict() for r in rows if not r.passed]
    return rows


def _timed_bf16(rows: list[BackendResult], op: str) -> BackendResult:
    timed = [r for r in rows if r.op == op and r.ms is not None]
    assert len(timed) == 1 and timed[0].dtype == "bfloat16", [r.to_dict() for r in rows]
    row = timed[0]
    assert row.tflops is not None and row.tflops > 0
    assert float(f"{row.tflops:.3g}") == row.tflops  # three significant figures
    return row


def test_sageattention_1_runs_its_triton_kernel_against_the_fp32_reference(report: VerifyReport) -> None:
    version = _installed("sageattention")
    if version is None:
        pytest.skip("sageattention is not installed in the target interpreter")
    rows = _rows(report, "sageattention")
    assert {r.dtype for r in rows} == {"float16", "bfloat16"}
    if version.startswith("1."):
        assert {r.op for r in rows} == {"sageattn.forward"}  # 1.x: one Triton kernel, forward only
    else:  # 2.x: the dispatcher plus the per-arch kernels this GPU has
        assert "sageattn.forward" in {r.op for r in rows} and len({r.op for r in rows}) >= 2
    _timed_bf16(rows, "sageattn.forward")


def test_flash_attn_4_runs_forward_and_backward_against_the_fp32_reference(report: VerifyReport) -> None:
    if _installed("flash-attn-4") is None:
        pytest.skip("flash-attn-4 is not installed in the target interpreter")
    if report.device and float(report.device["compute_capability"]) < 9.0:
        pytest.skip("flash-attn-4 needs sm_90 or newer for forward and backward")
    rows = _rows(report, "flash-attn-4")
    assert {r.op for r in rows} == {"flash_attn_func.forward", "flash_attn_func.backward"}
    assert {r.dtype for r in rows} == {"float16", "bfloat16"}
    _timed_bf16(rows, "flash_attn_func.forward")
    # the CuTe-DSL libraries match torch's CUDA major (flash-attn-4[cu13] for a CUDA 13 torch)
    if str((report.device or {}).get("cuda") or "").startswith("13"):
        assert _installed("nvidia-cutlass-dsl-libs-cu13") is not None


def test_every_case_still_runs_with_the_run_time_compile_moved_out_of_the_lock(report: VerifyReport) -> None:
    """The compile-ahead (cuDNN, CuTe-DSL, Triton) must not drop a case: each backend reports every case it ran."""
    cudnn = [r for r in report.results if r.backend == "sdpa-cudnn" and not r.skipped]
    if not cudnn:
        pytest.skip("sdpa-cudnn does not run here")
    for r in cudnn:
        assert r.case.startswith(("5 cases", "6 cases", "7 cases")), r.to_dict()
