"""Value types shared by every stage: what a target is, what the matrices hold, what the solver and planner return.

Parsing and ordering only; this module imports no other stage.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from resolver.errors import BadInput

__all__ = [
    "exact_pin",
    "python_platform_markers",
    "ComputeCapability",
    "ArchList",
    "Coverage",
    "Gpu",
    "Target",
    "PLATFORMS",
    "MARKER_VARIABLES",
    "marker_environment",
    "parse_driver",
    "format_driver",
    "cuda_tag",
    "PackageChoice",
    "Stack",
    "Step",
    "Plan",
    "PYPI_SIMPLE",
    "PYTORCH_INDEX",
]

PLATFORMS = ("linux_x86_64", "linux_aarch64", "win_amd64")
# What PEP 508 environment markers read on each platform: os.name, sys.platform, platform.system() and
# platform.machine() of the CPython that runs there (the targets' wheels are CPython's: hashes.target_tags).
_PLATFORM_MARKERS = {
    "linux_x86_64": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                     "platform_machine": "x86_64"},
    "linux_aarch64": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                      "platform_machine": "aarch64"},
    "win_amd64": {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64"},
}
# Docker's and Kubernetes' name (Go's GOARCH) of each platform's machine: `docker build --platform linux/arm64`,
# the node label kubernetes.io/arch.
GO_ARCH = {"linux_x86_64": "amd64", "linux_aarch64": "arm64", "win_amd64": "amd64"}
# The marker variables a target determines (``marker_environment``); the others (platform_release,
# python_full_version, ...) depend on what the target machine does not say.
MARKER_VARIABLES = ("os_name", "sys_platform", "platform_system", "platform_machine", "python_version",
                    "platform_python_implementation", "implementation_name")
# The glibc assumed for a described Linux target (--gpu/--cpu without --glibc): manylinux_2_28, the floor of every
# current torch and xformers wheel. Printed in the plan, with the hosts that have it (``Matrix.first_releases_with``).
DEFAULT_GLIBC = "2.28"
PYPI_SIMPLE = "https://pypi.org/simple"
PYTORCH_INDEX = "https://download.pytorch.org/whl"

Coverage = Literal["sass", "ptx"]


@dataclass(frozen=True, order=True, slots=True)
class ComputeCapability:
    """A CUDA compute capability such as 8.6 (``sm_86``)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ComputeCapability:
        """Return the capability written as ``8.6``, ``86``, ``sm_86`` or ``compute_86``."""
        s = text.strip().lower()
        s = s.removeprefix("sm_").removeprefix("compute_")
        m = re.fullmatch(r"(\d{1,3})\.(\d)", s, re.ASCII) or re.fullmatch(r"(\d{1,3})(\d)", s, re.ASCII)
        if not m:
            raise BadInput(f"invalid compute capability: {text!r} (expected e.g. 8.6 or sm_86)")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def sm(self) -> str:
        return f"sm_{self.major}{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


_ARCH_TOKEN = re.compile(r"^(?:sm_|compute_)?(\d{1,3})\.?(\d)([af]?)(\+ptx)?$", re.ASCII)


@dataclass(frozen=True, slots=True)
class ArchList:
    """The GPU code compiled into a binary: SASS per architecture, and PTX that the driver can JIT-compile.

    ``sass_exact`` holds arch-specific targets (``9.0a``) that run on exactly that capability; ``sass`` holds
    ordinary targets, which run on any GPU of the same major with an equal or higher minor; ``ptx`` runs on any
    GPU at or above it (through the driver's JIT).
    """

    sass: frozenset[ComputeCapability] = frozenset()
    ptx: frozenset[ComputeCapability] = frozenset()
    sass_exact: frozenset[ComputeCapability] = frozenset()

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> ArchList:
        """Return the list written as ``"3.7;5.0;8.0+PTX"``, ``"7.5 8.0+PTX 9.0a"`` or ``["sm_80", "sm_90"]``."""
        return _parse_arch_list(spec if isinstance(spec, str) else tuple(spec))

    @classmethod
    def _parse(cls, spec: str | tuple[str, ...]) -> ArchList:
        tokens = re.split(r"[;\s,]+", spec.strip()) if isinstance(spec, str) else list(spec)
        sass: set[ComputeCapability] = set()
        ptx: set[ComputeCapability] = set()
        exact: set[ComputeCapability] = set()
        for raw in tokens:
            if not raw:
                continue
            tok = raw.strip().lower()
            m = _ARCH_TOKEN.match(tok)
            if not m:
                raise BadInput(f"invalid architecture {raw[:40]!r} (expected e.g. 8.0, 9.0a or 8.6+PTX)")
            cc = ComputeCapability(int(m.group(1)), int(m.group(2)))
            suffix = m.group(3)
            if tok.startswith("compute_"):
                if not suffix:
                    ptx.add(cc)
                continue
            (exact if suffix == "a" else sass).add(cc)
            if m.group(4) and not suffix:
                ptx.add(cc)
        return cls(frozenset(sass), frozenset(ptx), frozenset(exact))

    def covers(self, cc: ComputeCapability) -> Coverage | None:
        """Return ``"sass"`` when native code runs on ``cc``, ``"ptx"`` when only a JIT from PTX does, else ``None``."""
        if cc in self.sass_exact:
            return "sass"
        if any(a.major == cc.major and a.minor <= cc.minor for a in self.sass):
            return "sass"
        if any(p <= cc for p in self.ptx):
            return "ptx"
        return None

    def newest_sass(self) -> ComputeCapability | None:
        every = self.sass | self.sass_exact
        return max(every) if every else None

    def to_torch_arch_list(self) -> str:
        """Return the ``TORCH_CUDA_ARCH_LIST`` spelling, e.g. ``"7.0;8.0+PTX"``."""
        items = []
        for cc in sorted(self.sass | self.ptx | self.sass_exact):
            text = f"{cc}a" if cc in self.sass_exact and cc not in self.sass else str(cc)
            if cc in self.ptx:
                text += "+PTX"
            items.append(text)
        return ";".join(items)

    def __bool__(self) -> bool:
        return bool(self.sass or self.ptx or self.sass_exact)


def parse_glibc(text: str, what: str = "--glibc") -> Version:
    """Return a glibc version (``"2.28"``); ``BadInput`` names ``what`` and the expected spelling otherwise."""
    if not re.fullmatch(r"2\.[0-9]{1,2}", text.strip(), re.ASCII):
        raise BadInput(f"{what} {text!r}: expected a glibc version such as 2.28 (`ldd --version` prints it)")
    return Version(text.strip())


@functools.lru_cache(maxsize=4096)
def _parse_arch_list(spec: str | tuple[str, ...]) -> ArchList:
    # The matrices repeat the same few hundred lists: parsing each once halves the matrix load (docs/input.md).
    return ArchList._parse(spec)


def parse_driver(text: str) -> Version:
    """Return an NVIDIA driver version (``580.159.04``, ``470.82.01``, ``580``) as a comparable ``Version``."""
    s = text.strip() if isinstance(text, str) else ""
    if not re.fullmatch(r"\d{2,4}(\.\d{1,3}){0,2}", s, re.ASCII):
        raise BadInput(f"invalid driver version: {str(text)[:40]!r} (expected e.g. 535.104.05; `nvidia-smi` prints it)")
    return Version(s)


def windows_file_driver(text: str) -> str | None:
    """Return the NVIDIA driver version (``552.22``) a Windows driver file version (``31.0.15.5222``, what Device
    Manager and the registry show) stands for: the last five digits of its third and fourth fields (platforms.toml
    ``[windows_driver]``, with its source); ``None`` when ``text`` is not such a version."""
    m = re.fullmatch(r"[0-9]{1,3}\.[0-9]{1,3}\.([0-9]{1,3})\.([0-9]{4})", text.strip() if isinstance(text, str) else "",
                     re.ASCII)
    if m is None:
        return None
    digits = (m.group(1) + m.group(2))[-5:]
    return f"{int(digits[:3])}.{digits[3:]}" if len(digits) == 5 and int(digits[:3]) >= 100 else None


def format_driver(version: Version) -> str:
    """Return a driver version the way NVIDIA writes it: ``Version("470.82.1")`` -> ``"470.82.01"``."""
    parts = list(version.release)
    return ".".join([str(parts[0])] + [f"{p:02d}" for p in parts[1:]])


def cuda_tag(cuda: Version | str | None) -> str:
    """Return the wheel tag of a CUDA version: ``12.1`` -> ``cu121``; ``None`` -> ``cpu``."""
    if cuda is None:
        return "cpu"
    v = cuda if isinstance(cuda, Version) else Version(str(cuda))
    return f"cu{v.major}{v.minor}"


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU of a target: its name as ``nvidia-smi`` prints it (or as the user named it) and its capability."""

    name: str
    compute_capability: ComputeCapability
    memory_mib: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "compute_capability": str(self.compute_capability)}
        if self.memory_mib is not None:
            d["memory_mib"] = self.memory_mib
        return d


@dataclass(frozen=True, slots=True)
class Target:
    """The machine a stack is solved for: this one (detected) or another (``--gpu``, ``--driver``, ...).

    ``gpus`` empty means a CPU target. ``driver`` ``None`` means unknown: the solver then assumes a driver new
    enough for every CUDA build and says so. ``nvcc`` is the CUDA toolkit a source build would use, if known.
    """

    gpus: tuple[Gpu, ...]
    python: str
    platform: str
    driver: Version | None = None
    nvcc: Version | None = None
    cpu_count: int | None = None
    memory_gib: float | None = None
    source: str = "detected"  # "detected" or "given"
    glibc: Version | None = None  # Linux: the C library wheels must fit (manylinux floor); None = unknown / not Linux
    glibc_assumed: bool = False  # a described target without --glibc: DEFAULT_GLIBC, said in the plan
    # the driver was not read along with these GPUs (--driver over a detected machine, --gpu over its driver): a
    # description, checked against the GPUs as a described target's is (compat.gpu_driver_refusals)
    driver_described: bool = False
    # a described target's facts taken from this machine, not given ("python", "platform"): said in the plan's notes
    from_here: tuple[str, ...] = ()

    @property
    def is_cpu(self) -> bool:
        return not self.gpus

    @property
    def capabilities(self) -> tuple[ComputeCapability, ...]:
        return tuple(sorted({g.compute_capability for g in self.gpus}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": [g.to_dict() for g in self.gpus],
            "driver": format_driver(self.driver) if self.driver is not None else None,
            "python": self.python,
            "platform": self.platform,
            "nvcc": str(self.nvcc) if self.nvcc is not None else None,
            "glibc": str(self.glibc) if self.glibc is not None else None,
        }


def marker_environment(target: Target) -> dict[str, str]:
    """Return the PEP 508 marker environment of ``target`` (its platform and Python, not this machine's): the values
    of ``MARKER_VARIABLES``."""
    return python_platform_markers(target.python, target.platform)


def python_platform_markers(python: str, platform: str) -> dict[str, str]:
    """Return ``marker_environment`` of a Python version (``3.11``, or ``3.11.7``: its ``X.Y``) on a platform tag;
    for a platform outside ``PLATFORMS``, only the Python's variables."""
    return {**_PLATFORM_MARKERS.get(platform, {}), "python_version": ".".join(python.split(".")[:2]),
            "platform_python_implementation": "CPython", "implementation_name": "cpython"}


@dataclass(frozen=True, slots=True)
class PackageChoice:
    """One chosen package: an exact version and how it gets onto the machine.

    ``method`` is ``"wheel"`` (from ``index_url``, or ``url`` for a direct file) or ``"source"`` (built here with
    ``build_env``). ``version`` carries torch's CUDA tag (``2.1.0+cu121``).
    """

    name: str
    version: str
    method: Literal["wheel", "source"]
    index_url: str | None = None
    url: str | None = None
    build_env: Mapping[str, str] = field(default_factory=dict)
    variant: str | None = None  # cu121 / cpu: the CUDA build of this package
    cuda: str | None = None
    arch_list: str | None = None  # what the chosen binary (or build) contains
    ptx_fallback: bool = False
    notes: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()  # "cu13" for flash-attn-4[cu13]: the CUDA libraries that match torch's
    constraints: tuple[str, ...] = ()  # pins its dependencies are installed under (planned, not left to chance)

    @property
    def requirement(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.name}{extras}=={self.version}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "version": self.version, "method": self.method}
        if self.index_url:
            d["index_url"] = self.index_url
        if self.url:
            d["url"] = self.url
        if self.method == "source":
            d["env"] = dict(self.build_env)
        if self.variant:
            d["variant"] = self.variant
        if self.cuda:
            d["cuda"] = self.cuda
        if self.arch_list:
            d["arch_list"] = self.arch_list
        if self.ptx_fallback:
            d["ptx_fallback"] = True
        if self.notes:
            d["notes"] = list(self.notes)
        if self.extras:
            d["extras"] = list(self.extras)
        if self.constraints:
            d["constraints"] = list(self.constraints)
        return d


@dataclass(frozen=True, slots=True)
class Stack:
    """The solver's answer: torch first, then the packages built against it, plus what else was asked for."""

    target: Target
    packages: tuple[PackageChoice, ...]
    other_requirements: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    torch_cxx11_abi: bool | None = None
    others_index_url: str | None = None  # the PyPI mirror (None: pypi.org): pass-throughs checked there, steps take it

    def get(self, name: str) -> PackageChoice | None:
        return next((p for p in self.packages if p.name == name), None)

    @property
    def torch(self) -> PackageChoice:
        choice = self.get("torch")
        assert choice is not None
        return choice


@dataclass(frozen=True, slots=True)
class Step:
    """One ordered action of a plan. The planner decides; install/build only execute.

    ``action``:
      * ``"install"``: install ``requirement`` from ``index_url`` (+ ``extra_index_urls``) or the file ``url``;
      * ``"build"``: build ``requirement`` from source into a wheel with ``env`` (no build isolation), then install it.
    ``no_deps`` means the step must not touch other packages; ``constraints`` are pins it must honour (torch's exact
    build, so nothing can swap it). A build step's wheel is always installed with the dependencies it declares, its
    constraints held, so a plan says ``no_deps`` false there (plan files written before that said true: it is read
    and means the same).
    """

    action: Literal["install", "build"]
    package: str
    requirement: str
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    url: str | None = None
    no_deps: bool = False
    constraints: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    build_isolation: bool = True
    prerequisites: tuple[str, ...] = ()
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "action": self.action,
            "package": self.package,
            "requirement": self.requirement,
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "url": self.url,
            "no_deps": self.no_deps,
            "constraints": list(self.constraints),
            "env": dict(self.env),
            "build_isolation": self.build_isolation,
            "prerequisites": list(self.prerequisites),
            "description": self.description,
        }
        return d


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered steps that put a ``Stack`` onto a machine."""

    stack: Stack
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the documented ``plan --json`` object (docs/plan-json.md)."""
        return {
            "ok": True,
            "target": self.stack.target.to_dict(),
            "packages": [p.to_dict() for p in self.stack.packages],
            "other_requirements": list(self.stack.other_requirements),
            "steps": [s.to_dict() for s in self.steps],
            "notes": list(self.stack.notes) + list(self.notes),
        }

    def source_of(self, name: str) -> str:
        """Return where the package ``name`` (a stack package's or a pass-through requirement's name) is really
        installed from: its step's file URL, else (a source build of a URL: that URL) its step's index. A mirror
        moves the steps, not the stack (``plan.make_plan``, ``installers.with_mirrors``), so the step says it; a
        package with no step (kept: installed already) says its own. The one rule of every human output that names
        a package's source (``render.print_plan``)."""
        from packaging.utils import canonicalize_name

        key = canonicalize_name(name)
        choice = next((p for p in self.stack.packages if canonicalize_name(p.name) == key), None)
        step = next((s for s in self.steps if canonicalize_name(s.package) == key), None)
        if step is not None:
            if step.action == "build" and choice is not None and choice.url:
                return choice.url
            return step.url or step.index_url or self.stack.others_index_url or PYPI_SIMPLE
        if choice is not None:
            return choice.url or choice.index_url or self.stack.others_index_url or PYPI_SIMPLE
        return self.stack.others_index_url or PYPI_SIMPLE

    @classmethod
    def from_dict(cls, data: Any, *, what: str = "plan") -> Plan:
        """Return the ``Plan`` written as ``to_dict`` (``gpustack plan --json``), validated field by field.

        A wrong field raises ``BadInput`` naming it (``steps[3].requirement``), the value and the form expected.
        Requirements must be PEP 508, URLs absolute and one line, build variables from ``schema.BUILD_VARIABLES``:
        what a plan file can make pip do is what gpustack's own plans do.
        """
        from resolver import schema as sc

        root = sc.Loc(what, hint="write a plan with `gpustack plan --json > FILE`")
        d = sc.table(data, root)
        if "classes" in d:
            raise BadInput(f"{what}: a fleet's plans (one per class), not one plan; pass one class's plan (its "
                           f"`plan` object, or `gpustack plan --json` for that class's GPUs)")
        if d.get("ok", True) is not True:
            reasons = d.get("reasons")
            why = f" ({str(reasons[0])[:200]!r})" if isinstance(reasons, list) and reasons else ""
            raise BadInput(f"{what}: a refusal (ok: false), not a plan{why}: nothing in it can be installed; change "
                           f"the request until `gpustack plan --json` gives a plan")
        if "target" not in d:
            root.at("target").missing("a table (JSON object)")
        tl = root.at("target")
        t = sc.table(d["target"], tl)
        gpus = []
        for i, g in enumerate(sc.get_list(t, "gpus", tl, limit=64)):
            gl = tl.at("gpus").at(i)
            g = sc.table(g, gl)
            cc_text = sc.get_str(g, "compute_capability", gl, limit=20)
            try:
                cc = ComputeCapability.parse(cc_text)
            except BadInput:
                gl.at("compute_capability").fail(cc_text, "a compute capability such as 8.6")
            gpus.append(Gpu(sc.get_str(g, "name", gl, limit=200), cc, sc.get_int(g, "memory_mib", gl)))
        driver_text = sc.get_opt_str(t, "driver", tl, limit=20)
        try:
            driver = parse_driver(driver_text) if driver_text else None
        except BadInput:
            tl.at("driver").fail(driver_text, "a driver version such as 535.104.05")
        python = sc.get_opt_str(t, "python", tl, limit=10) or "3.11"
        if not re.fullmatch(r"3\.[0-9]{1,2}", python, re.ASCII):
            tl.at("python").fail(python, "a Python version such as 3.11")
        platform = sc.get_opt_str(t, "platform", tl, limit=30) or "linux_x86_64"
        if platform not in PLATFORMS:
            tl.at("platform").fail(platform, f"one of {', '.join(PLATFORMS)}")
        nvcc_text = sc.get_opt_str(t, "nvcc", tl, limit=20)
        try:
            nvcc = Version(nvcc_text) if nvcc_text else None
        except InvalidVersion:
            tl.at("nvcc").fail(nvcc_text, "a CUDA version such as 12.4")
        glibc_text = sc.get_opt_str(t, "glibc", tl, limit=10)
        if glibc_text and not re.fullmatch(r"2\.[0-9]{1,2}", glibc_text, re.ASCII):
            tl.at("glibc").fail(glibc_text, "a glibc version such as 2.28")
        target = Target(gpus=tuple(gpus), python=python, platform=platform, driver=driver, nvcc=nvcc, source="plan",
                        glibc=Version(glibc_text) if glibc_text else None)
        packages = tuple(_package_from_dict(p, root.at("packages").at(i))
                         for i, p in enumerate(sc.get_list(d, "packages", root, limit=1000)))
        others = tuple(sc.check_requirement(r, root.at("other_requirements").at(i))
                       for i, r in enumerate(sc.get_str_list(d, "other_requirements", root)))
        if "steps" not in d:
            root.at("steps").missing("a list")
        steps = tuple(_step_from_dict(s, root.at("steps").at(i))
                      for i, s in enumerate(sc.get_list(d, "steps", root, limit=1000)))
        notes = tuple(sc.get_str_list(d, "notes", root, limit=4000))
        return cls(Stack(target, packages, others), steps, notes)


def _package_from_dict(value: Any, loc: Any) -> PackageChoice:
    from resolver import schema as sc

    p = sc.table(value, loc)
    method = sc.get_str(p, "method", loc)
    if method not in ("wheel", "source"):
        loc.at("method").fail(method, "'wheel' or 'source'")
    name = sc.get_str(p, "name", loc, limit=200)
    version = sc.get_str(p, "version", loc, limit=200)
    sc.check_requirement(f"{name}=={version}", loc.at("version"))
    index_url = sc.get_opt_str(p, "index_url", loc)
    url = sc.get_opt_str(p, "url", loc, limit=4000)
    arch = sc.get_opt_str(p, "arch_list", loc, limit=400)
    if arch is not None:
        try:
            ArchList.parse(arch)
        except BadInput:
            loc.at("arch_list").fail(arch, "an arch list such as '8.0;9.0+PTX'")
    return PackageChoice(
        name, version, "source" if method == "source" else "wheel",
        index_url=sc.check_url(index_url, loc.at("index_url")) if index_url else None,
        url=sc.check_url(url, loc.at("url")) if url else None,
        build_env=sc.check_build_env(p.get("env") or {}, loc.at("env")),
        variant=sc.get_opt_str(p, "variant", loc, limit=40), cuda=sc.get_opt_str(p, "cuda", loc, limit=20),
        arch_list=arch, ptx_fallback=sc.get_bool(p, "ptx_fallback", loc, False),
        notes=tuple(sc.get_str_list(p, "notes", loc, limit=4000)),
        extras=tuple(sc.check_requirement(f"x[{e}]", loc.at("extras").at(i)) and e
                     for i, e in enumerate(sc.get_str_list(p, "extras", loc, limit=40))),
        constraints=tuple(sc.check_requirement(c, loc.at("constraints").at(i))
                          for i, c in enumerate(sc.get_str_list(p, "constraints", loc))),
    )


def _step_from_dict(value: Any, loc: Any) -> Step:
    from resolver import schema as sc

    s = sc.table(value, loc)
    action = sc.get_str(s, "action", loc)
    if action not in ("install", "build"):
        loc.at("action").fail(action, "'install' or 'build'")
    package = sc.get_str(s, "package", loc, limit=200)
    sc.check_requirement(package, loc.at("package"))
    requirement = sc.check_requirement(sc.get_str(s, "requirement", loc, limit=4000), loc.at("requirement"))
    index_url = sc.get_opt_str(s, "index_url", loc)
    url = sc.get_opt_str(s, "url", loc, limit=4000)
    extra = tuple(sc.check_url(u, loc.at("extra_index_urls").at(i))
                  for i, u in enumerate(sc.get_str_list(s, "extra_index_urls", loc)))
    constraints = tuple(sc.check_requirement(c, loc.at("constraints").at(i))
                        for i, c in enumerate(sc.get_str_list(s, "constraints", loc)))
    return Step(
        "build" if action == "build" else "install", package, requirement,
        index_url=sc.check_url(index_url, loc.at("index_url")) if index_url else None,
        extra_index_urls=extra,
        url=sc.check_url(url, loc.at("url")) if url else None,
        no_deps=sc.get_bool(s, "no_deps", loc, False),
        constraints=constraints,
        env=sc.check_build_env(s.get("env") or {}, loc.at("env")),
        build_isolation=sc.get_bool(s, "build_isolation", loc, True),
        prerequisites=tuple(sc.get_str_list(s, "prerequisites", loc)),
        description=sc.get_opt_str(s, "description", loc, limit=4000) or "",
    )


def parse_version(text: str, what: str) -> Version:
    """Return ``text`` as a Version, or raise ``BadInput`` naming ``what``."""
    try:
        return Version(text)
    except InvalidVersion:
        raise BadInput(f"invalid {what}: {text!r}") from None


def python_tag(python: str) -> str:
    """``"3.11"`` -> ``"cp311"``."""
    major, minor = python.split(".")[:2]
    return f"cp{major}{minor}"


def exact_pin(requirement: str) -> tuple[str, str, str] | None:
    """Return (normalized name, version, marker) of a requirement pinned to one release by its one ``==`` (or
    ``===``) without a wildcard (``name==1.2``, ``requests[socks]==2.32 ; python_version>='3.9'``; marker ``""``
    when none), else ``None``: a range, a wildcard, a URL, or text that is no requirement. The one reading of a pin
    for plan, install and download."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    pins = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
    if req.url or len(pins) != 1:
        return None
    return str(canonicalize_name(req.name)), pins[0], str(req.marker or "")


def spec_allows(spec: SpecifierSet, version: Version | str) -> bool:
    """Return whether ``spec`` admits ``version``, pre-releases included (matrices hold exact releases)."""
    v = version if isinstance(version, Version) else Version(version)
    return _allows(spec, v)


@functools.lru_cache(maxsize=65536)
def _allows(spec: SpecifierSet, version: Version) -> bool:
    # The solver asks the same (bound, release) questions for every torch candidate: answer each once.
    return spec.contains(version, prereleases=True)
