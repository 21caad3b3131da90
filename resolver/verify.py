"""Prove an environment's attention stack by running its kernels: ``run_verify(python_exe) -> VerifyReport``.

Every backend (torch SDPA flash/efficient/cudnn/math, xformers, flash-attn 2, FlashAttention-3, SageAttention) runs
in a child process of the target interpreter (``resolver/_child/verify_kernels.py --backend NAME``), so a segfault
or a broken extension becomes a failed row, never a crash of gpustack. The four SDPA backends are torch's own and
share one child (one torch import and CUDA context instead of four); if it dies, the backend it was running takes
the crash and the ones it never reached are rerun in their own children. Children start together (importing
torch and creating a CUDA context dominate the cost) and take turns on the GPU through a file lock, so timings are
not disturbed. This module never imports torch. Failures are explained by ``resolver.diagnose``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resolver import _subprocess
from resolver.diagnose import Check, diagnose, environment_checks, slow_backends
from resolver.errors import BadInput

__all__ = ["BACKENDS", "BackendResult", "VerifyReport", "run_verify", "CHILD_SCRIPT", "CPU_ONLY_NOTE"]

# The child's order: sdpa-cudnn leads the SDPA group so cuDNN's run-time compile starts first (docs/verify.md).
BACKENDS = ("sdpa-cudnn", "sdpa-flash", "sdpa-efficient", "sdpa-math", "xformers", "flash-attn", "flash-attn-3",
            "flash-attn-4", "sageattention")
CHILD_SCRIPT = Path(__file__).parent / "_child" / "verify_kernels.py"
PREFIX = "@@gpustack "
CPU_ONLY_NOTE = "no CUDA device: ran the CPU kernels only"


@dataclass(frozen=True, slots=True)
class BackendResult:
    """One row: a backend's op in one dtype, over every case run (``case`` names the failing one, if any)."""

    backend: str
    op: str
    dtype: str
    passed: bool
    max_abs_error: float = 0.0  # 0.0 when nothing was compared (skipped, or failed before producing output)
    ms: float | None = None
    tflops: float | None = None
    error: str | None = None
    hint: str | None = None
    skipped: bool = False
    case: str = ""
    kind: str | None = None  # the diagnosis kind of a failure (resolver.diagnose)

    def to_dict(self) -> dict[str, Any]:
        """Returns the documented ``verify --json`` result object (docs/verify.md)."""
        return {"backend": self.backend, "op": self.op, "dtype": self.dtype, "passed": self.passed,
                "max_abs_error": self.max_abs_error, "ms": self.ms, "tflops": self.tflops, "error": self.error,
                "hint": self.hint, "skipped": self.skipped, "case": self.case, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Everything ``verify`` found. ``ok``: every backend that ran (and every expected one) passed."""

    ok: bool
    device: dict[str, Any] | None
    results: tuple[BackendResult, ...]
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = ()
    wall_s: float = 0.0
    facts: Mapping[str, Any] = field(default_factory=dict)
    child_s: Mapping[str, float] = field(default_factory=dict)  # wall seconds of each child process

    def failed_backends(self) -> list[str]:
        """Returns the backends with at least one failed row, in run order."""
        return list(dict.fromkeys(r.backend for r in self.results if not r.passed and not r.skipped))

    def to_dict(self) -> dict[str, Any]:
        """Returns ``{"ok", "device", "results", "checks", "notes", "wall_s", "child_s"}`` (docs/verify.md)."""
        return {"ok": self.ok, "device": self.device, "results": [r.to_dict() for r in self.results],
                "checks": [c.to_dict() for c in self.checks], "notes": list(self.notes),
                "wall_s": round(self.wall_s, 2), "child_s": {k: round(v, 2) for k, v in self.child_s.items()}}


@dataclass(slots=True)
class _Child:
    name: str
    returncode: int | None  # None: killed after the timeout
    records: list[dict[str, Any]]
    text: str  # everything that was not a record: stderr, library noise
    seconds: float = 0.0


def _parse(name: str, returncode: int | None, stdout: str, stderr: str) -> _Child:
    """Returns a child's records (prefixed JSON lines) apart from the rest of its output."""
    records, other = [], []
    for line in stdout.splitlines():
        if line.startswith(PREFIX):
            try:
                records.append(json.loads(line[len(PREFIX):]))
                continue
            except ValueError:
                pass
        other.append(line)
    return _Child(name, returncode, records, "\n".join(other + stderr.splitlines()))


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _run_child(python_exe: str, name: str, lock: str, timeout: float, dtypes: str | None = None,
               shard: str | None = None) -> _Child:
    """Returns one child's parsed output; a timeout kills it and keeps what it printed."""
    argv = [python_exe, str(CHILD_SCRIPT), "--backend", name, "--gpu-lock", lock]
    if shard:
        argv += ["--shard", shard]
    if dtypes:
        argv += ["--dtypes", dtypes]
    env = {"XFORMERS_MORE_DETAILS": "1", "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    if "FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED" not in os.environ:  # flash-attn-4 keeps its compiled kernels
        env["FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED"] = "1"
    t0 = time.perf_counter()
    try:
        done = _subprocess.run(argv, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        child = _parse(name, None, _text(exc.stdout), _text(exc.stderr))
    else:
        child = _parse(name, done.returncode, done.stdout, done.stderr)
    child.seconds = time.perf_counter() - t0
    return child


SDPA = tuple(b for b in BACKENDS if b.startswith("sdpa-"))
# Backends whose kernels are compiled at run time per configuration (flash-attn-4's CuTe-DSL, Sage's Triton): one
# child per dtype, so the first run's compiles happen on two cores at once. Rows are per (op, dtype): the children's
# records join without overlap.
SPLIT_BY_DTYPE = ("flash-attn-4", "sageattention")
DTYPE_PARTS = ("float16,float32", "bfloat16")  # GPU cases use fp16 + bf16, CPU cases fp32 + bf16


def shards_per_part(cores: int | None) -> int:
    """Returns how many children share one dtype's cases: 1 on small machines (every child imports torch, which
    costs more than it saves on 2 cores), up to 3 where there are cores to compile on (measured on a 16-core H200
    host: flash-attn-4's first run is bound by CuTe-DSL compiling each case's kernels)."""
    return max(1, min(3, (cores or 1) // 5))


def _run_split(python_exe: str, name: str, lock: str, timeout: float, shards: int | None = None) -> _Child:
    """Returns one backend's children (one per dtype part and shard, run at once) joined into one."""
    n = shards_per_part(os.cpu_count()) if shards is None else shards
    jobs = [(d, f"{k}/{n}" if n > 1 else None) for d in DTYPE_PARTS for k in range(n)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        parts = list(pool.map(lambda j: _run_child(python_exe, name, lock, timeout, j[0], j[1]), jobs))
    skips = [p for p in parts if any(r.get("kind") == "skip" for r in p.records)]
    if len(skips) == len(parts):  # not installed / cannot run here: one skip row, as a single child gives
        return skips[0]
    codes = [p.returncode for p in parts]
    worst = None if None in codes else next((c for c in codes if c), 0)
    return _Child(name, worst, [r for p in parts for r in p.records if r.get("kind") != "skip"],
                  "\n".join(p.text for p in parts if p.text), max(p.seconds for p in parts))


def _split_group(group: _Child) -> tuple[list[_Child], list[str]]:
    """Returns the per-backend children inside a group child's output, and the backends it never finished.

    A backend that began but did not end was running when the process died: it gets the process's return code and
    output (its crash). Backends that never began are returned for a rerun, each in its own child.
    """
    parts: dict[str, list[dict[str, Any]]] = {}
    began: dict[str, float] = {}
    ended: dict[str, float] = {}
    current: str | None = None
    for rec in group.records:
        if rec.get("kind") == "begin":
            current = str(rec.get("backend"))
            parts[current] = []
            began[current] = float(rec.get("t") or 0.0)
        elif rec.get("kind") == "end":
            ended[str(rec.get("backend"))] = float(rec.get("t") or 0.0)
        elif current is not None:
            parts[current].append(rec)
    children = []
    for name, records in parts.items():
        if name in ended:  # seconds: this backend's own share of the group's run
            children.append(_Child(name, 0, records, "", max(0.0, ended[name] - began[name])))
        else:  # the crash happened here
            children.append(_Child(name, group.returncode, records, group.text, group.seconds))
    never = [n for n in SDPA if n not in parts]
    return children, never


def _run_sdpa(python_exe: str, lock: str, timeout: float) -> list[_Child]:
    """Returns the SDPA backends' children: one process for all four (one torch import and CUDA context instead of
    four), falling back to one process per backend for any the group did not reach."""
    group = _run_child(python_exe, "sdpa", lock, timeout * len(SDPA))
    children, never = _split_group(group)
    if children:  # the group's own cost outside every backend: importing torch, creating the context
        children.append(_Child("sdpa-startup", 0, [], "", max(0.0, group.seconds - sum(c.seconds for c in children))))
    children += [_run_child(python_exe, name, lock, timeout) for name in never]
    order = {n: i for i, n in enumerate(SDPA)}
    return sorted(children, key=lambda c: order.get(c.name, 99))


def _rows_of(child: _Child, facts: Mapping[str, Any], timeout: float) -> list[BackendResult]:
    """Returns a child's rows: one per (op, dtype) over its cases, or one failed/skipped row for the backend."""
    env_facts = {**facts, "backend": child.name, "timeout": timeout}
    extra = "\n".join(r.get("message", "") for r in child.records if r.get("kind") == "check")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in child.records:
        if rec.get("kind") == "result":
            groups.setdefault((rec["op"], rec["dtype"]), []).append(rec)
        elif rec.get("kind") == "skip":
            return [BackendResult(child.name, "*", "-", False, skipped=True, hint=rec.get("reason"),
                                  case="skipped: " + str(rec.get("reason")))]
    rows = []
    for (op, dtype), all_recs in groups.items():
        recs = [r for r in all_recs if not r.get("skipped")] or all_recs
        declined = len(all_recs) - len(recs)
        timing = next((r for r in recs if str(r.get("case", "")).startswith("timing")), None)
        bad = next((r for r in recs if not r.get("passed")), None)
        err = max(float(r.get("max_abs_error") or 0.0) for r in recs)
        row = BackendResult(child.name, op, dtype, bad is None, err, timing.get("ms") if timing else None,
                            timing.get("tflops") if timing else None,
                            case=f"{len(recs)} cases" + (f" ({declined} declined: no kernel)" if declined else ""))
        if bad is not None:
            msg = bad.get("error") or (f"{child.name} {op} {dtype} {bad.get('case')}: max abs error "
                                       f"{bad.get('max_abs_error'):.3g} exceeds tolerance {bad.get('tol')}")
            d = diagnose(f"{msg}\n{extra}\n{child.text}", returncode=child.returncode or 0, env_facts=env_facts)
            row = dataclasses.replace(row, error=f"{d.message} [{msg.splitlines()[0][:200]}]", hint=d.hint,
                                      kind=d.kind, case=str(bad.get("case")))
        rows.append(row)
    fatal = next((r for r in child.records if r.get("kind") == "fatal"), None)
    if fatal is not None or child.returncode != 0:
        text = "\n".join(t for t in (str(fatal.get("error", "")) if fatal else "", extra, child.text) if t)
        d = diagnose(text, returncode=child.returncode, env_facts=env_facts)
        rows.append(BackendResult(child.name, "*", "-", False, error=d.message, hint=d.hint, kind=d.kind,
                                  case="process"))
    return rows


def _device(facts: Mapping[str, Any]) -> dict[str, Any] | None:
    gpus = facts.get("gpus") or []
    if not facts.get("cuda_available") or not gpus:
        return None
    return {**gpus[0], "count": len(gpus), "driver": facts.get("driver"), "torch": facts.get("torch"),
            "cuda": facts.get("torch_cuda"), "cudnn": facts.get("cudnn")}


def _expected(rows: list[BackendResult], expect: Sequence[str], facts: Mapping[str, Any]) -> list[BackendResult]:
    """Returns a failed row per expected backend (``sdpa`` means every ``sdpa-*``) that did not run, with the next
    step that makes it run here (``_expected_hint``)."""
    missing = []
    for name in expect:
        ran = [r for r in rows if (r.backend == name or r.backend.startswith(name + "-")) and not r.skipped]
        if not ran:
            why = next((r.hint for r in rows if r.backend == name and r.skipped), None) or "unknown backend"
            missing.append(BackendResult(name, "*", "-", False, error=f"expected {name}, but it did not run: {why}",
                                         hint=_expected_hint(name, facts), kind="not_installed", case="expected"))
    return missing


def _expected_hint(name: str, facts: Mapping[str, Any]) -> str:
    """Return what makes the expected backend ``name`` run in the environment ``facts`` describes: installing it,
    where torch sees a GPU; a CUDA stack, where an NVIDIA driver is loaded but torch sees no GPU (a +cpu build); and
    where this machine has no GPU at all, running the check on the GPU machine (an install here would be refused)."""
    if not facts or facts.get("cuda_available") or name == "sdpa":
        return f"install {name} into this environment (gpustack install {name})"
    torch = facts.get("torch") or "?"
    if facts.get("driver"):
        what = "a CPU build" if facts.get("torch_cuda") is None else "its CUDA does not start here"
        return (f"torch {torch} cannot use this machine's GPU ({what}): install a CUDA stack with it "
                f"(gpustack install {name})")
    return (f"{name} runs only on an NVIDIA GPU, and this machine has none that torch {torch} can use: run "
            f"`gpustack verify --expect {name}` on the GPU machine")


def run_verify(python_exe: str | None = None, *, expect: Sequence[str] = (), timeout: float = 120.0) -> VerifyReport:
    """Returns the report of running every backend's kernels in ``python_exe`` (default: this interpreter).

    ``expect`` names backends that must run and pass (``xformers``, ``flash-attn``, ``sdpa`` ...), so a missing one
    fails instead of being skipped. ``timeout`` bounds each child, including its wait for the GPU lock.
    """
    exe = python_exe or sys.executable
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):  # os.path: False, not OSError, for a 1 MB name
        raise BadInput(f"--python-exe {exe!r} is not an executable file (give the target environment's python)")
    unknown = [e for e in expect if e != "sdpa" and e not in BACKENDS]
    if unknown:
        raise BadInput(f"unknown backend {unknown[0]!r} for --expect (known: sdpa, {', '.join(BACKENDS)})")
    started = time.perf_counter()
    # Without fcntl (Windows) children cannot share the GPU politely: run them one at a time.
    workers = len(BACKENDS) + 2 if importlib.util.find_spec("fcntl") else 1
    with tempfile.TemporaryDirectory(prefix="gpustack-verify-") as tmp:
        lock = os.path.join(tmp, "gpu.lock")
        others = tuple(b for b in BACKENDS if b not in SDPA)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            probe_f = pool.submit(_run_child, exe, "probe", lock, timeout)
            sdpa_f = pool.submit(_run_sdpa, exe, lock, timeout)
            futures = [pool.submit(_run_split if name in SPLIT_BY_DTYPE else _run_child, exe, name, lock, timeout)
                       for name in others]
            probe = probe_f.result()
            children = sdpa_f.result() + [f.result() for f in futures]
    facts: dict[str, Any] = next((r for r in probe.records if r.get("kind") == "env"), {})
    notes: list[str] = []
    if not facts:
        d = diagnose(probe.text + "".join(str(r.get("error", "")) for r in probe.records),
                     returncode=probe.returncode, env_facts={"backend": "torch", "timeout": timeout})
        notes.append(f"probe failed: {d.message}" + (f" ({d.hint})" if d.hint else ""))
    rows = [row for child in children for row in _rows_of(child, facts, timeout)]
    rows += _expected(rows, expect, facts)
    checks = environment_checks(facts) if facts else []
    slow = slow_backends((r.backend, r.op, r.tflops) for r in rows if r.tflops and r.passed)
    for chk in slow:
        rows = [dataclasses.replace(r, hint=chk.hint) if chk.subject == (r.backend, r.op) and
                r.dtype == "bfloat16" else r for r in rows]
    checks += slow
    if facts and not facts.get("cuda_available"):
        notes.append(CPU_ONLY_NOTE)
    ran = [r for r in rows if not r.skipped]
    ok = bool(ran) and all(r.passed for r in ran)
    if not ran:
        notes.append("no backend ran: nothing was verified")
    return VerifyReport(ok, _device(facts), tuple(rows), tuple(checks), tuple(notes),
                        time.perf_counter() - started, facts, {c.name: c.seconds for c in (probe, *children)})
