"""What went wrong with an attention backend, and the fix: pure functions over captured text and probe facts.

``diagnose(output, returncode=..., env_facts=...)`` reads what a ``verify`` child printed (tracebacks, xformers'
load warning, CUDA errors) and names the failure. ``environment_checks(facts)`` and ``slow_backends(timings)``
look at the probe's facts and the timings before anyone reads a traceback. Nothing here runs a process or imports
torch; tests feed real captured outputs (tests/data/failures/).

``env_facts`` is the probe's ``env`` record (resolver/_child/verify_kernels.py ``probe()``): ``torch``,
``torch_cuda``, ``driver_cuda`` (1000 * major + 10 * minor), ``gpus`` (``compute_capability``), ``arch_list``,
``packages`` (installed versions), ``xformers_build`` (its ``cpp_lib.json``); plus ``backend`` and ``timeout``.
"""

from __future__ import annotations

import functools
import re
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from packaging.version import Version

from resolver.compat import runtime_cuda_problem
from resolver.models import PYTORCH_INDEX, ArchList, ComputeCapability, Target

__all__ = ["Diagnosis", "Check", "diagnose", "environment_checks", "slow_backends", "SLOW_FRACTION"]

# A kernel under this share of the best kernel of its own family (same algorithm, so the same native speed) on the same
# shape is flagged: a PTX-JIT or fallback build. Across families speeds differ natively (on an H200 torch's
# mem-efficient kernel runs at 173 TFLOP/s beside flash-attn-4's 701, 24.7%), so there only FLOOR_FRACTION is.
SLOW_FRACTION = 0.25
FLOOR_FRACTION = 0.15
# Not comparable with prefill kernels: the reference math path, and split-K decoding kernels.
_SPEED_EXEMPT = re.compile(r"^sdpa-math$|splitK", re.I)
# (family, backend, op): the first match names a kernel's algorithm family. torch's mem-efficient SDPA is xformers'
# cutlass kernel, and torch's flash SDPA is FlashAttention-2; Hopper-and-newer kernels (cuDNN, FA3, FA4) form one.
_FAMILIES = tuple((f, re.compile(b), re.compile(o, re.I)) for f, b, o in (
    ("cutlass", r"^sdpa-efficient$", ""), ("cutlass", r"^xformers$", r"^cutlass(?!.*blackwell)"),
    ("flash-2", r"^(sdpa-flash|flash-attn)$", ""), ("flash-2", r"^xformers$", r"^(fa2|flshatt)"),
    ("hopper+", r"^(sdpa-cudnn|flash-attn-3|flash-attn-4)$", ""), ("hopper+", r"^xformers$", r"^(fa3|cutlass)"),
))


def _family(backend: str, op: str) -> str:
    """Returns the algorithm family of a (backend, op) kernel; an unknown one is its own family."""
    return next((f for f, b, o in _FAMILIES if b.search(backend) and o.search(op)), f"{backend} {op}")


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A named failure: ``kind`` (stable, for code), ``message`` (what happened), ``hint`` (the fix, or None)."""

    kind: str
    message: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One environment fact checked before kernels run. ``severity`` says whether it is fatal for the stack."""

    name: str
    ok: bool
    message: str
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"
    subject: tuple[str, str] | None = None  # (backend, op) a speed check is about, so its row is found by value

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON form used in ``verify --json``'s ``checks``."""
        return {"name": self.name, "ok": self.ok, "severity": self.severity, "message": self.message,
                "hint": self.hint}


_BUILT_FOR = re.compile(r"PyTorch\s+(\S+)\s+with CUDA\s+(\S+)\s+\(you have\s+([^)\s]+)\)")
_CUDART = re.compile(r"(lib(?:cudart|cublas\w*|cudnn\w*|nvrtc\w*)\.so\.(\d+)): cannot open shared object file")
_UNDEF = re.compile(r"(\S+\.so)\S*: undefined symbol: (\S+)")
_PKG_IN_PATH = re.compile(r"(?:site|dist)-packages/([A-Za-z0-9_]+)/|/(xformers|flash_attn\w*|sageattention)/")
_DRIVER_OLD = ("driver on your system is too old", "driver version is insufficient", "cudaErrorInsufficientDriver")
_AMPERE = "FlashAttention only supports Ampere GPUs or newer"


def cuda_tag_of(torch_version: str | None) -> str | None:
    """Returns the wheel tag in a torch version: ``"2.11.0+cu130"`` -> ``"cu130"``; None when it has none."""
    m = re.search(r"\+(cu\d+|rocm[\d.]+|cpu)$", torch_version or "")
    return m.group(1) if m else None


def _cuda_of_xformers(value: Any) -> str:
    """Returns xformers' ``cpp_lib.json`` CUDA number as a version: ``1208`` -> ``"12.8"``."""
    s = str(value)
    return f"{int(s) // 100}.{int(s) % 100}" if s.isdigit() and len(s) >= 3 else s


def _cc(env_facts: Mapping[str, Any]) -> ComputeCapability | None:
    gpus = env_facts.get("gpus") or []
    return ComputeCapability.parse(gpus[0]["compute_capability"]) if gpus else None


def _xformers_mismatch(built_torch: str, built_cuda: str, have: str, env_facts: Mapping[str, Any]) -> Diagnosis:
    version = (env_facts.get("packages") or {}).get("xformers", "")
    message = f"xformers {version} was built for torch {built_torch} (CUDA {built_cuda}); you have {have}".replace(
        "xformers  ", "xformers ")
    solved = _xformers_for_torch({**env_facts, "torch": have})
    if solved is not None:
        return Diagnosis("xformers_abi", message, solved)
    tag = cuda_tag_of(have)
    hint = "install the xformers build made for your torch"
    if tag and tag.startswith("cu"):
        hint = f"install the {tag} variant (pip install xformers --index-url {PYTORCH_INDEX}/{tag})"
    return Diagnosis("xformers_abi", message, hint + " or let gpustack build it against your torch")


def _from_xformers_build(env_facts: Mapping[str, Any]) -> Diagnosis | None:
    """Returns the mismatch recorded in xformers' cpp_lib.json, when it was built for another torch."""
    build = env_facts.get("xformers_build") or {}
    built = (build.get("version") or {}).get("torch")
    have = env_facts.get("torch")
    if not built or not have or built == have:
        return None
    return _xformers_mismatch(built, _cuda_of_xformers(build["version"].get("cuda")), have, env_facts)


def _package(output: str, env_facts: Mapping[str, Any]) -> str:
    """Returns the package a failing library belongs to: from a path in the output, else the backend's name."""
    m = _PKG_IN_PATH.search(output)
    if m:
        return (m.group(1) or m.group(2)).replace("_2_cuda", "").replace("flash_attn", "flash-attn")
    return str(env_facts.get("backend") or "the extension")


def _rebuild_hint(pkg: str, env_facts: Mapping[str, Any]) -> str:
    if pkg == "torch":  # "a torch build made for torch X" says nothing
        return "reinstall torch with `gpustack install torch`, which picks the build for this machine"
    torch = env_facts.get("torch") or "your torch"
    tag = cuda_tag_of(env_facts.get("torch"))
    where = f" ({PYTORCH_INDEX}/{tag})" if tag and tag.startswith("cu") and pkg in ("xformers", "torch") else ""
    return (f"install a {pkg} build made for torch {torch}{where}, or rebuild it against it: "
            f"pip install --no-build-isolation --no-binary {pkg} {pkg}")


def diagnose(output: str, *, returncode: int | None, env_facts: Mapping[str, Any]) -> Diagnosis:
    """Returns the diagnosis of a failed backend from its output and exit status.

    ``returncode`` is the child's exit status; ``None`` means it was killed after ``env_facts["timeout"]`` seconds.
    A negative one is a signal (a segfault inside an extension). Text patterns are tried most specific first, so an
    xformers load failure wins over the "No operator found" it causes.
    """
    cc = _cc(env_facts)
    pkg = _package(output, env_facts)
    torch = env_facts.get("torch") or "?"
    if returncode is None:
        return Diagnosis("timeout", f"{env_facts.get('backend', 'the backend')} did not finish within "
                         f"{env_facts.get('timeout', '?')} s",
                         "a hung kernel or a long JIT compile (PTX JIT, triton); run again with a longer --timeout, "
                         "and check that the build has native code for this GPU")
    m = _BUILT_FOR.search(output)
    if "xFormers can't load C++/CUDA extensions" in output or m:
        if m:
            diag = _xformers_mismatch(m.group(1), _cuda_of_xformers(m.group(2)), m.group(3), env_facts)
        else:
            diag = _from_xformers_build(env_facts) or Diagnosis(
                "xformers_abi", "xformers can't load its C++/CUDA extension", _rebuild_hint("xformers", env_facts))
        cause = _CUDART.search(output)
        if cause:
            diag = Diagnosis(diag.kind, f"{diag.message} (root cause: {cause.group(1)} is missing)", diag.hint)
        return diag
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return Diagnosis("crash", f"{pkg} crashed the process ({name})",
                         "a compiled extension built for another torch/CUDA usually does this; "
                         + _rebuild_hint(pkg, env_facts))
    m2 = _CUDART.search(output)
    if m2:
        have = env_facts.get("torch_cuda") or "another version"
        tag = cuda_tag_of(env_facts.get("torch"))
        return Diagnosis("missing_cuda_library",
                         f"{pkg} links {m2.group(1)} (CUDA {m2.group(2)}), but torch {torch} ships CUDA {have}",
                         f"install the {pkg} build for {tag or 'your torch'}, or rebuild it against your torch")
    m3 = _UNDEF.search(output)
    if m3:
        lib = m3.group(1).rsplit("/", 1)[-1]
        return Diagnosis("undefined_symbol", f"{lib} was compiled against a different torch than {torch} "
                         f"(undefined symbol {m3.group(2)[:80]})", _rebuild_hint(pkg, env_facts))
    if "no kernel image is available" in output:
        arch = f"{cc.major}.{cc.minor}" if cc else "<your GPU's compute capability>"
        return Diagnosis("no_kernel_image", f"{pkg} has no kernels for this GPU (sm_{arch.replace('.', '')})",
                         f"rebuild {pkg} with TORCH_CUDA_ARCH_LIST={arch}" if pkg != "torch" else
                         f"install a torch build whose arch list includes sm_{arch.replace('.', '')}")
    if any(p in output for p in _DRIVER_OLD):
        tc, dc = env_facts.get("torch_cuda"), env_facts.get("driver_cuda")
        have = f"{dc // 1000}.{dc % 1000 // 10}" if isinstance(dc, int) else "an older CUDA"
        return Diagnosis("driver_too_old", f"torch {torch} needs a driver for CUDA {tc}; this driver supports {have}",
                         f"upgrade the NVIDIA driver, or install a torch built for CUDA {have} or older")
    if _AMPERE in output:
        gpu = f"sm_{cc.major}{cc.minor}" if cc else "this GPU"
        return Diagnosis("gpu_too_old", f"flash-attn 2 needs an Ampere (sm_80) or newer GPU; this is {gpu}",
                         "use torch SDPA (efficient attention) or xformers' cutlass op, or flash-attn 1.x")
    if "out of memory" in output.lower() or "OutOfMemoryError" in output:
        return Diagnosis("out_of_memory", "CUDA ran out of memory",
                         "another process is holding GPU memory (see nvidia-smi); free it and run again")
    if "No operator found" in output:
        if "wasn't build with CUDA support" in output or "operator wasn't built" in output:
            found = _from_xformers_build(env_facts)
            if found:
                return found
            return Diagnosis("xformers_abi", "xformers' C++/CUDA extension did not load, so no op can run",
                             _rebuild_hint("xformers", env_facts))
        return Diagnosis("no_operator", "xformers rejected every op for these inputs",
                         "run `python -m xformers.info` and check the reasons listed in the error")
    if "exceeds tolerance" in output:
        return Diagnosis("wrong_result", output.strip().splitlines()[-1],
                         f"the kernel ran but computed wrong values: {_rebuild_hint(pkg, env_facts)}")
    m4 = re.search(r"(ModuleNotFoundError|ImportError): (.+)", output)
    if m4:
        missing = re.match(r"No module named '([\w.]+)'", m4.group(2).strip())
        if missing and missing.group(1).split(".")[0] == pkg.replace("-", "_"):  # the package itself is not there
            return Diagnosis("not_installed", f"{pkg} is not installed in this environment",
                             f"install it with `gpustack install {pkg}`, which picks the build for this machine")
        return Diagnosis("import_error", f"{pkg} failed to import: {m4.group(2).strip()}", _rebuild_hint(pkg, env_facts))
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    return Diagnosis("error", lines[-1][:300] if lines else f"exited with status {returncode}", None)


def _cuda_pair(text: str | None) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _machine(facts: Mapping[str, Any]) -> Target | None:
    """Return the probed machine as a solver target (GPUs, Python, platform, glibc, driver), or ``None`` when the
    facts do not say enough to solve for it. Platform and glibc are the probed interpreter's (a probe that predates
    them: this machine's platform, glibc unknown), the glibc read by ``pipeline.glibc_for`` as every target's is."""
    gpus, python = facts.get("gpus") or [], facts.get("python")
    if not gpus or not isinstance(python, str):
        return None
    from resolver.models import PLATFORMS, Gpu, parse_driver
    from resolver.pipeline import glibc_for, this_platform

    driver, platform, glibc = facts.get("driver"), facts.get("platform"), facts.get("glibc")
    platform = platform if platform in PLATFORMS else this_platform()
    found, _ = glibc_for(platform, None, glibc if isinstance(glibc, str) else None, described=False)
    return Target(gpus=tuple(Gpu(g["name"], ComputeCapability.parse(g["compute_capability"])) for g in gpus),
                  python=".".join(python.split(".")[:2]), platform=platform, glibc=found,
                  driver=parse_driver(driver) if isinstance(driver, str) else None, source="verify")


def _torch_that_runs(facts: Mapping[str, Any]) -> str | None:
    """Return the torch build to suggest when the installed one does not run here: the newest (of the installed
    release first) that ``resolver.solve`` finds for this machine (its GPUs, Python, platform, driver) with native
    code for every GPU and a CUDA the driver runs; ``None`` when the facts do not say enough or none fits. Nothing
    unsolved is suggested."""
    target = _machine(facts)
    if target is None:
        return None
    from packaging.specifiers import SpecifierSet

    from resolver.candidates import torch_options
    from resolver.compat import coverage
    from resolver.matrix import load
    from resolver.request import Request
    from resolver.solve import feasible

    matrix = load()
    dc = facts.get("driver_cuda")
    runs_cuda = Version(f"{dc // 1000}.{dc % 1000 // 10}") if isinstance(dc, int) else None
    installed = str(facts.get("torch") or "").split("+")[0]
    # the installed release first, then newest first; each once (rows compare by identity)
    releases = list(dict.fromkeys([r for r in matrix.torch if str(r.version) == installed] + list(matrix.torch)))
    for rel in releases[:12]:
        for opt in torch_options(rel, target, matrix):
            if opt.cuda is None or (runs_cuda is not None and not runtime_cuda_problem(runs_cuda, opt.cuda)[0]):
                continue
            missing, ptx = coverage(opt.arch, target.capabilities)
            if missing or ptx:
                continue
            if feasible(target, matrix, Request(torch=SpecifierSet(f"=={rel.version}"), torch_variant=opt.tag)):
                return opt.version
    return None


def _xformers_for_torch(facts: Mapping[str, Any]) -> str | None:
    """Return the hint naming the xformers the solver chooses beside the installed torch build on this machine,
    or ``None`` when the facts do not say enough or no xformers fits that torch here."""
    target, have = _machine(facts), facts.get("torch")
    if target is None or not isinstance(have, str):
        return None
    from packaging.specifiers import SpecifierSet

    from resolver.errors import NoCompatibleStack
    from resolver.matrix import load
    from resolver.request import Request
    from resolver.solve import solve

    release, _, tag = have.partition("+")
    try:
        stack = solve(target, load(), Request(torch=SpecifierSet(f"=={release}"), torch_variant=tag or None,
                                              xformers=SpecifierSet()))
    except NoCompatibleStack:
        return None
    x = stack.get("xformers")
    if x is None:
        return None
    if x.method == "source":
        return (f"rebuild xformers {x.version} against torch {have} (the solver's choice for it here): "
                f"pip install --no-build-isolation --no-binary xformers xformers=={x.version}")
    return (f"install xformers {x.version} built for torch {have} (the solver's choice for it here): pip install "
            f"--force-reinstall --no-deps xformers=={x.version} --index-url {x.index_url}")


def _install_torch(version: str, why: str) -> str:
    return f"install torch {version} ({why}): gpustack install 'torch=={version}'"


def environment_checks(facts: Mapping[str, Any]) -> list[Check]:
    """Returns the checks of the probe's facts: CUDA usable, arch list covers each GPU, driver new enough, builds match."""
    out: list[Check] = []

    @functools.cache
    def fits_here() -> str | None:  # solved once for the machine, however many checks name it
        return _torch_that_runs(facts)

    torch_cuda = _cuda_pair(facts.get("torch_cuda"))
    dc = facts.get("driver_cuda")
    driver = (dc // 1000, dc % 1000 // 10) if isinstance(dc, int) else None
    if torch_cuda and driver:
        runs, caveat = runtime_cuda_problem(Version(f"{driver[0]}.{driver[1]}"), Version(f"{torch_cuda[0]}.{torch_cuda[1]}"))
        if not runs:
            fits = fits_here()
            out.append(Check("driver", False, f"torch {facts.get('torch')} needs CUDA {facts['torch_cuda']}; the "
                             f"driver supports CUDA {driver[0]}.{driver[1]}",
                             f"upgrade the driver to one that runs CUDA {facts['torch_cuda']}" + (
                                 f", or {_install_torch(fits, 'it runs on this driver and GPU')}" if fits else "")))
        else:
            out.append(Check("driver", caveat is None,
                             f"driver supports CUDA {driver[0]}.{driver[1]}; torch uses {facts['torch_cuda']}"
                             + (f" ({caveat})" if caveat else ""),
                             "upgrade the driver to enable PTX JIT" if caveat else None, "warning"))
    if facts.get("torch_cuda") and not facts.get("cuda_available"):
        out.append(Check("cuda", False, f"torch {facts.get('torch')} is a CUDA build but sees no usable GPU",
                         "check nvidia-smi and the driver" if driver else "no NVIDIA driver found", "warning"))
    arch = ArchList.parse(facts.get("arch_list") or [])
    for gpu in facts.get("gpus") or []:
        cc = ComputeCapability.parse(gpu["compute_capability"])
        cov = arch.covers(cc)
        if cov is None:
            fits = fits_here()
            out.append(Check("arch", False, f"torch has no kernels for {gpu['name']} ({cc.sm})",
                             _install_torch(fits, f"it has {cc.sm} code and runs on this driver") if fits else
                             f"install a torch build whose arch list includes {cc.sm} (`gpustack plan` finds one)"))
        else:
            out.append(Check("arch", cov == "sass", f"torch covers {gpu['name']} ({cc.sm}) with {cov.upper()}",
                             None if cov == "sass" else "PTX is JIT-compiled on first use: slow start, maybe slow "
                             f"kernels; prefer a build with native {cc.sm}", "warning"))
        xb = (facts.get("xformers_build") or {}).get("env", {}).get("TORCH_CUDA_ARCH_LIST")
        if xb and ArchList.parse(xb).covers(cc) is None:
            out.append(Check("xformers arch", False, f"xformers was built for {xb}, not {cc.sm}",
                             f"rebuild xformers with TORCH_CUDA_ARCH_LIST={cc}"))
    mismatch = _from_xformers_build(facts)
    if mismatch:
        out.append(Check("xformers build", False, mismatch.message, mismatch.hint))
    elif facts.get("xformers_build"):
        out.append(Check("xformers build", True, f"xformers was built for torch {facts.get('torch')}"))
    return out


def slow_backends(timings: Iterable[tuple[str, str, float]]) -> list[Check]:
    """Returns a warning per (backend, op, TFLOP/s) under ``SLOW_FRACTION`` of the best kernel of its family, or
    under ``FLOOR_FRACTION`` of the best of all (comparable) kernels."""
    rows = [(b, op, t) for b, op, t in timings if not _SPEED_EXEMPT.search(b) and not _SPEED_EXEMPT.search(op)]
    if len(rows) < 2:
        return []
    top = max(rows, key=lambda r: r[2])
    out = []
    for b, op, t in rows:
        fam = _family(b, op)
        peer = max((r for r in rows if _family(r[0], r[1]) == fam), key=lambda r: r[2])
        if t < SLOW_FRACTION * peer[2]:
            ref, share = peer, SLOW_FRACTION
        elif t < FLOOR_FRACTION * top[2]:
            ref, share = top, FLOOR_FRACTION
        else:
            continue
        out.append(Check("speed", False, f"{b} {op} runs at {t:.1f} TFLOP/s, under {share:.0%} of {ref[0]} {ref[1]} "
                         f"({ref[2]:.1f})", "a PTX-JIT or fallback build: rebuild it with native code for this GPU "
                         "(TORCH_CUDA_ARCH_LIST)", "warning", (b, op)))
    return out
