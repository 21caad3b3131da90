"""``gpustack verify``: report assembly from child output, a broken fake backend, and a real CPU run (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver import verify
from resolver.errors import BadInput
from resolver.verify import CPU_ONLY_NOTE, PREFIX, _parse, _rows_of, run_verify

DATA = Path(__file__).parent / "data" / "failures"
RESULT_KEYS = {"backend", "op", "dtype", "passed", "max_abs_error", "ms", "tflops", "error", "hint"}
GPU_BACKENDS = ("sdpa-efficient", "sdpa-cudnn", "xformers", "flash-attn", "flash-attn-3", "flash-attn-4",
                "sageattention")


def rec(**fields: object) -> str:
    return PREFIX + json.dumps({"kind": "result", "ms": None, "tflops": None, "error": None, **fields})


def test_rows_aggregate_cases_and_attach_timing() -> None:
    out = "\n".join([
        "some library noise",
        rec(backend="sdpa-flash", op="forward", dtype="bfloat16", case="B2 D64", passed=True, max_abs_error=0.004),
        rec(backend="sdpa-flash", op="forward", dtype="bfloat16", case="B2 GQA", passed=True, skipped=True,
            max_abs_error=0.0, error="RuntimeError: No available kernel"),
        rec(backend="sdpa-flash", op="forward", dtype="bfloat16", case="timing B4 H16 S4096 D128", passed=True,
            max_abs_error=0.0006, ms=1.548, tflops=355.2),
        rec(backend="sdpa-flash", op="backward", dtype="bfloat16", case="B2 D64", passed=False, max_abs_error=0.7,
            tol=[0.1, 0.03]),
    ])
    rows = _rows_of(_parse("sdpa-flash", 0, out, ""), {}, 60.0)
    fwd, bwd = rows
    assert (fwd.passed, fwd.ms, fwd.tflops, fwd.max_abs_error) == (True, 1.548, 355.2, 0.004)
    assert "1 declined" in fwd.case
    assert not bwd.passed and bwd.kind == "wrong_result" and "exceeds tolerance" in (bwd.error or "")
    assert set(fwd.to_dict()) >= RESULT_KEYS


def test_crashed_child_becomes_a_diagnosed_row() -> None:
    rows = _rows_of(_parse("flash-attn", -11, "", "Fatal Python error: Segmentation fault"), {}, 60.0)
    assert len(rows) == 1 and not rows[0].passed and rows[0].kind == "crash" and "SIGSEGV" in (rows[0].error or "")
    timed_out = _rows_of(_parse("xformers", None, "", ""), {}, 5.0)
    assert timed_out[0].kind == "timeout" and "5.0 s" in (timed_out[0].error or "")


def test_bad_python_exe_and_unknown_expect(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not an executable"):
        run_verify(str(tmp_path / "nope"))
    with pytest.raises(BadInput, match="unknown backend 'fa9'"):
        run_verify(sys.executable, expect=["fa9"])


@pytest.fixture
def broken_xformers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Yields a directory, put on PYTHONPATH, holding an ``xformers`` whose import raises the real H100 error."""
    message = (DATA / "h100_xformers0.0.35_load_failure.txt").read_text().split(
        "xformers._cpp_lib.xFormersInvalidLibException: ")[1].split("\n\n")[0]
    pkg = tmp_path / "fake" / "xformers"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        f"class xFormersInvalidLibException(Exception):\n    pass\n\nraise xFormersInvalidLibException({message!r})\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(pkg.parent), os.environ.get("PYTHONPATH")])))
    yield pkg.parent


def _xformers_row_is_diagnosed(report: verify.VerifyReport) -> None:
    rows = [r for r in report.results if r.backend == "xformers"]
    assert len(rows) == 1 and not rows[0].passed and not rows[0].skipped
    assert rows[0].kind == "xformers_abi"
    assert "built for torch 2.10.0+cu128" in (rows[0].error or "") and "you have 2.11.0+cu130" in (rows[0].error or "")
    assert rows[0].hint and "cu130" in rows[0].hint
    assert not report.ok and report.failed_backends() == ["xformers"]


def test_broken_fake_xformers_is_a_failed_row_not_a_crash(broken_xformers: Path) -> None:
    # This interpreter has no torch: the child still imports xformers, and that import is the failure.
    report = run_verify(sys.executable, timeout=60)
    _xformers_row_is_diagnosed(report)
    assert all(r.skipped for r in report.results if r.backend != "xformers")
    assert "torch" not in sys.modules  # gpustack itself never imports torch


# ---------------------------------------------------------------- real CPU run (slow: installs torch once)
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resolver", "verify", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_cpu_end_to_end_runs_sdpa_math_for_real(torch_python: str) -> None:
    done = _cli("--python-exe", torch_python, "--json")
    assert done.returncode == 0, done.stderr + done.stdout[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["device"] is None
    assert CPU_ONLY_NOTE in report["notes"]
    math_rows = [r for r in report["results"] if r["backend"] == "sdpa-math"]
    assert {(r["op"], r["dtype"]) for r in math_rows} == {(o, d) for o in ("forward", "backward")
                                                         for d in ("float32", "bfloat16")}
    for r in math_rows + [r for r in report["results"] if r["backend"] == "sdpa-flash"]:
        assert set(r) >= RESULT_KEYS and r["passed"] and not r["skipped"]
        assert 0 < r["max_abs_error"] < (1e-4 if r["dtype"] == "float32" else 0.1)
    timed = [r for r in math_rows if r["ms"] is not None]
    # Any finite time gives a positive rate at three significant figures, however slow or loaded the machine.
    assert len(timed) == 1 and timed[0]["tflops"] > 0 and float(f"{timed[0]['tflops']:.3g}") == timed[0]["tflops"]
    for name in GPU_BACKENDS:
        rows = [r for r in report["results"] if r["backend"] == name]
        assert len(rows) == 1 and rows[0]["skipped"] and rows[0]["hint"], rows


@pytest.mark.slow
def test_cpu_expect_missing_backend_fails_and_table_says_cpu_only(torch_python: str) -> None:
    done = _cli("--python-exe", torch_python, "--expect", "xformers")
    assert done.returncode == 1
    assert CPU_ONLY_NOTE in done.stdout and "expected xformers" in done.stdout
    # the next step works from here: not `gpustack install xformers`, which this GPU-less machine refuses
    out = " ".join(done.stdout.split())
    assert "gpustack verify --expect xformers` on the GPU machine" in out and "(gpustack install" not in out, out


@pytest.mark.parametrize("facts, says", [
    ({"cuda_available": True, "torch": "2.5.1+cu124"}, "install xformers into this environment (gpustack install "
                                                       "xformers)"),
    ({"cuda_available": False, "torch": "2.13.0+cpu", "torch_cuda": None, "driver": "580.95.05"},
     "torch 2.13.0+cpu cannot use this machine's GPU (a CPU build): install a CUDA stack with it"),
    ({"cuda_available": False, "torch": "2.13.0+cpu", "torch_cuda": None},
     "xformers runs only on an NVIDIA GPU, and this machine has none"),
])
def test_expected_backend_hint_is_a_step_that_works_here(facts: dict[str, object], says: str) -> None:
    from resolver.verify import _expected

    [row] = _expected([], ["xformers"], facts)
    assert not row.passed and says in (row.hint or ""), row.hint


@pytest.mark.slow
def test_cpu_with_broken_xformers(torch_python: str, broken_xformers: Path) -> None:
    _xformers_row_is_diagnosed(run_verify(torch_python, timeout=300))


def test_sdpa_group_output_is_split_per_backend_and_a_crash_stays_with_its_backend() -> None:
    """The SDPA group child dies (SIGSEGV) inside sdpa-cudnn: flash and efficient keep their rows, cudnn takes the
    crash, and sdpa-math, which never began, is handed back for a run in its own child."""
    from resolver.verify import _Child, _split_group

    records = [
        {"kind": "begin", "backend": "sdpa-flash"},
        {"kind": "result", "op": "sdpa.forward", "dtype": "bfloat16", "passed": True, "max_abs_error": 0.001},
        {"kind": "end", "backend": "sdpa-flash"},
        {"kind": "begin", "backend": "sdpa-efficient"},
        {"kind": "skip", "backend": "sdpa-efficient", "reason": "needs sm_80"},
        {"kind": "end", "backend": "sdpa-efficient"},
        {"kind": "begin", "backend": "sdpa-cudnn"},
    ]
    group = _Child("sdpa", -11, records, "Fatal Python error: Segmentation fault", 3.0)
    children, never = _split_group(group)
    by_name = {c.name: c for c in children}
    assert [c.name for c in children] == ["sdpa-flash", "sdpa-efficient", "sdpa-cudnn"]
    assert by_name["sdpa-flash"].returncode == 0 and len(by_name["sdpa-flash"].records) == 1
    assert by_name["sdpa-cudnn"].returncode == -11 and "Segmentation fault" in by_name["sdpa-cudnn"].text
    assert never == ["sdpa-math"]


def test_rates_keep_three_significant_figures_and_backends_agree_with_the_child() -> None:
    """A slow CPU's rate is 0.00123 TFLOP/s, not 0.0 (two decimals made it 0); parent and child list one backend set."""
    import importlib.util

    from resolver.verify import BACKENDS, CHILD_SCRIPT

    spec = importlib.util.spec_from_file_location("verify_kernels_child", CHILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    assert child.sig3(0.0012345) == 0.00123 and child.sig3(342.49) == 342.0 and child.sig3(1234.5) == 1230.0
    assert child.BACKENDS == BACKENDS and child.BACKENDS[0] == "sdpa-cudnn"
    assert set(child.COMPILES_AT_RUN_TIME) <= set(BACKENDS) and "flash-attn-4" in child.PACKAGES


def test_compiling_backends_run_one_child_per_dtype_and_join(tmp_path: Path) -> None:
    """flash-attn-4 / sageattention run as two children at once (fp16, bf16), so first-run compiles overlap; their
    rows join into one backend's rows, and a crash in one part still fails the backend."""
    from resolver.verify import _rows_of, _run_split

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    "for a; do last=$prev; prev=$a; done\n"  # the value after --dtypes is the last argument
                    "case \"$prev\" in\n"
                    "  bfloat16) echo '@@gpustack {\"kind\": \"result\", \"op\": \"f.forward\", \"dtype\": \"bfloat16\", "
                    "\"passed\": true, \"max_abs_error\": 0.01, \"case\": \"timing B4\", \"ms\": 1.0, \"tflops\": 137.0}';;\n"
                    "  *) echo '@@gpustack {\"kind\": \"result\", \"op\": \"f.forward\", \"dtype\": \"float16\", "
                    "\"passed\": true, \"max_abs_error\": 0.001, \"case\": \"B2\"}'; exit 139;;\n"
                    "esac\n")
    fake.chmod(0o755)
    child = _run_split(str(fake), "flash-attn-4", str(tmp_path / "lock"), 30.0)
    rows = _rows_of(child, {}, 30.0)
    assert {(r.op, r.dtype) for r in rows if r.op != "*"} == {("f.forward", "float16"), ("f.forward", "bfloat16")}
    assert next(r for r in rows if r.dtype == "bfloat16").tflops == 137.0
    assert any(r.op == "*" and not r.passed for r in rows)  # the part that died is a failed row


def test_flash_attn_4_namespace_package_is_not_flash_attn_2(tmp_path: Path) -> None:
    # flash-attn-4's wheel installs flash_attn/cute only: flash_attn is a namespace package, not flash-attn 2.
    cute = tmp_path / "site" / "flash_attn" / "cute"
    cute.mkdir(parents=True)
    (cute / "__init__.py").write_text("")
    child = Path(verify.__file__).parent / "_child" / "verify_kernels.py"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}

    def skip_of(backend: str) -> str:
        done = subprocess.run([sys.executable, str(child), "--backend", backend], capture_output=True, text=True,
                              env=env, timeout=60)
        recs = [json.loads(line[len(PREFIX):]) for line in done.stdout.splitlines() if line.startswith(PREFIX)]
        return str(next(r for r in recs if r["kind"] == "skip")["reason"])

    assert skip_of("flash-attn") == "flash-attn is not installed"
    assert skip_of("flash-attn-4") == "torch is not installed"  # FA4 is present: its import was proven first
    (tmp_path / "site" / "flash_attn" / "__init__.py").write_text("")  # a regular package: flash-attn 2's layout
    assert skip_of("flash-attn") == "torch is not installed"


def test_compiling_backends_shard_cases_on_big_machines(tmp_path: Path) -> None:
    """On a many-core GPU host each dtype's cases are spread over several children (--shard K/N), so run-time
    kernel compiles run in parallel; on a 2-core machine one child per dtype (importing torch costs more)."""
    from resolver.verify import _rows_of, _run_split, shards_per_part

    assert shards_per_part(2) == 1 and shards_per_part(None) == 1 and shards_per_part(16) == 3
    seen = tmp_path / "seen"
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    f"echo \"$@\" >> {seen}\n"
                    "for a; do last=$prev; prev=$a; done\n"
                    "echo '@@gpustack {\"kind\": \"result\", \"op\": \"f.forward\", \"dtype\": \"'\"$prev\"'\", "
                    "\"passed\": true, \"max_abs_error\": 0.001, \"case\": \"B2\"}'\n")
    fake.chmod(0o755)
    child = _run_split(str(fake), "flash-attn-4", str(tmp_path / "lock"), 30.0, shards=2)
    calls = seen.read_text().splitlines()
    assert sorted(c.split("--shard ")[1].split()[0] for c in calls) == ["0/2", "0/2", "1/2", "1/2"]
    rows = _rows_of(child, {}, 30.0)
    assert {r.dtype: r.case for r in rows} == {"float16,float32": "2 cases", "bfloat16": "2 cases"}
