"""Source builds: a plan's ``build`` step turned into a wheel, through the build cache. It never picks versions.

The order is: read the target (its Python tag, platform, and torch's version and CUDA, from ``torch/version.py``
without importing torch), look the build key up in the cache, check prerequisites (nvcc of torch's CUDA major,
ninja, disk, RAM) and refuse with the reason, then ``pip wheel --no-build-isolation --no-deps`` with the plan's
environment plus ``MAX_JOBS`` sized to free RAM, showing ninja's ``[N/M]`` lines as a progress bar and keeping the
full log, and store the wheel in the cache.
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import Version

from resolver import _subprocess, cache, detect
from resolver.errors import BadInput, CommandFailed, GpuStackError
from resolver.models import Step
from resolver.probes import parse_nvcc_version
from resolver.redact import redact
from resolver.report import Reporter
from resolver.target import parse_torch_version_py, read_target

if TYPE_CHECKING:  # the matrix and rich are imported where a build needs them: not on every install's path
    from resolver.matrix_types import Matrix

__all__ = ["target_info", "TargetInfo", "Resources", "BuildResult", "BuildPrerequisiteMissing", "probe_target", "probe_resources",
           "check_prerequisites", "build_env", "cache_key", "parse_ninja_progress", "build"]

DISK_NEEDED_GIB = {"flash-attn": 10.0, "xformers": 10.0}
DEFAULT_DISK_NEEDED_GIB = 2.0
_NINJA = re.compile(r"^\s*\[(\d+)/(\d+)\]")
_IGNORED_IN_TREE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".git", "*.so")

class BuildPrerequisiteMissing(GpuStackError):
    """A source build cannot start here; the message gives every reason and what to do about it."""


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """What a build in the target interpreter compiles against."""

    python_tag: str
    platform: str
    prefix: str
    torch_version: str | None
    torch_cuda: str | None
    missing_build_tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """What this machine offers a build: nvcc, ninja, free disk and RAM, cores."""

    nvcc: Version | None
    ninja: str | None
    disk_free_gib: float
    mem_available_gib: float | None
    cpus: int


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A built (or cached) wheel; ``log`` is ``None`` on a cache hit, when no compiler ran."""

    wheel: Path
    cache_hit: bool
    key: cache.BuildKey
    log: Path | None = None
    seconds: float = 0.0


def probe_target(python_exe: str) -> TargetInfo:
    """Return the target interpreter's tags and its torch, read in a child without importing torch
    (``resolver.target``, mode ``light``)."""
    facts = read_target(python_exe, "light")
    version_py = facts.torch_version_py
    version, cuda = parse_torch_version_py(version_py) if version_py else (None, None)
    return TargetInfo(facts.python_tag, facts.platform, facts.prefix, version, cuda, facts.missing_build_tools)


def _cuda_home() -> str | None:
    """Return the toolkit folder of the nvcc found (the one holding ``include/cuda_runtime.h``), if any.

    ``nvcc`` on PATH may be a wrapper script (``exec /usr/local/cuda-13.0/bin/nvcc``): then ``/usr/local/cuda``.
    """
    nvcc = detect.nvcc()[1]
    if nvcc is None:
        return None
    for home in (os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"):
        if os.path.isfile(os.path.join(home, "include", "cuda_runtime.h")):
            return home
    return None


# ``nvcc --version`` is parsed in one place (resolver.probes); the name stays for callers of this module.
parse_nvcc_release = parse_nvcc_version


def probe_resources(python_exe: str, work_dir: Path) -> Resources:
    """Return nvcc's release, ninja's path (PATH or the target's bin dir), free disk at ``work_dir``, RAM, cores.

    The machine itself (nvcc, cores, free RAM) is read by ``resolver.detect``, as everywhere else.
    """
    nvcc_release = detect.nvcc()[0]
    cpus, mem = detect.resources()
    ninja = shutil.which("ninja") or shutil.which("ninja", path=os.path.dirname(python_exe))
    return Resources(nvcc_release, ninja, shutil.disk_usage(work_dir).free / 1024**3, mem, cpus)


def _needs_cuda(env: Mapping[str, str]) -> bool:
    return env.get("FORCE_CUDA") == "1" or "TORCH_CUDA_ARCH_LIST" in env or "FLASH_ATTN_CUDA_ARCHS" in env


def _threads(step: Step, matrix: Matrix) -> int:
    """Return the nvcc threads per job of ``step``: its ``NVCC_THREADS``, else its package's (matrices/build.toml)."""
    from resolver import compat

    default = compat.build_job(step.package, matrix).nvcc_threads
    raw = step.env.get("NVCC_THREADS", "")
    return max(1, int(raw)) if raw.isdigit() else default


def _matrix(matrix: Matrix | None) -> Matrix:
    if matrix is not None:
        return matrix
    from resolver.matrix import load

    return load()


def check_prerequisites(step: Step, target: TargetInfo, res: Resources, matrix: Matrix | None = None) -> list[str]:
    """Return every reason the build of ``step`` cannot run here (empty: it can)."""
    m = _matrix(matrix)
    reasons = []
    if target.torch_version is None:
        reasons.append(f"torch is not installed in {target.prefix}; the build compiles against it "
                       "(--no-build-isolation): install torch first")
    if target.missing_build_tools:
        tools = " ".join(target.missing_build_tools)
        reasons.append(f"{tools} missing in {target.prefix}; a build without isolation uses the target's own: "
                       f"`pip install {tools}` there")
    if _needs_cuda(step.env):
        if target.torch_version is not None and target.torch_cuda is None:
            reasons.append(f"torch {target.torch_version} is a CPU build; a CUDA build needs torch built with CUDA")
        if res.nvcc is None:
            reasons.append(f"nvcc not found (CUDA_HOME/bin or PATH): install the CUDA {target.torch_cuda or ''} "
                           "toolkit and put its bin on PATH or set CUDA_HOME")
        elif target.torch_cuda and Version(target.torch_cuda).major != res.nvcc.major:
            reasons.append(f"nvcc is CUDA {res.nvcc} but torch {target.torch_version} was built with CUDA "
                           f"{target.torch_cuda}: install a CUDA {Version(target.torch_cuda).major}.x toolkit "
                           "and set CUDA_HOME to it")
    if res.ninja is None:
        reasons.append("ninja not found: `pip install ninja` into the target environment")
    disk = DISK_NEEDED_GIB.get(step.package, DEFAULT_DISK_NEEDED_GIB)
    if res.disk_free_gib < disk:
        reasons.append(f"{res.disk_free_gib:.1f} GiB free disk, the build needs about {disk:.0f} GiB: "
                       "free space or set TMPDIR elsewhere")
    from resolver import compat

    per_job = compat.job_gib(step.package, m, _threads(step, m))
    if res.mem_available_gib is not None and res.mem_available_gib < per_job:
        reasons.append(f"{res.mem_available_gib:.1f} GiB RAM available, one compile job needs about "
                       f"{per_job:.0f} GiB: close programs or build on a bigger machine")
    return reasons


def build_env(step: Step, res: Resources, python_exe: str, matrix: Matrix | None = None) -> dict[str, str]:
    """Return the build's added environment: the plan's, ``MAX_JOBS`` capped by RAM and cores (``compat.max_jobs``),
    ``PATH`` with the target's bin dir (where ``pip install ninja`` puts ninja) and ``CUDA_HOME`` when nvcc was found."""
    from resolver.schema import Loc, check_build_env

    # Only the allowlisted build variables (schema.BUILD_VARIABLES) a plan or lock may set: PYTHONPATH, LD_PRELOAD,
    # CC or PIP_* from a planted plan would run code in the build.
    env = check_build_env(dict(step.env), Loc(f"build of {step.package}: env"))
    jobs_text = env.get("MAX_JOBS", "1")
    if not (jobs_text.isascii() and jobs_text.isdigit() and len(jobs_text) <= 4):
        raise BadInput(f"build of {step.package}: env.MAX_JOBS {jobs_text!r} is not a number of jobs")
    m = _matrix(matrix)
    threads = _threads(step, m)
    from resolver import compat

    jobs = compat.max_jobs(step.package, m, res.cpus, res.mem_available_gib, nvcc_threads=threads)
    if "MAX_JOBS" in env:
        jobs = max(1, min(jobs, int(env["MAX_JOBS"])))
    env["MAX_JOBS"] = str(jobs)
    if threads > 1 or "NVCC_THREADS" in env:
        env.setdefault("NVCC_THREADS", str(threads))
    env["PATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(python_exe)), os.environ.get("PATH", "")])
    home = _cuda_home()
    if home and "CUDA_HOME" not in os.environ:
        env["CUDA_HOME"] = home
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _local_source(step: Step) -> Path | None:
    path = step.requirement.removeprefix("file://")
    return Path(path) if os.path.isdir(path) else None


def tree_digest(root: Path) -> str:
    """Return a sha256 over the relative paths and contents of ``root``'s files (build outputs left out)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p in ("build", "dist", "__pycache__", ".git") or p.endswith(".egg-info") for p in rel.parts):
            continue
        if path.is_file() and path.suffix != ".so":
            h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:24]


def effective_env(step: Step, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment the build of ``step`` sees (this process's, the plan's on top, and the ``CUDA_HOME``
    ``build_env`` adds when the shell has none): what its cache key is made of."""
    env = {**(os.environ if environ is None else environ), **step.env}
    if "CUDA_HOME" not in env:
        home = _cuda_home()
        if home:
            env["CUDA_HOME"] = home
    return env


def _keyed(t: TargetInfo) -> tuple[str | None, str | None, str, str]:
    """Return what of a target a cache key is made of (``cache_key``)."""
    return t.torch_version, t.torch_cuda, t.python_tag, t.platform


def cache_key(step: Step, target: TargetInfo, cxx11_abi: bool | None,
              environ: Mapping[str, str] | None = None) -> cache.BuildKey:
    """Return the cache key of building ``step`` against ``target``'s torch, with every variable of the build's
    environment (``environ``, default this process's, under the plan's) that changes the binary
    (``cache.changes_binary``: package switches, CUDA_HOME, compilers and their flags, the arch list)."""
    local = _local_source(step)
    source = f"tree:{tree_digest(local)}" if local else (step.url or step.requirement)
    return cache.BuildKey.from_env(
        effective_env(step, environ), package=step.package, source=source, torch=target.torch_version or "none",
        torch_cuda=target.torch_cuda, python_tag=target.python_tag, cxx11_abi=cxx11_abi,
        arch_list=step.env.get("TORCH_CUDA_ARCH_LIST") or step.env.get("FLASH_ATTN_CUDA_ARCHS"),
        platform=target.platform)


def parse_ninja_progress(line: str) -> tuple[int, int] | None:
    """Return ``(done, total)`` from a ninja status line such as ``[3/12] /usr/local/cuda/bin/nvcc ...``."""
    m = _NINJA.match(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


def wheel_argv(pip: Sequence[str], step: Step, source: str, out_dir: Path, source_args: Sequence[str]) -> list[str]:
    """Return the ``pip wheel`` argv that builds ``source`` (never a prebuilt wheel of the package) into ``out_dir``."""
    return [*pip, "wheel", "--no-build-isolation", "--no-deps", "--no-binary", step.package, "-v",
            "-w", str(out_dir), *source_args, source]


def _error_tail(lines: Sequence[str]) -> str:
    errors = [ln for ln in lines if re.search(r"\berror\b|Error:|FAILED", ln)]
    return "\n".join((errors or list(lines))[-15:])


def target_info(python_tag: str, platform: str, prefix: str, torch_version_py: str | None) -> TargetInfo:
    """Return the ``TargetInfo`` a cache key needs from a reading the caller already has (an install's latest
    snapshot: ``resolver.target``, mode ``installed``); its build tools are not known (a real build probes)."""
    version, cuda = parse_torch_version_py(torch_version_py) if torch_version_py else (None, None)
    return TargetInfo(python_tag, platform, prefix, version, cuda, ())


def build(step: Step, python_exe: str, pip: Sequence[str] | Callable[[], Sequence[str]], *, source_args: Sequence[str] = (),
          cxx11_abi: bool | None = None, reporter: Reporter | None = None, use_cache: bool = True,
          progress: bool = True, target: TargetInfo | None = None) -> BuildResult:
    """Return the wheel of ``step``: from the cache when its key is there, else freshly built and then cached.

    ``target`` is what the caller already read of ``python_exe`` (its tags and torch: all a cache key needs); a
    cache miss, or no ``target``, reads it afresh (mode ``light``, with the build tools it lacks). ``pip`` may be
    a function returning it: a cache hit never asks.
    Raises ``BuildPrerequisiteMissing`` before anything runs, or ``CommandFailed`` (with the log's path and its
    last error lines) when the build fails. Nothing is installed here.
    """
    reporter = reporter or Reporter()
    environ = effective_env(step)  # once: finding CUDA_HOME runs nvcc
    key = None
    if use_cache:
        target = target or probe_target(python_exe)
        key = cache_key(step, target, cxx11_abi, environ)
        hit = cache.lookup(key)
        if hit is not None:
            reporter.message(f"build cache hit for {step.package}: {hit} (no compiler run)")
            return BuildResult(hit, True, key)
    fresh = probe_target(python_exe)  # the build tools it lacks; and the key from a reading of now
    if key is None or target is None or _keyed(fresh) != _keyed(target):
        key = cache_key(step, fresh, cxx11_abi, environ)
    target = fresh
    tmp_root = cache.cache_dir() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    res = probe_resources(python_exe, tmp_root)
    reasons = check_prerequisites(step, target, res)
    if reasons:
        raise BuildPrerequisiteMissing(f"cannot build {step.package} here: " + "; ".join(reasons))
    env = build_env(step, res, python_exe)
    work = Path(tempfile.mkdtemp(prefix=f"build-{step.package}-", dir=tmp_root))
    try:
        local = _local_source(step)
        source = step.url or step.requirement
        if local is not None:  # build a clean copy: no stale in-tree objects, nothing written into the source
            shutil.copytree(local, work / "src", ignore=_IGNORED_IN_TREE)
            source = str(work / "src")
        argv = wheel_argv(pip() if callable(pip) else pip, step, source, work / "out", source_args)
        log_path = _new_log(step.package)
        started = time.monotonic()
        rc, tail = _run_logged(argv, env, log_path, step.package, progress)
        if rc != 0:
            raise CommandFailed(argv, rc, _error_tail(tail), str(log_path))
        wheels = sorted((work / "out").glob("*.whl"))
        if len(wheels) != 1:
            raise CommandFailed(argv, 0, f"expected one wheel in {work / 'out'}, found {len(wheels)}", str(log_path))
        stored = cache.store(key, wheels[0])
        seconds = time.monotonic() - started
        reporter.message(f"built {stored.name} in {seconds:.0f}s (log: {log_path})")
        return BuildResult(stored, False, key, log_path, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _new_log(package: str) -> Path:
    """Return a new, empty build log: created ``O_EXCL`` (never through a planted link) in a private folder."""
    from resolver.safefiles import private_dir

    logs = private_dir(cache.cache_dir() / "logs") or Path(tempfile.mkdtemp(prefix="gpustack-logs-"))
    fd, path = tempfile.mkstemp(prefix=f"build-{package}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-",
                                suffix=".log", dir=logs)
    os.close(fd)
    return Path(path)


def _run_logged(argv: Sequence[str], env: Mapping[str, str], log_path: Path, package: str,
                show: bool) -> tuple[int, list[str]]:
    """Return the exit code and the last 300 lines; every line goes to ``log_path``, ninja's to a progress bar."""
    tail: collections.deque[str] = collections.deque(maxlen=300)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"building {package}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with open(log_path, "w") as log_file, Progress(*columns, console=Console(stderr=True),
                                                     disable=not show, transient=False) as bar:
        task = bar.add_task("build", total=None)
        log_file.write(redact("$ " + " ".join(argv) + "\n" + "".join(f"{k}={v}\n" for k, v in env.items())))

        def on_line(line: str) -> None:
            log_file.write(redact(line) + "\n")
            tail.append(line)
            counts = parse_ninja_progress(line)
            if counts:
                bar.update(task, completed=counts[0], total=counts[1])

        rc = _subprocess.stream(argv, on_line, env=env)
    return rc, list(tail)
