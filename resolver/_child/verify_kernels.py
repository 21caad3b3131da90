"""Child of ``gpustack verify``: runs ONE attention backend's real kernels inside the target interpreter.

Usage: ``python verify_kernels.py --backend NAME [--gpu-lock PATH]``. Every record goes to stdout as one JSON object
per line, prefixed with ``@@gpustack `` so that library noise on stdout cannot be mistaken for a result. Kinds:
``env`` (the probe's facts), ``result`` (one case of one op), ``skip`` (the backend cannot run here, and why),
``fatal`` (an exception escaped; the traceback is in ``error``).

Standalone on purpose: the target environment need not have gpustack installed, so this file imports nothing from
it and runs on Python 3.8+. The parent (resolver/verify.py) diagnoses failures; this file only measures.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import sys
import time
import traceback
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

PREFIX = "@@gpustack "
# sdpa-cudnn leads the SDPA group: cuDNN compiles its fused kernels at run time, and that compile (about 12 s on a
# fresh H200) runs before the GPU lock is taken, beside the other backends' GPU time (see prewarm).
BACKENDS = ("sdpa-cudnn", "sdpa-flash", "sdpa-efficient", "sdpa-math", "xformers", "flash-attn", "flash-attn-3",
            "flash-attn-4", "sageattention")
PACKAGES = {"xformers": "xformers", "flash-attn": "flash_attn", "flash-attn-3": "flash_attn_interface",
            "flash-attn-4": "flash_attn.cute", "sageattention": "sageattention"}
# Backends whose kernels are compiled at run time (cuDNN's fused attention, CuTe-DSL, Triton): their first calls are
# made before the GPU lock is taken, so the compile overlaps the other backends instead of holding the GPU.
COMPILES_AT_RUN_TIME = ("sdpa-cudnn", "flash-attn-4", "sageattention")
# One timing shape per backend (bf16, forward, not causal). The CPU shape is smaller: the GPU one needs 4 GiB there.
GPU_TIMING = (4, 16, 4096, 128)
CPU_TIMING = (1, 8, 1024, 64)
# A result passes when max|out - ref| <= atol + rtol * max|ref|, per tensor (out; dq, dk, dv), against an fp32
# reference computed from the same low-precision inputs. Forward values are xformers' own test tolerances
# (xformers/ops/fmha/common.py, AttentionFwOpBase.ERROR_ATOL/RTOL); backward ones are ours (docs/verify.md).
TOL = {
    "forward": {"float32": (3e-4, 2e-5), "float16": (4e-3, 4e-4), "bfloat16": (2e-2, 5e-3)},
    "backward": {"float32": (9e-4, 1e-4), "float16": (2e-2, 1e-2), "bfloat16": (1e-1, 3e-2)},
}
SAGE_TOL = (5e-2, 5e-2)  # SageAttention quantizes Q and K to INT8 on purpose


def emit(kind: str, **fields: Any) -> None:
    """Returns nothing; writes one prefixed JSON line and flushes so a later crash cannot swallow it."""
    sys.stdout.write(PREFIX + json.dumps(dict(kind=kind, **fields), default=str) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def gpu_lock(path: Optional[str]) -> Iterator[None]:
    """Yields while holding an exclusive lock on ``path``: sibling children start in parallel but time alone."""
    if not path:
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: the parent runs children one at a time there
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _driver_cuda_version() -> Optional[int]:
    """Returns the CUDA version the driver supports (13000 for 13.0) from libcuda, or None."""
    try:
        import ctypes

        lib = ctypes.CDLL("libcuda.so.1" if os.name != "nt" else "nvcuda.dll")
        out = ctypes.c_int()
        return out.value if lib.cuDriverGetVersion(ctypes.byref(out)) == 0 else None
    except Exception:
        return None


def _xformers_build() -> Optional[Dict[str, Any]]:
    """Returns xformers' ``cpp_lib.json`` (what it was built for), read as a file: importing it may crash."""
    spec = importlib.util.find_spec("xformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "cpp_lib.json")
    try:
        with open(path) as fh:
            data: Dict[str, Any] = json.load(fh)
        return data
    except (OSError, ValueError):
        return None


def present(module: str) -> bool:
    """Returns whether ``module`` can be found; for ``a.b``, a missing ``a`` means no (find_spec would raise)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _probe_env() -> Any:
    """Returns probe_env.py, the file beside this one (loaded by path: this file runs as a script, gpustack not
    importable): its readings of the interpreter's platform and glibc are the ones every target is read by."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_env.py")
    spec = importlib.util.spec_from_file_location("gpustack_probe_env", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed(backend: str) -> bool:
    """Returns whether ``backend``'s package is installed. flash-attn-4's wheel installs ``flash_attn/cute`` and leaves
    ``flash_attn`` a namespace package, so flash-attn 2 counts only when its distribution is installed or
    ``flash_attn`` is a regular package (a spec with an origin)."""
    pkg = PACKAGES.get(backend)
    if pkg is None:
        return True
    if backend != "flash-attn":
        return present(pkg)
    from importlib import metadata

    for dist in ("flash-attn", "flash_attn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            metadata.distribution(dist)
            return True
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None and spec.origin != "namespace"


def probe() -> Dict[str, Any]:
    """Returns the facts the parent's checks and diagnoses need; imports torch but no attention extension."""
    from importlib import metadata

    probe_env = _probe_env()
    facts: Dict[str, Any] = {"python": platform.python_version(), "platform": probe_env.platform_tag(),
                             "glibc": probe_env.glibc_version(), "packages": {}}
    for dist in ("torch", "xformers", "flash-attn", "flash-attn-3", "flash_attn_3", "flash-attn-4", "sageattention",
                 "nvidia-cutlass-dsl", "triton"):
        with contextlib.suppress(Exception):
            facts["packages"][dist] = metadata.version(dist)
    facts["present"] = {b: installed(b) for b in PACKAGES}
    facts["xformers_build"] = _xformers_build()
    facts["driver_cuda"] = _driver_cuda_version()
    with contextlib.suppress(OSError), open("/sys/module/nvidia/version") as fh:
        facts["driver"] = fh.read().strip()
    import torch

    facts.update(torch=torch.__version__, torch_cuda=torch.version.cuda, hip=getattr(torch.version, "hip", None),
                 cuda_available=torch.cuda.is_available(), gpus=[], arch_list=[])
    cudnn = torch.backends.cudnn
    facts["cudnn"] = cudnn.version() if cudnn.is_available() else None
    if facts["cuda_available"]:
        facts["arch_list"] = torch.cuda.get_arch_list()
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            facts["gpus"].append({"name": p.name, "compute_capability": "%d.%d" % (p.major, p.minor),
                                  "memory_mib": p.total_memory // 2**20})
    return facts


# ---------------------------------------------------------------- kernels
class Kernel:
    """One op to prove: ``fwd(q, k, v, causal)`` in ``layout`` (``bhsd`` or ``bshd``), named per direction."""

    def __init__(self, fwd: Callable[..., Any], fwd_name: str, bwd_name: Optional[str], layout: str,
                 gqa: bool = True, causal: bool = True, tol: Optional[Tuple[float, float]] = None) -> None:
        self.fwd, self.fwd_name, self.bwd_name, self.layout = fwd, fwd_name, bwd_name, layout
        self.gqa, self.causal, self.tol = gqa, causal, tol


def _sdpa_kernels(torch: Any, name: str, device: str) -> List[Kernel]:
    """Returns the SDPA kernel with one backend forced, through sdpa_kernel (torch>=2.3) or sdp_kernel (older)."""
    import torch.nn.functional as F

    which = {"sdpa-flash": "FLASH_ATTENTION", "sdpa-efficient": "EFFICIENT_ATTENTION",
             "sdpa-cudnn": "CUDNN_ATTENTION", "sdpa-math": "MATH"}[name]
    if device == "cpu" and name in ("sdpa-efficient", "sdpa-cudnn"):
        raise Skip("no CUDA device (this SDPA backend has no CPU kernel)")
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def force() -> Any:
            return sdpa_kernel([getattr(SDPBackend, which)])
    except ImportError:
        if name == "sdpa-cudnn":
            raise Skip("torch %s has no cuDNN SDPA backend" % torch.__version__)
        flags = {k: k == which for k in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")}

        def force() -> Any:
            return torch.backends.cuda.sdp_kernel(enable_flash=flags["FLASH_ATTENTION"], enable_math=flags["MATH"],
                                                  enable_mem_efficient=flags["EFFICIENT_ATTENTION"])

    def fwd(q: Any, k: Any, v: Any, causal: bool) -> Any:
        extra = {"enable_gqa": True} if k.shape[1] != q.shape[1] else {}
        with force(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **extra)
            except RuntimeError as exc:  # the reasons torch rejected the backend arrive as warnings
                raise RuntimeError("%s\n%s" % (exc, "\n".join(str(w.message) for w in caught))) from None

    return [Kernel(fwd, "forward", "backward", "bhsd")]


def _xformers_kernels(torch: Any, device: str) -> List[Kernel]:
    """Returns one kernel per xformers op that says it is available (``xformers.info``), with that op forced."""
    if device == "cpu":
        raise Skip("no CUDA device (xformers attention ops are CUDA-only)")
    import xformers.ops as xops
    from xformers import _cpp_lib
    from xformers.ops.fmha import attn_bias

    load_error = _cpp_lib._cpp_library_load_exception
    if load_error is not None:  # keep the root cause (e.g. libcudart.so.12 missing) next to every failure
        emit("check", backend="xformers", name="xformers extension", ok=False,
             message="".join(traceback.format_exception(type(load_error), load_error, load_error.__traceback__)))
    kernels = []
    for mod_name in ("cutlass", "flash", "flash3", "triton_splitk", "cutlass_blackwell"):
        try:
            mod = importlib.import_module("xformers.ops.fmha." + mod_name)
        except Exception as exc:
            emit("result", backend="xformers", op=mod_name, dtype="-", case="import", passed=False, skipped=True,
                 max_abs_error=0.0, error="%s: %s" % (type(exc).__name__, exc))
            continue
        fw, bw = getattr(mod, "FwOp", None), getattr(mod, "BwOp", None)
        if fw is None or not fw.is_available():
            continue

        def fwd(q: Any, k: Any, v: Any, causal: bool, fw: Any = fw, bw: Any = bw) -> Any:
            bias = attn_bias.LowerTriangularMask() if causal else None
            if bw is not None and q.requires_grad:
                return xops.memory_efficient_attention(q, k, v, attn_bias=bias, op=(fw, bw))
            return xops.memory_efficient_attention_forward(q, k, v, attn_bias=bias, op=fw)

        has_bw = bw is not None and bw.is_available()
        kernels.append(Kernel(fwd, fw.NAME, bw.NAME if has_bw else None, "bshd", gqa=False,
                              causal=mod_name != "triton_splitk"))
    if not kernels:
        raise Skip("xformers reports no available attention op")
    return kernels


def _flash_kernels(torch: Any, name: str, device: str) -> List[Kernel]:
    """Returns flash-attn 2 (``flash_attn_func``), FA3 (``flash_attn_interface``) or FA4 (``flash_attn.cute``) kernels."""
    if device == "cpu":
        raise Skip("no CUDA device (%s is CUDA-only)" % name)
    major = torch.cuda.get_device_capability()[0]
    if name == "flash-attn":
        from flash_attn import flash_attn_func

        return [Kernel(lambda q, k, v, c: flash_attn_func(q, k, v, causal=c), "flash_attn_func.forward",
                       "flash_attn_func.backward", "bshd")]
    if name == "flash-attn-3":
        if major != 9:
            raise Skip("FlashAttention-3 runs on Hopper (sm_90) only; this GPU is sm_%d.x" % major)
        import flash_attn_interface as fa3

        return [Kernel(_first(fa3.flash_attn_func), "flash_attn_func.forward", "flash_attn_func.backward", "bshd")]
    # flash-attn-4 (CuTe-DSL): forward on sm_8x..sm_12x, backward on sm_9x..sm_12x (flash_attn/cute/interface.py)
    if major < 9:
        raise Skip("flash-attn-4 needs Hopper or newer for forward and backward; this GPU is sm_%d.x" % major)
    from flash_attn.cute import flash_attn_func as fa4_func

    return [Kernel(_first(fa4_func), "flash_attn_func.forward", "flash_attn_func.backward", "bshd")]


def _first(func: Callable[..., Any]) -> Callable[..., Any]:
    """Returns ``func(q, k, v, causal=c)`` reduced to its output (FA3 and FA4 may also return the LSE)."""

    def call(q: Any, k: Any, v: Any, causal: bool) -> Any:
        out = func(q, k, v, causal=causal)
        return out[0] if isinstance(out, tuple) else out

    return call


def _sage_kernels(torch: Any, device: str) -> List[Kernel]:
    """Returns SageAttention's kernels: ``sageattn`` (1.x: Triton; 2.x: the per-arch dispatcher) and, for 2.x, each
    per-architecture kernel this GPU has, as diffusers' ``_sage_*`` backends call them. Forward only: SageAttention
    has no backward."""
    if device == "cpu":
        raise Skip("no CUDA device (sageattention is CUDA-only)")
    import sageattention

    def sage(func: Callable[..., Any], **kw: Any) -> Callable[..., Any]:
        return lambda q, k, v, c: func(q, k, v, tensor_layout="HND", is_causal=c, **kw)

    kernels = [Kernel(sage(sageattention.sageattn), "sageattn.forward", None, "bhsd", tol=SAGE_TOL)]
    cc = torch.cuda.get_device_capability()
    per_arch = [("sageattn_qk_int8_pv_fp16_triton", (8, 0)), ("sageattn_qk_int8_pv_fp16_cuda", (8, 0)),
                ("sageattn_qk_int8_pv_fp8_cuda", (8, 9)), ("sageattn_qk_int8_pv_fp8_cuda_sm90", (9, 0))]
    for fname, floor in per_arch:
        func = getattr(sageattention, fname, None)  # 1.x has none of them
        if func is None or cc < floor or (fname.endswith("_sm90") and cc[0] != 9):
            continue
        kernels.append(Kernel(sage(func), fname + ".forward", None, "bhsd", tol=SAGE_TOL))
    return kernels


class Skip(Exception):
    """The backend cannot run here for a reason that is not a defect (no GPU, wrong architecture)."""


# ---------------------------------------------------------------- measuring
def reference(torch: Any, q: Any, k: Any, v: Any, causal: bool, layout: str) -> Any:
    """Returns softmax(q k^T / sqrt(d)) v computed in fp32 by plain matmuls (independent of every SDPA kernel)."""
    if layout == "bshd":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    q, k, v = q.float(), k.float(), v.float()
    if k.shape[1] != q.shape[1]:
        k, v = (t.repeat_interleave(q.shape[1] // k.shape[1], dim=1) for t in (k, v))
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        mask = torch.ones(s.shape[-2], s.shape[-1], dtype=torch.bool, device=s.device).tril()
        s = s.masked_fill(~mask, float("-inf"))
    out = torch.softmax(s, dim=-1) @ v
    return out.transpose(1, 2) if layout == "bshd" else out


def _err(torch: Any, got: Any, ref: Any, tol: Tuple[float, float]) -> Tuple[float, bool]:
    """Returns (max abs error, within atol + rtol * max|ref|)."""
    e = (got.float() - ref).abs().max().item()
    return e, bool(e <= tol[0] + tol[1] * ref.abs().max().item()) and not math.isnan(e)


def cases(device: str, major: int, only: Optional[List[str]] = None) -> List[Tuple[str, int, int, int, int, int, bool]]:
    """Returns the correctness matrix: (dtype, B, Hq, Hkv, S, D, causal), of the ``only`` dtypes if given. Small
    shapes; the timing shape is extra."""
    dtypes = ["float32", "bfloat16"] if device == "cpu" else (["float16", "bfloat16"] if major >= 8 else ["float16"])
    out = []
    for dt in dtypes:
        if only is not None and dt not in only:
            continue
        out += [(dt, 2, 4, 4, 256, d, c) for d in (64, 128) for c in (False, True)]
        out += [(dt, 2, 4, 4, 257, 64, False), (dt, 2, 8, 2, 256, 128, True)]  # odd length; GQA 8 q heads / 2 kv
    return out


def run_case(torch: Any, backend: str, kern: Kernel, case: Tuple[Any, ...], device: str) -> None:
    """Returns nothing; runs one case forward (and backward if the op has one) and emits a result per direction."""
    dt, b, hq, hkv, s, d, causal = case
    name = "B%d H%d/%d S%d D%d%s" % (b, hq, hkv, s, d, " causal" if causal else "")
    if (hq != hkv and not kern.gqa) or (causal and not kern.causal):
        return
    dtype = getattr(torch, dt)
    shape = (lambda h: (b, s, h, d)) if kern.layout == "bshd" else (lambda h: (b, h, s, d))
    grad = kern.bwd_name is not None
    q, k, v = (torch.randn(shape(h), device=device, dtype=dtype, requires_grad=grad) for h in (hq, hkv, hkv))
    base = dict(backend=backend, dtype=dt, case=name, ms=None, tflops=None)
    try:
        out = kern.fwd(q, k, v, causal)
    except Exception as exc:
        # A backend without a GQA kernel (SDPA efficient in torch 2.11) declines the case; that is not a defect.
        declined = hq != hkv and "No available kernel" in str(exc)
        emit("result", op=kern.fwd_name, passed=declined, skipped=declined, max_abs_error=0.0, error=_short(exc),
             **base)
        return
    qr, kr, vr = (t.detach().float().requires_grad_(grad) for t in (q, k, v))
    ref = reference(torch, qr, kr, vr, causal, kern.layout)
    tol = kern.tol or TOL["forward"][dt]
    e, ok = _err(torch, out.detach(), ref.detach(), tol)
    emit("result", op=kern.fwd_name, passed=ok, max_abs_error=e, tol=list(tol), error=None, **base)
    if not grad:
        return
    dout = torch.randn_like(out)
    try:
        out.backward(dout)
    except Exception as exc:
        emit("result", op=kern.bwd_name, passed=False, max_abs_error=0.0, error=_short(exc), **base)
        return
    ref.backward(dout.float())
    tol = TOL["backward"][dt]
    errs = [_err(torch, t.grad, r.grad, tol) for t, r in ((q, qr), (k, kr), (v, vr))]
    emit("result", op=kern.bwd_name, passed=all(ok for _, ok in errs), max_abs_error=max(e for e, _ in errs),
         tol=list(tol), error=None, **base)


def run_varlen(torch: Any) -> None:
    """Returns nothing; proves ``flash_attn_varlen_func`` on two packed sequences (100 and 156 tokens)."""
    from flash_attn import flash_attn_varlen_func

    for dt in ("float16", "bfloat16"):
        lens, h, d = (100, 156), 4, 128
        q, k, v = (torch.randn(sum(lens), h, d, device="cuda", dtype=getattr(torch, dt), requires_grad=True)
                   for _ in range(3))
        cu = torch.tensor([0, lens[0], sum(lens)], device="cuda", dtype=torch.int32)
        base = dict(backend="flash-attn", dtype=dt, case="varlen S100+156 H4 D128 causal", ms=None, tflops=None)
        try:
            out = flash_attn_varlen_func(q, k, v, cu, cu, max(lens), max(lens), causal=True)
        except Exception as exc:
            emit("result", op="flash_attn_varlen_func.forward", passed=False, max_abs_error=0.0, error=_short(exc),
                 **base)
            continue
        qr, kr, vr = (t.detach().float().requires_grad_() for t in (q, k, v))
        parts = [reference(torch, *(t[a:z][None] for t in (qr, kr, vr)), True, "bshd")[0]
                 for a, z in ((0, lens[0]), (lens[0], sum(lens)))]
        ref = torch.cat(parts)
        e, ok = _err(torch, out.detach(), ref.detach(), TOL["forward"][dt])
        emit("result", op="flash_attn_varlen_func.forward", passed=ok, max_abs_error=e, error=None, **base)
        dout = torch.randn_like(out)
        out.backward(dout)
        ref.backward(dout.float())
        errs = [_err(torch, t.grad, r.grad, TOL["backward"][dt]) for t, r in ((q, qr), (k, kr), (v, vr))]
        emit("result", op="flash_attn_varlen_func.backward", passed=all(o for _, o in errs),
             max_abs_error=max(x for x, _ in errs), error=None, **base)


def run_timing(torch: Any, backend: str, kern: Kernel, device: str) -> None:
    """Returns nothing; times the forward on the one timing shape (bf16) with CUDA events after a warmup."""
    b, h, s, d = GPU_TIMING if device == "cuda" else CPU_TIMING
    shape = (b, s, h, d) if kern.layout == "bshd" else (b, h, s, d)
    case = "timing B%d H%d S%d D%d" % (b, h, s, d)
    base = dict(backend=backend, op=kern.fwd_name, dtype="bfloat16", case=case)
    with torch.no_grad():
        q, k, v = (torch.randn(shape, device=device, dtype=torch.bfloat16) for _ in range(3))
        warm, iters = (3, 10) if device == "cuda" else (1, 3)
        try:
            for _ in range(warm):
                out = kern.fwd(q, k, v, False)
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                for _ in range(iters):
                    kern.fwd(q, k, v, False)
                end.record()
                torch.cuda.synchronize()
                ms = start.elapsed_time(end) / iters
            else:
                t0 = time.perf_counter()
                for _ in range(iters):
                    kern.fwd(q, k, v, False)
                ms = (time.perf_counter() - t0) * 1e3 / iters
        except Exception as exc:
            emit("result", passed=False, max_abs_error=0.0, ms=None, tflops=None, error=_short(exc), **base)
            return
        # Reference one batch element at a time: the fp32 score matrix of the whole shape is 4 GiB.
        sl = (lambda t, i: t[i:i + 1])
        e, ok = 0.0, True
        for i in range(b):
            ref = reference(torch, sl(q, i), sl(k, i), sl(v, i), False, kern.layout)
            ei, oki = _err(torch, sl(out, i), ref, kern.tol or TOL["forward"]["bfloat16"])
            e, ok = max(e, ei), ok and oki
    tflops = 4.0 * b * h * s * s * d / (ms * 1e-3) / 1e12
    emit("result", passed=ok, max_abs_error=e, ms=sig3(ms, 4), tflops=sig3(tflops), error=None, **base)


def sig3(x: float, digits: int = 3) -> float:
    """Returns ``x`` to ``digits`` significant figures (a slow CPU's 0.00123 TFLOP/s stays 0.00123, not 0.0)."""
    return float("%.*g" % (digits, x))


def _short(exc: BaseException) -> str:
    """Returns the exception's type and text, capped at 4000 characters (xformers lists every rejected op)."""
    return ("%s: %s" % (type(exc).__name__, exc))[:4000]


def run_backend(name: str, lock: Optional[str], dtypes: Optional[List[str]] = None,
                shard: Tuple[int, int] = (0, 1)) -> None:
    """Returns nothing; proves one backend, emitting ``skip`` when it cannot run here. ``shard`` (K, N) runs every
    Nth case from the Kth, and the timing shape only in shard 0, so N children at once compile a backend's
    run-time kernels in parallel."""
    pkg = PACKAGES.get(name)
    if pkg and not installed(name):
        raise Skip("%s is not installed" % (name if name == "flash-attn" else pkg))
    if importlib.util.find_spec("torch") is None:
        if pkg:  # still prove it imports: a broken install must fail even where nothing can run
            importlib.import_module(pkg)
        raise Skip("torch is not installed")
    import torch

    if pkg:  # importing is the first proof, and the one a CPU-only machine can still give
        importlib.import_module(pkg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    major = torch.cuda.get_device_capability()[0] if device == "cuda" else 0
    if name.startswith("sdpa-"):
        if device == "cuda" and major < 8 and name in ("sdpa-flash", "sdpa-cudnn"):
            raise Skip("%s needs sm_80 or newer" % name)
        kernels = _sdpa_kernels(torch, name, device)
    elif name == "xformers":
        kernels = _xformers_kernels(torch, device)
    elif name == "sageattention":
        kernels = _sage_kernels(torch, device)
    else:
        kernels = _flash_kernels(torch, name, device)
    torch.manual_seed(0)
    if device == "cuda":  # create the context and cuBLAS handle before queueing for the GPU lock
        a = torch.randn(64, 64, device=device)
        (a @ a).sum().item()
    k, n = shard
    todo = [c for i, c in enumerate(cases(device, major, dtypes)) if i % n == k]
    timed = k == 0 and (dtypes is None or "bfloat16" in dtypes)
    if device == "cuda":
        if name in COMPILES_AT_RUN_TIME:
            prewarm(torch, kernels, todo, timed)
        torch.manual_seed(0)
    with gpu_lock(lock):
        for kern in kernels:
            for case in todo:
                run_case(torch, name, kern, case, device)
            if name == "flash-attn" and k == 0:
                run_varlen(torch)
            if timed:
                run_timing(torch, name, kern, device)


def prewarm(torch: Any, kernels: List[Kernel], todo: List[Tuple[Any, ...]], timed: bool = True) -> None:
    """Returns nothing; makes each kernel's calls once, on the very shapes the cases and the timing use, outside the
    GPU lock, so run-time compilation (cuDNN's fused kernels, CuTe-DSL, Triton) is done before the measured runs and
    overlaps the other backends' GPU time. The shapes are small (the timing shape runs forward only, once); errors
    are left for the real cases to report."""
    b, h, s, d = GPU_TIMING
    for kern in kernels:
        for dt, bs, hq, hkv, sl, dim, causal in todo:
            if (hq != hkv and not kern.gqa) or (causal and not kern.causal):
                continue
            shape = (lambda n: (bs, sl, n, dim)) if kern.layout == "bshd" else (lambda n: (bs, n, sl, dim))
            grad = kern.bwd_name is not None
            with contextlib.suppress(Exception):
                q, k, v = (torch.randn(shape(n), device="cuda", dtype=getattr(torch, dt), requires_grad=grad)
                           for n in (hq, hkv, hkv))
                out = kern.fwd(q, k, v, causal)
                if grad:
                    out.backward(torch.ones_like(out))
        if not timed:
            continue
        with contextlib.suppress(Exception), torch.no_grad():
            shape4 = (b, s, h, d) if kern.layout == "bshd" else (b, h, s, d)
            q = torch.randn(shape4, device="cuda", dtype=torch.bfloat16)
            kern.fwd(q, q, q, False)
            del q
    with contextlib.suppress(Exception):
        torch.cuda.synchronize()


SDPA = tuple(b for b in BACKENDS if b.startswith("sdpa-"))


def run_group(names: Tuple[str, ...], lock: Optional[str]) -> None:
    """Returns nothing; runs several torch-only backends in this one process (one torch import, one CUDA context).

    A ``begin`` record precedes each backend so the parent can attribute what follows; if this process dies, the
    parent reruns the backends that never began, each in its own child.
    """
    for name in names:
        emit("begin", backend=name, t=time.monotonic())
        try:
            run_backend(name, lock)
        except Skip as why:
            emit("skip", backend=name, reason=str(why))
        except Exception as exc:  # noqa: BLE001 - one backend's failure must not hide the others
            emit("fatal", backend=name, error=traceback.format_exc()[-6000:], type=type(exc).__name__)
        emit("end", backend=name, t=time.monotonic())


def main(argv: Optional[List[str]] = None) -> int:
    """Returns the exit status: 0 when the backend ran (its results may still fail), 3 on an escaped exception."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, choices=("probe", "sdpa") + BACKENDS)
    parser.add_argument("--gpu-lock", default=None)
    parser.add_argument("--dtypes", default=None, help="only these dtypes (comma-separated): one child per dtype")
    parser.add_argument("--shard", default="0/1", help="K/N: every Nth case from the Kth (timing in shard 0 only)")
    args = parser.parse_args(argv)
    try:
        if args.backend == "probe":
            emit("env", **probe())
        elif args.backend == "sdpa":
            run_group(SDPA, args.gpu_lock)
        else:
            k, n = (int(x) for x in args.shard.split("/"))
            if not 0 <= k < n:
                raise ValueError("--shard K/N needs 0 <= K < N, not %r" % args.shard)
            run_backend(args.backend, args.gpu_lock, args.dtypes.split(",") if args.dtypes else None, (k, n))
    except Skip as why:
        emit("skip", backend=args.backend, reason=str(why))
    except BaseException as exc:  # noqa: BLE001 - the parent diagnoses it
        emit("fatal", backend=args.backend, error=traceback.format_exc()[-6000:], type=type(exc).__name__)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
