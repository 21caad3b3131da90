"""The planning pipeline every planning command runs: options -> matrix -> target -> request -> solve -> plan.

``PlanOptions`` holds the target and request options, checked (bad input raises ``BadInput`` naming the option).
``target_from`` finds the target (given, or detected here), ``solve_request`` solves, ``plan_for`` plans against what
the target has installed and ``fresh_plan_for`` plans an empty environment (a lock, an image). Each returns typed
values; none reads click. Heavy stages (detect, solve, plan) are imported when first called, so ``gpustack plan``
stays fast.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from resolver.errors import BadInput
from resolver.inputs import check_name, check_text, read_text
from resolver.models import (DEFAULT_GLIBC, PLATFORMS, Gpu, Plan, Stack, Target, format_driver, parse_driver, parse_glibc,
                             windows_file_driver)
from resolver.report import Reporter

if TYPE_CHECKING:
    from resolver.fleet import Fleet
    from resolver.matrix_types import Matrix
    from resolver.probes import InstalledEnv
    from resolver.request import Request

__all__ = ["PlanOptions", "Context", "parse_driver_option", "load_matrix", "request_from", "for_target", "known_nvcc",
           "target_from", "target_glibc", "glibc_for", "with_index", "read_request", "solve_request", "plan_for", "fresh_plan_for", "fresh_plan",
           "this_platform", "pypi_index", "PYPI_INDEX_VARIABLES"]


# The environment variables that name the PyPI mirror pip and uv use, in the order gpustack reads them (pip's first).
PYPI_INDEX_VARIABLES = ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL")


def pypi_index(given: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """Return the PyPI mirror in effect, as ``(input, url)``: ``--index-url`` when given, else the first of
    ``PYPI_INDEX_VARIABLES`` set in the environment, else the index of pip's or uv's configuration files
    (``installer_config.configured_index``): what pip and uv themselves would use; ``None`` for pypi.org.

    The one reading of it: ``PlanOptions.from_cli`` takes it (so pass-through pins are chosen on the mirror), and
    ``installers.mirrors`` moves the plan's pypi.org steps to the same URL, in every command."""
    import os

    env = os.environ if environ is None else environ
    for what, value in (("--index-url", given), *((name, env.get(name)) for name in PYPI_INDEX_VARIABLES)):
        if value:
            return what, value
    from resolver.installer_config import configured_index

    return configured_index(env)


def parse_driver_option(text: str) -> Version:
    """Return ``--driver`` as a version; ``BadInput`` names the option and shows the expected spelling."""
    try:
        return parse_driver(text)
    except BadInput:
        windows = windows_file_driver(text)
        if windows is not None:  # Device Manager's number, not NVIDIA's (platforms.toml [windows_driver])
            raise BadInput(f"--driver {text!r}: a Windows driver file version (as Device Manager shows it), not the "
                           f"driver version; NVIDIA's is {windows} (what nvidia-smi prints): pass --driver "
                           f"{windows}") from None
        raise BadInput(f"--driver {text!r}: not a driver version; pass it as nvidia-smi prints it, "
                       "e.g. 535.104.05") from None


def _check_python(text: str) -> str:
    check_text(text, "--python", limit=20, hint="expected a Python version such as 3.11")
    try:
        v: Version | None = Version(text)
    except InvalidVersion:
        v = None
    if v is None or len(v.release) != 2 or v.major != 3:
        raise BadInput(f"--python {text!r}: expected a Python version such as 3.11")
    return text


def _check_nvcc(text: str) -> Version:
    try:
        return Version(check_text(text, "--nvcc", limit=20, hint="expected a CUDA version such as 12.4"))
    except InvalidVersion:
        raise BadInput(f"--nvcc {text!r}: expected a CUDA version such as 12.4") from None


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanOptions:
    """The target and request options of a planning command (``resolver.options.target_options``), checked.

    Field names are the click parameter names. Empty values mean "not given": detect it, or use the default.
    """

    # the target
    gpus: tuple[str, ...] = ()  # --gpu NAME_OR_CC, looked up in the GPU table by target_from
    driver: Version | None = None
    python_version: str | None = None  # "3.11"
    platform_tag: str | None = None  # one of models.PLATFORMS
    cpu: bool = False
    nvcc: Version | None = None
    glibc: Version | None = None  # --glibc: Linux targets only
    python_exe: str | None = None
    # the request
    requirement_files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    verified_only: bool = False
    prefer_wheels: bool = False
    upgrade: bool = False
    matrix_dir: str | None = None
    index_url: str | None = None  # where pass-through requirements are checked and installed from (None: PyPI)
    # install's --find-links folders and --offline (set by the command, not click options of their own here): a
    # pass-through requirement is pinned from the folders where the index gives no answer, or is not asked
    local_links: tuple[str, ...] = ()
    no_index: bool = False
    index_from: str = "--index-url"  # the input that gave index_url: the option or an environment variable (pypi_index)
    allow_insecure_index: bool = False  # --allow-insecure-index: plain http:// indexes off loopback
    # a cluster's GPU fleet (plan, lock, dockerfile: resolver.options.fleet_options; docs/fleet.md)
    fleet: str | None = None  # a file of kubectl/scontrol JSON, or "k8s" / "slurm"
    # a fleet lock's record of its fleet (a bare re-lock: cmd_lock.replayed_options), read in place of ``fleet``
    fleet_record: Mapping[str, Any] | None = None
    per_class: bool = False

    @property
    def target_given(self) -> bool:
        """Whether the command describes another machine (``--gpu`` or ``--cpu``) instead of detecting this one."""
        return bool(self.gpus) or self.cpu

    @classmethod
    def from_cli(cls, values: Mapping[str, Any]) -> PlanOptions:
        """Return the options from click's parsed values (keyed by field name); ``BadInput`` for a bad value."""
        v = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
        if v.get("gpus") and v.get("cpu"):
            raise BadInput("--gpu and --cpu together: choose one (a CPU target has no GPUs)")
        if v.get("cpu") and v.get("driver"):
            raise BadInput(f"--cpu and --driver {v['driver']}: a CPU target has no NVIDIA driver; drop --driver, or "
                           "plan for a GPU with --gpu NAME")
        for name, flag in (("driver", "--driver"), ("python_version", "--python"), ("nvcc", "--nvcc"),
                           ("glibc", "--glibc"), ("python_exe", "--python-exe"), ("matrix_dir", "--matrix-dir")):
            if isinstance(v.get(name), str):  # given: one non-empty line (an empty value is not "unset")
                check_name(v[name], flag, hint=f"pass a value or leave {flag} out", limit=4096)
        v["driver"] = parse_driver_option(v["driver"]) if v.get("driver") else None
        v["python_version"] = _check_python(v["python_version"]) if v.get("python_version") else None
        v["nvcc"] = _check_nvcc(v["nvcc"]) if v.get("nvcc") else None
        mirror = pypi_index(v.get("index_url"))  # the option, else the environment's mirror: pins are chosen there
        v["index_url"] = None
        if mirror is not None:
            from resolver.inputs import check_index_url

            what, url = mirror  # checked here once, for every command that takes it (install's mirror too)
            v["index_url"] = check_index_url(url, what, allow_insecure=bool(v.get("allow_insecure_index")))
            v["index_from"] = what
        v["glibc"] = parse_glibc(v["glibc"]) if v.get("glibc") else None
        for name in ("gpus", "requirement_files", "profiles"):
            v[name] = tuple(v.get(name) or ())
        if v["gpus"]:
            from resolver.gpus import check_gpu_text

            for gpu in v["gpus"]:  # its shape now: a re-lock's first line quotes it
                check_gpu_text(gpu)
        for name in ("cpu", "verified_only", "prefer_wheels", "upgrade", "per_class", "allow_insecure_index"):
            v[name] = bool(v.get(name))
        if v.get("fleet"):
            v["fleet"] = check_text(v["fleet"], "--fleet", limit=4096, hint="pass a file, k8s or slurm")
            given = [o for o, k in (("--gpu", "gpus"), ("--cpu", "cpu"), ("--platform", "platform_tag")) if v.get(k)]
            if given:
                raise BadInput(f"--fleet with {given[0]}: the fleet's nodes give the GPUs and platform; drop {given[0]}")
            if v.get("python_exe"):  # an interpreter here says nothing of the nodes' Python or glibc
                raise BadInput("--fleet with --python-exe: an interpreter on this machine is not on the fleet's nodes; "
                               "drop --python-exe and pass the nodes' --python X.Y (and --glibc X.Y)")
        elif v.get("per_class"):
            raise BadInput("--per-class without --fleet: pass --fleet SOURCE (a class is a group of the fleet's nodes)")
        return cls(**v)


@dataclass(frozen=True)
class Context:
    """What the planning commands need besides the plan: the matrix and how the target was found."""

    matrix: Matrix
    target: Target
    request: Request
    lines: tuple[str, ...]  # what to say about detection (no GPU found, ...)
    installed: dict[str, str]  # dist name -> version in the target interpreter ({} when not read)
    fleet: Fleet | None = None  # the cluster read with --fleet


def load_matrix(opts: PlanOptions) -> Matrix:
    """Return the matrices (``--matrix-dir``, or the ones shipped with gpustack)."""
    from resolver import matrix as matrix_mod

    return matrix_mod.load_dir(Path(opts.matrix_dir)) if opts.matrix_dir else matrix_mod.load()


def _joined(text: str) -> list[str]:
    """Return the lines of a requirements file with continuations joined as pip joins them (``join_lines``): a line
    ending in ``\\`` goes on with the next; a comment line ends a continuation (its comment is then stripped)."""
    out: list[str] = []
    pending: list[str] = []
    for line in text.splitlines():
        comment = line.lstrip().startswith("#")
        if line.endswith("\\") and not comment:
            pending.append(line.rstrip("\\"))
            continue
        out.append("".join(pending) + (" " + line if comment else line))
        pending = []
    if pending:
        out.append("".join(pending))
    return out


# pip's requirement-file options (``pip._internal.req.req_file``) that point at another file or an index: what
# gpustack does with each instead. ``-r``/``--requirement`` is read here (nested, as pip reads it).
_OPTION_NEXT_STEP = {
    "-c": "constraints files are not read; pin the packages in the requirements instead (name==version)",
    "--constraint": "constraints files are not read; pin the packages in the requirements instead (name==version)",
    "-e": "editable installs are not planned; install it after the stack (`pip install -e PATH`)",
    "--editable": "editable installs are not planned; install it after the stack (`pip install -e PATH`)",
    "-i": "pass the index on the command line: --index-url URL",
    "--index-url": "pass the index on the command line: --index-url URL",
    "--extra-index-url": "pass your PyPI mirror on the command line: --index-url URL",
    "-f": "pass the folder on the command line: --find-links DIR",
    "--find-links": "pass the folder on the command line: --find-links DIR",
}
_NESTED = ("-r", "--requirement")
MAX_NESTING = 20  # pip has no limit but the cycle; a chain deeper than this is a generated mistake


def _option_of(line: str) -> tuple[str, str]:
    """Return the option of an option line and its value (``-r x``, ``-rx``, ``--requirement=x``)."""
    head, _, rest = line.partition(" ")
    if head.startswith("--") and "=" in head:
        head, _, value = head.partition("=")
        return head, (value + " " + rest).strip()
    if not head.startswith("--") and len(head) > 2:
        return head[:2], (head[2:] + " " + rest).strip()
    return head, rest.strip()


def _read_requirement_files(files: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for name in files:
        _read_requirement_file(name, f"-r {name}", lines, ())
    return lines


def _read_requirement_file(name: str, what: str, lines: list[str], including: tuple[str, ...]) -> None:
    """Add the requirement lines of ``name`` to ``lines``; a ``-r FILE`` line reads FILE there, relative to the
    folder of the file that names it (as pip does), once per chain (a file that includes itself is refused)."""
    from resolver.request import parse_requirement, strip_comment

    text = read_text(name, what, hint="pass a requirements file")
    here = os.path.realpath(name) if name != "-" else name
    if here in including:
        raise BadInput(f"{what}: includes itself (through {' -> '.join(including)}); remove the -r line that loops")
    if len(including) >= MAX_NESTING:
        raise BadInput(f"{what}: -r files nest more than {MAX_NESTING} deep; list the requirements in fewer files")
    for line in _joined(text):
        line = strip_comment(line)
        if not line:
            continue
        if line.startswith("-"):
            option, value = _option_of(line)
            if option in _NESTED and value:
                inner = value if os.path.isabs(value) or name == "-" else os.path.join(os.path.dirname(name), value)
                _read_requirement_file(inner, f"{what}: -r {value}", lines, (*including, here))
                continue
            step = _OPTION_NEXT_STEP.get(option, "list requirements only")
            raise BadInput(f"{what}: option line {line!r} is not supported; {step}")
        trailing = next((t for t in line.split() if t.startswith("-")), None)  # pip reads options from there on
        if trailing is not None:
            raise BadInput(f"{what}: option {trailing.split('=')[0]} after {line.split()[0]!r} is not supported; "
                           "list requirements only (a hashed file installs with `pip install --require-hashes "
                           "-r FILE`; gpustack installs its locks with `install --lock FILE`)")
        try:  # parsed here too so that a bad line names its file (a pyproject.toml or lock given as -r)
            parse_requirement(line)
        except BadInput as exc:
            raise BadInput(f"{what}: {exc}") from None
        lines.append(line)


def request_from(requirements: Sequence[str], opts: PlanOptions, matrix: Matrix) -> Request:
    """Return the ``Request`` for positional requirements, ``-r`` files and ``--profile`` names (environment markers
    checked, not yet evaluated: ``for_target`` does that once the target is known)."""
    from resolver.request import parse_request

    lines = list(requirements) + _read_requirement_files(opts.requirement_files)
    return parse_request(lines, matrix, profiles=opts.profiles, verified_only=opts.verified_only,
                         prefer_wheels=opts.prefer_wheels)


def read_request(requirements: Sequence[str], opts: PlanOptions) -> tuple[tuple[str, ...], PlanOptions]:
    """Return the requirement lines with the ``-r`` files' read in (each file read once: it may be a pipe) and the
    options without those files, after checking them as ``request_from`` does (``BadInput`` for a bad line, file or
    ``--profile``): for a command that must refuse bad input before it changes anything (install's new ``--venv``)."""
    lines = (*requirements, *_read_requirement_files(opts.requirement_files))
    opts = dataclasses.replace(opts, requirement_files=())
    request_from(lines, opts, load_matrix(opts))
    return lines, opts


def for_target(request: Request, opts: PlanOptions, matrix: Matrix, target: Target) -> Request:
    """Return ``request`` with its environment markers evaluated for ``target`` (its platform and Python, not this
    machine's, ``models.marker_environment``): a line whose marker is false there is left out
    (``Request.dropped``, said in the plan's notes). The lines are those ``request_from`` read (``request.asked``)."""
    if not request.marked:
        return request
    from resolver.models import marker_environment
    from resolver.request import parse_request

    return parse_request(request.asked, matrix, profiles=opts.profiles, verified_only=opts.verified_only,
                         prefer_wheels=opts.prefer_wheels, marker_env=marker_environment(target))


def this_platform() -> str:
    """Return the wheel platform tag of the interpreter running gpustack, computed as for any target interpreter
    (``_child/probe_env.platform_tag``: one computation of it)."""
    from resolver._child.probe_env import platform_tag

    return platform_tag()


def _installed(env: InstalledEnv) -> dict[str, str]:
    """Return the target's dist versions, plus ``torch.__version__`` (which carries the CUDA tag PyPI's lacks)."""
    installed = dict(env.packages)
    if env.torch:
        installed["torch.__version__"] = str(env.torch)
    return installed


def target_glibc(opts: PlanOptions, platform: str, detected: str | None = None) -> tuple[Version | None, bool]:
    """Return the target's glibc and whether it is assumed (``glibc_for``: --glibc, the probed interpreter's, or a
    described target's assumption)."""
    return glibc_for(platform, opts.glibc, detected, described=opts.target_given)


def glibc_for(platform: str, given: Version | None, detected: str | None = None, *,
              described: bool) -> tuple[Version | None, bool]:
    """Return a target's glibc and whether it is assumed: ``given`` (--glibc, a lock's record), else the probed
    interpreter's (``detected``), else, for a ``described`` Linux target (--gpu/--cpu, a lock), ``DEFAULT_GLIBC``,
    which the plan then states. The one rule plan, lock, install --lock and check-upgrade read a glibc by."""
    if not platform.startswith("linux_"):
        if given is not None:
            raise BadInput(f"--glibc {given}: the target is {platform}; glibc applies to Linux targets only")
        return None, False
    if given is not None:
        return given, False
    if detected and re.fullmatch(r"2\.[0-9]{1,2}", detected, re.ASCII):
        return Version(detected), False
    if described:
        return Version(DEFAULT_GLIBC), True
    return None, False


def known_nvcc(nvcc: Version | None, matrix: Matrix) -> Version | None:
    """Return ``--nvcc`` when it can be a CUDA toolkit: a major from 1 up to the newest CUDA major of the matrices'
    torch builds (``--nvcc 99.0`` used to change the plan without a word); an older one is kept, and the plan says
    which builds it cannot serve."""
    if nvcc is None:
        return None
    cudas = [Version(str(v.cuda)) for r in matrix.torch for v in r.variants if v.cuda]
    newest = max(cudas, default=None)
    hint = "pass the release `nvcc --version` prints, e.g. 12.4"
    if nvcc.major < 1:
        raise BadInput(f"--nvcc {nvcc}: not a CUDA release; {hint}")
    if newest is not None and nvcc.major > newest.major:
        raise BadInput(f"--nvcc {nvcc}: newer than any CUDA the matrices know (the newest torch build uses CUDA "
                       f"{newest}); {hint}")
    return nvcc


def target_from(
    opts: PlanOptions, matrix: Matrix, reporter: Reporter | None = None
) -> tuple[Target, list[str], dict[str, str]]:
    """Return the target (detected, or given by ``--gpu``/``--cpu``...), lines saying how it was found, and what the
    target interpreter has installed (read only when it was probed)."""
    from resolver.gpus import find_gpu_row, lookup_gpu

    lines: list[str] = []
    driver, nvcc = opts.driver, known_nvcc(opts.nvcc, matrix)
    python, platform = opts.python_version, opts.platform_tag
    installed: dict[str, str] = {}
    gpus: tuple[Gpu, ...] = tuple(lookup_gpu(g, matrix) for g in opts.gpus)
    cpus: int | None = None
    mem: float | None = None  # read only if the plan builds something (plan_for): wheels need neither
    detected_glibc: str | None = None
    if opts.python_exe and (python is None or platform is None):
        from resolver import detect

        env = detect.detect_env(opts.python_exe)
        installed = _installed(env)
        python = python or env.python
        platform = platform or env.platform
        detected_glibc = env.glibc
    if not opts.target_given:
        from resolver import detect

        host = detect.detect(opts.python_exe, reporter=reporter,
                             driver_override=format_driver(opts.driver) if opts.driver is not None else None)
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
        detected_glibc = host.env.glibc
        installed = _installed(host.env)
        if not gpus:
            lines.append("No NVIDIA GPU found (no NVML, no nvidia-smi, no /proc/driver/nvidia): planning a CPU stack. "
                         "Use --gpu NAME to plan for a GPU machine.")
        cpus, mem = host.cpu_count, host.memory_available_gib
    # A described target's Python and platform default to this machine's (gpustack's own interpreter): said in the
    # plan's notes (solve) with the options that change them. A detected target and --python-exe have read both.
    from_here: list[str] = []
    if python is None:
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        from_here.append("python")
    from resolver.gpus import host_platform

    platform, said = host_platform(gpus, platform, matrix)  # a GH200's machine is linux_aarch64, whatever this one is
    if said:
        lines.append(said)
    if platform is None:
        platform = this_platform()
        from_here.append("platform")
    if platform not in PLATFORMS:
        raise BadInput(f"platform {platform!r} is not supported (supported: {', '.join(PLATFORMS)}); pass --platform")
    glibc, assumed = target_glibc(opts, platform, detected_glibc)
    target = Target(gpus=gpus, python=python, platform=platform, driver=driver, nvcc=nvcc, cpu_count=cpus,
                    memory_gib=mem, source="given" if opts.target_given else "detected", glibc=glibc,
                    glibc_assumed=assumed, driver_described=opts.driver is not None,
                    from_here=tuple(from_here))
    return target, lines, installed


def _context(requirements: Sequence[str], opts: PlanOptions, reporter: Reporter | None) -> Context:
    m = load_matrix(opts)
    request = request_from(requirements, opts, m)  # bad requirements first: before detecting anything
    target, lines, installed = target_from(opts, m, reporter)
    request = for_target(request, opts, m, target)
    if installed.get("torch") and not opts.upgrade:
        request = dataclasses.replace(request, keep_torch=installed.get("torch.__version__") or installed["torch"])
    return Context(m, target, with_index(request, opts), tuple(lines), installed)


def with_index(request: Request, opts: PlanOptions) -> Request:
    """Return ``request`` with what its index (``--index-url``, default PyPI) holds for its pass-through requirements:
    the index's answer, read now, is data for the (pure) solver, which pins or refuses each one for the target.
    Where the index gives no answer, or with ``--offline``, install's ``--find-links`` folders answer instead."""
    if not request.others:  # nothing to read; the mirror still takes pypi.org's place in the plan's steps
        return dataclasses.replace(request, index_url=opts.index_url)
    from resolver.index_lookup import lookup_or_folders
    from resolver.models import PYPI_SIMPLE
    from resolver.passthrough import checked_names

    projects = lookup_or_folders(checked_names(request.others), opts.index_url or PYPI_SIMPLE, opts.local_links,
                                 opts.no_index)
    return dataclasses.replace(request, index=projects, index_url=opts.index_url)


def solve_request(
    requirements: Sequence[str], opts: PlanOptions, reporter: Reporter | None = None
) -> tuple[Stack, Context]:
    """Return the solved stack and its context. Raises ``NoCompatibleStack`` when nothing fits."""
    from resolver.solve import solve

    if opts.fleet:
        from resolver.fleet_plan import solve_fleet_request

        return solve_fleet_request(requirements, opts)
    ctx = _context(requirements, opts, reporter)
    return solve(ctx.target, ctx.matrix, ctx.request, reporter), ctx


def plan_for(requirements: Sequence[str], opts: PlanOptions, reporter: Reporter | None = None) -> tuple[Plan, Context]:
    """Return the plan for the target's environment (what it has installed is kept) and the context it was made in."""
    from resolver.plan import make_plan

    stack, ctx = sized_for_build(*solve_request(requirements, opts, reporter))
    return make_plan(stack, ctx.installed, matrix=ctx.matrix), ctx


def sized_for_build(stack: Stack, ctx: Context) -> tuple[Stack, Context]:
    """Return the stack and context with the build machine's cores and free RAM when a package is built from source:
    ``MAX_JOBS`` (``compat.max_jobs``) is sized for the machine that runs the build, this one, alike in plan, lock and
    Dockerfile."""
    if any(p.method == "source" for p in stack.packages) and stack.target.cpu_count is None:
        from resolver.detect import resources

        cpus, mem = resources()
        target = dataclasses.replace(stack.target, cpu_count=cpus, memory_gib=mem)
        stack = dataclasses.replace(stack, target=target)
        ctx = dataclasses.replace(ctx, target=target)
    return stack, ctx


def fresh_plan_for(
    requirements: Sequence[str], opts: PlanOptions, reporter: Reporter | None = None
) -> tuple[Plan, Context]:
    """Return the plan of every package, nothing counted as installed (a lock or an image starts empty)."""
    return fresh_plan(*solve_request(requirements, opts, reporter))


def fresh_plan(stack: Stack, ctx: Context) -> tuple[Plan, Context]:
    """Return the plan of a solved ``stack`` in ``ctx``, nothing counted as installed, builds sized for this machine
    (``sized_for_build``), and the context it was made in: ``fresh_plan_for``'s plan, per fleet class too."""
    from resolver.plan import make_plan

    stack, ctx = sized_for_build(stack, ctx)
    return make_plan(stack, matrix=ctx.matrix), ctx
