"""Options every planning command shares (target, request) and the wiring detect -> matrix -> solve -> plan.

``target_options`` adds the click options; ``plan_from_cli(requirements, **options)`` runs the stages and returns
the ``Plan`` (raising ``GpuStackError`` subclasses for the CLI to report).
"""

from __future__ import annotations

import dataclasses
import platform as _platform
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from packaging.version import InvalidVersion, Version

from resolver import matrix as matrix_mod
from resolver.errors import BadInput
from resolver.inputs import check_text, read_text
from resolver.matrix_types import Matrix
from resolver.models import PLATFORMS, Gpu, Plan, Stack, Target, parse_driver
from resolver.report import Reporter
from resolver.request import Request, parse_request

__all__ = ["parse_driver_option", "target_options", "plan_from_cli", "stack_from_cli", "request_from_cli", "target_from_cli", "Context"]

F = TypeVar("F", bound=Callable[..., Any])


def target_options(f: F) -> F:
    """Add the target and request options (``--gpu``, ``--driver``, ``--python``, ``--platform``, ``--cpu``, ...)."""
    opts = [
        click.option("--gpu", "gpus", multiple=True, metavar="NAME_OR_CC",
                     help="Plan for this GPU (name as nvidia-smi prints it, or a compute capability such as 8.6). "
                          "Repeat for a fleet that must all be served."),
        click.option("--driver", metavar="VERSION", help="NVIDIA driver version of the target (e.g. 535.104.05)."),
        click.option("--python", "python_version", metavar="X.Y", help="Python version of the target."),
        click.option("--platform", "platform_tag", type=click.Choice(PLATFORMS), help="Platform of the target."),
        click.option("--cpu", is_flag=True, help="Plan a CPU-only stack."),
        click.option("--nvcc", metavar="X.Y", help="CUDA toolkit (nvcc) a source build would use on the target."),
        click.option("--python-exe", metavar="PATH", help="Target interpreter (default: the one running gpustack)."),
        click.option("-r", "--requirement", "requirement_files", multiple=True, metavar="FILE",
                     type=click.Path(dir_okay=False), help="Read requirements from FILE (PEP 508 lines)."),
        click.option("--profile", "profiles", multiple=True, metavar="NAME",
                     help="Add a known consumer's requirements (audiocraft, fairseq, diffusers)."),
        click.option("--verified-only", is_flag=True, help="Refuse facts the matrices mark unverified."),
        click.option("--prefer-wheels", is_flag=True, help="Prefer an older torch with prebuilt wheels over source builds."),
        click.option("--upgrade", is_flag=True,
                     help="Plan the newest torch that fits even when the installed one would do (default: keep it)."),
        click.option("--matrix-dir", type=click.Path(file_okay=False), hidden=True, help="Read matrices from DIR."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@dataclass(frozen=True)
class Context:
    """What the planning commands need besides the plan: the matrix and how the target was found."""

    matrix: Matrix
    target: Target
    request: Request
    lines: tuple[str, ...]  # what to say about detection (no GPU found, ...)
    installed: dict[str, str]  # dist name -> version in the target interpreter ({} when not read)


def _load_matrix(matrix_dir: str | None) -> Matrix:
    return matrix_mod.load_dir(Path(matrix_dir)) if matrix_dir else matrix_mod.load()


def _read_requirement_files(files: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for name in files:
        text = read_text(name, f"-r {name}", hint="pass a requirements file")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("-"):
                raise BadInput(f"-r {name}: option line {line!r} is not supported; list requirements only")
            lines.append(line)
    return lines


def request_from_cli(requirements: Sequence[str], matrix: Matrix, **options: Any) -> Request:
    """Return the ``Request`` for positional requirements, ``-r`` files and ``--profile`` names."""
    lines = list(requirements) + _read_requirement_files(options.get("requirement_files") or ())
    return parse_request(
        lines,
        matrix,
        profiles=options.get("profiles") or (),
        verified_only=bool(options.get("verified_only")),
        prefer_wheels=bool(options.get("prefer_wheels")),
    )


def _this_platform() -> str:
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    if plat.startswith("linux"):
        return "linux_aarch64" if _platform.machine() in ("aarch64", "arm64") else "linux_x86_64"
    if plat.startswith("win"):
        return "win_amd64"
    return plat


def parse_driver_option(text: str) -> Version:
    """Return ``--driver`` as a version; ``BadInput`` names the option and shows the expected spelling."""
    try:
        return parse_driver(text)
    except BadInput:
        raise BadInput(f"--driver {text!r}: not a driver version; pass it as nvidia-smi prints it, "
                       "e.g. 535.104.05") from None


def _check_python(text: str) -> str:
    check_text(text, "--python", limit=20, hint="expected a Python version such as 3.11")
    try:
        v = Version(text)
    except InvalidVersion:
        v = None
    if v is None or len(v.release) != 2 or v.major != 3:
        raise BadInput(f"--python {text!r}: expected a Python version such as 3.11")
    return text


def _local_resources() -> tuple[int, float | None]:
    from resolver import detect

    return detect.resources()


def _installed(env: Any) -> dict[str, str]:
    """Return the target's dist versions, plus ``torch.__version__`` (which carries the CUDA tag PyPI's lacks)."""
    installed = dict(env.packages)
    if getattr(env, "torch", None):
        installed["torch.__version__"] = str(env.torch)
    return installed


def target_from_cli(
    matrix: Matrix, reporter: Reporter | None = None, **o: Any
) -> tuple[Target, list[str], dict[str, str]]:
    """Return the target (detected, or given by ``--gpu``/``--cpu``...), lines saying how it was found, and what the
    target interpreter has installed (read only when it was probed)."""
    from resolver.gpus import find_gpu_row, lookup_gpu

    lines: list[str] = []
    given = bool(o.get("gpus")) or bool(o.get("cpu"))
    if o.get("gpus") and o.get("cpu"):
        raise BadInput("--gpu and --cpu together: choose one (a CPU target has no GPUs)")
    driver = parse_driver_option(o["driver"]) if o.get("driver") else None
    python = _check_python(o["python_version"]) if o.get("python_version") else None
    nvcc = None
    if o.get("nvcc"):
        try:
            nvcc = Version(check_text(o["nvcc"], "--nvcc", limit=20, hint="expected a CUDA version such as 12.4"))
        except InvalidVersion:
            raise BadInput(f"--nvcc {o['nvcc']!r}: expected a CUDA version such as 12.4") from None
    platform = o.get("platform_tag")
    installed: dict[str, str] = {}
    gpus: tuple[Gpu, ...] = ()
    if o.get("gpus"):
        gpus = tuple(lookup_gpu(g, matrix) for g in o["gpus"])
    if o.get("python_exe") and (python is None or platform is None):
        from resolver import detect

        env = detect.detect_env(o["python_exe"])
        installed = _installed(env)
        python = python or env.python
        platform = platform or env.platform
    if not given:
        from resolver import detect

        host = detect.detect(o.get("python_exe"), driver_override=o.get("driver"), reporter=reporter)
        found = []
        for g in host.gpus:
            cc = g.compute_capability
            if cc is None:
                row = find_gpu_row(g.name, matrix)
                if row is None:
                    raise BadInput(f"detected GPU {g.name!r} reports no compute capability and is not in the GPU table; "
                                   "pass --gpu with its compute capability (e.g. --gpu 8.6)")
                cc = row.compute_capability
            found.append(Gpu(g.name, cc, g.memory_mib))
        gpus = tuple(found)
        driver = host.driver
        nvcc = nvcc or host.nvcc
        python = python or host.env.python
        platform = platform or host.env.platform
        installed = _installed(host.env)
        if not gpus:
            lines.append("No NVIDIA GPU found (no NVML, no nvidia-smi, no /proc/driver/nvidia): planning a CPU stack. "
                         "Use --gpu NAME to plan for a GPU machine.")
        cpus, mem = host.cpu_count, host.memory_available_gib
    else:
        cpus, mem = None, None  # read only if the plan builds something (plan_and_context): wheels need neither
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    platform = platform or _this_platform()
    if platform not in PLATFORMS:
        raise BadInput(f"platform {platform!r} is not supported (supported: {', '.join(PLATFORMS)}); pass --platform")
    target = Target(gpus=gpus, python=python, platform=platform, driver=driver, nvcc=nvcc, cpu_count=cpus,
                    memory_gib=mem, source="given" if given else "detected")
    return target, lines, installed


def _context(requirements: Sequence[str], reporter: Reporter | None, **options: Any) -> Context:
    m = _load_matrix(options.get("matrix_dir"))
    request = request_from_cli(requirements, m, **options)
    target, lines, installed = target_from_cli(m, reporter, **options)
    if installed.get("torch") and not options.get("upgrade"):
        request = dataclasses.replace(request, keep_torch=installed.get("torch.__version__") or installed["torch"])
    return Context(m, target, request, tuple(lines), installed)


def stack_from_cli(requirements: Sequence[str], reporter: Reporter | None = None, **options: Any) -> tuple[Stack, Context]:
    """Return the solved stack and its context. Raises ``NoCompatibleStack`` when nothing fits."""
    from resolver.solve import solve

    ctx = _context(requirements, reporter, **options)
    return solve(ctx.target, ctx.matrix, ctx.request, reporter), ctx


def plan_from_cli(requirements: Sequence[str], reporter: Reporter | None = None, **options: Any) -> Plan:
    """Return the plan for the CLI's requirements and target options: detect -> solve -> plan."""
    return plan_and_context(requirements, reporter, **options)[0]


def plan_and_context(requirements: Sequence[str], reporter: Reporter | None = None, **options: Any) -> tuple[Plan, Context]:
    """Return the plan and the context it was made in."""
    from resolver.plan import make_plan

    stack, ctx = stack_from_cli(requirements, reporter, **options)
    if any(p.method == "source" for p in stack.packages) and stack.target.cpu_count is None:
        # MAX_JOBS of a build comes from the cores and free RAM of the machine that runs the build: this one.
        cpus, mem = _local_resources()
        target = dataclasses.replace(stack.target, cpu_count=cpus, memory_gib=mem)
        stack = dataclasses.replace(stack, target=target)
        ctx = dataclasses.replace(ctx, target=target)
    return make_plan(stack, ctx.installed, ctx.matrix), ctx
