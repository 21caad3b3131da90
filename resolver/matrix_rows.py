"""Matrix rows from parsed TOML: ``from_dicts(data) -> Matrix``, pure, with an ``InvalidMatrix`` naming
``file: row: field: what is wrong`` for the first bad value. ``resolver.matrix`` reads the files and caches the result.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from resolver.attention_rows import ATTENTION_KEYS, parse_rows
from resolver.errors import InvalidMatrix
from resolver.matrix_types import (
    BuildJob,
    CompatFacts,
    CudaMinor,
    DockerImage,
    DriverSupport,
    FlashRelease,
    FlashWheelRow,
    GpuRow,
    Matrix,
    MinorCompat,
    OsRelease,
    Pin,
    Profile,
    TorchRelease,
    TorchVariant,
    WheelFacts,
    XformersRelease,
    is_commit,
)
from resolver.models import PLATFORMS, ArchList, ComputeCapability

# The files repeat a few hundred versions thousands of times; Version is immutable, so each text is parsed once.
_version = functools.lru_cache(maxsize=8192)(Version)

__all__ = ["FILES", "KEYS", "OPTIONAL", "check_keys", "from_dicts", "keys_fingerprint"]

FILES = ("torch", "xformers", "xformers_source", "flash_attn", "cuda", "gpus", "profiles", "docker", "attention",
         "wheels", "pins", "build", "platforms")
OPTIONAL = {"xformers_source", "docker", "attention", "wheels", "pins", "build"}

T = TypeVar("T")


class _Ctx:
    """Builds the ``file: row: field`` context of an error."""

    def __init__(self, file: str, row: str) -> None:
        self.file = file
        self.row = row

    def fail(self, field: str, what: str) -> InvalidMatrix:
        return InvalidMatrix(what, f"{self.file}: {self.row}: {field}")

    def get(self, d: Mapping[str, Any], key: str, typ: type[T] | tuple[type, ...], *, default: Any = ...) -> Any:
        if key not in d:
            if default is ...:
                raise self.fail(key, "missing")
            return default
        value = d[key]
        if isinstance(typ, type) and typ is str and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__} {value!r}")
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
            raise self.fail(key, f"expected {names}, got {type(value).__name__} {value!r}")
        return value

    def str_list(self, d: Mapping[str, Any], key: str, *, default: Any = ...) -> tuple[str, ...]:
        value = self.get(d, key, list, default=default)
        if value is None or value is default:
            return () if value is None or value is ... else tuple(value)
        if not all(isinstance(x, str) for x in value):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def version(self, d: Mapping[str, Any], key: str, *, default: Any = ...) -> Any:
        raw = self.get(d, key, str, default=default)
        if raw is default or raw is None:
            return raw
        return self.parse(key, raw, _version)

    def parse(self, field: str, raw: str, fn: Callable[[str], T]) -> T:
        try:
            return fn(raw)
        except (InvalidVersion, InvalidSpecifier, ValueError) as exc:
            raise self.fail(field, f"cannot parse {raw!r}: {exc}") from None


def _source(ctx: _Ctx, d: Mapping[str, Any]) -> str:
    src = ctx.get(d, "source", str)
    if not src.strip():
        raise ctx.fail("source", "empty: every row must say where its facts come from")
    return str(src)


def _spec(text: str) -> SpecifierSet:
    """``"torch (==1.13.1)"`` / ``"torch ==2.0.1"`` / ``">=3.9"`` -> SpecifierSet."""
    s = text.strip()
    s = re.sub(r"^[A-Za-z_][A-Za-z0-9_.-]*\s*", "", s) if re.match(r"^[A-Za-z]", s) else s
    s = s.strip().removeprefix("(").removesuffix(")").strip()
    return SpecifierSet(s)


def _driver(text: str) -> Version | None:
    """NVIDIA table cells: ``"525.60.13"`` -> Version; ``"N/A"`` / ``"R610 branch"`` -> None."""
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)*", t):
        return Version(t)
    return None


# --- torch -------------------------------------------------------------------------------------------------------


def _torch_release(ctx: _Ctx, r: Mapping[str, Any]) -> TorchRelease:
    version = ctx.version(r, "version")
    variants = []
    for i, v in enumerate(ctx.get(r, "variant", list)):
        vctx = _Ctx(ctx.file, f"{ctx.row} variant[{i}]")
        tag = vctx.get(v, "tag", str)
        cuda = vctx.version(v, "cuda")
        if tag != f"cu{cuda.major}{cuda.minor}":
            raise vctx.fail("tag", f"{tag!r} does not match cuda {cuda}")
        arch = vctx.parse("torch_cuda_arch_list", vctx.get(v, "torch_cuda_arch_list", str), ArchList.parse)
        sm_list = vctx.parse("sm_list", " ".join(vctx.str_list(v, "sm_list")), ArchList.parse)
        if sm_list.sass | sm_list.sass_exact != arch.sass | arch.sass_exact:
            raise vctx.fail("sm_list", f"disagrees with torch_cuda_arch_list {arch.to_torch_arch_list()!r}")
        if vctx.get(v, "ptx", bool, default=False) != bool(arch.ptx):
            raise vctx.fail("ptx", "disagrees with the +PTX entries of torch_cuda_arch_list")
        aarch = v.get("aarch64_arch_list")
        variants.append(
            TorchVariant(
                tag=tag,
                cuda=cuda,
                arch=arch,
                arch_aarch64=vctx.parse("aarch64_arch_list", aarch, ArchList.parse) if isinstance(aarch, str) else None,
                pypi_default=vctx.get(v, "pypi_default", bool, default=False),
                unverified=vctx.get(v, "unverified", bool, default=False),
                source=_source(vctx, v),
                note=vctx.get(v, "note", str, default=""),
            )
        )
    pypi_cuda: dict[str, str] = {}
    pypi_arch: dict[str, ArchList] = {}
    x86 = ctx.get(r, "pypi_default_cuda_linux_x86_64", str)
    pypi_cuda["linux_x86_64"] = "cpu" if x86 == "cpu" else f"cu{x86.replace('.', '')}"
    arm = ctx.get(r, "pypi_linux_aarch64_cuda", str)
    pypi_cuda["linux_aarch64"] = "cpu" if arm == "cpu" else f"cu{arm.replace('.', '')}"
    win = ctx.get(r, "pypi_windows_cuda", str)
    pypi_cuda["win_amd64"] = "cpu" if win == "cpu" else f"cu{win.replace('.', '')}"
    pypi_arch["linux_x86_64"] = ctx.parse("pypi_arch_list_verified", ctx.get(r, "pypi_arch_list_verified", str), ArchList.parse)
    arm_arch = r.get("pypi_aarch64_arch_list_verified")
    if isinstance(arm_arch, str):
        pypi_arch["linux_aarch64"] = ctx.parse("pypi_aarch64_arch_list_verified", arm_arch, ArchList.parse)
    abi = ctx.get(r, "cxx11_abi_pypi_linux_x86_64", int)
    if abi not in (0, 1):
        raise ctx.fail("cxx11_abi_pypi_linux_x86_64", f"expected 0 or 1, got {abi!r}")
    ctx.str_list(r, "index_cuda_variants")  # schema check only: the variant rows are what the solver uses
    return TorchRelease(
        version=version,
        requires_python=ctx.parse("requires_python", ctx.get(r, "requires_python", str), SpecifierSet),
        pythons=ctx.str_list(r, "python_versions_pypi_linux_x86_64"),
        pypi_cuda=pypi_cuda,
        pypi_arch=pypi_arch,
        cxx11_abi=bool(abi),
        triton=_triton(ctx, r),
        variants=tuple(sorted(variants, key=lambda v: v.cuda, reverse=True)),
        source=_source(ctx, r),
        note=ctx.get(r, "note", str, default=""),
    )


def _triton(ctx: _Ctx, r: Mapping[str, Any]) -> str | None:
    """Return torch's Requires-Dist on triton without its marker (``"triton==2.1.0"``), or ``None``."""
    from packaging.requirements import InvalidRequirement, Requirement

    raw = ctx.get(r, "pypi_requires_triton", str, default=None)
    if raw is None:
        return None
    try:
        req = Requirement(raw)
    except InvalidRequirement as exc:
        raise ctx.fail("pypi_requires_triton", f"{raw!r}: {exc}") from None
    return f"{req.name}{req.specifier}"


# --- xformers -----------------------------------------------------------------------------------------------------


def _xformers_release(ctx: _Ctx, r: Mapping[str, Any], source_rows: Mapping[str, Mapping[str, Any]]) -> XformersRelease:
    version = ctx.version(r, "version")
    torch_req = ctx.get(r, "requires_dist_torch", str)
    index = r.get("index_cuda_variants", r.get("index_upload_targets"))
    index_variants = None
    if isinstance(index, list):
        index_variants = tuple(t for t in index if isinstance(t, str) and t.startswith("cu"))
    src_row = source_rows.get(str(version))
    source_torch = None
    source_min_cc = None
    source_requires: tuple[str, ...] | None = None
    source_requires_source = ""
    source = _source(ctx, r)
    if src_row is not None and isinstance(src_row.get("source_requires_torch"), str):
        sctx = _Ctx("xformers_source.toml", f"release {version}")
        source_torch = sctx.parse("source_requires_torch", src_row["source_requires_torch"], _spec)
        source += " ; source build: " + _source(sctx, src_row)
        floor = src_row.get("min_cc_buildable")
        if isinstance(floor, str) and re.fullmatch(r"\d+\.\d", floor):
            source_min_cc = ComputeCapability.parse(floor)
        source_requires, source_requires_source = _install_requires(sctx, src_row)
    return XformersRelease(
        version=version,
        torch=ctx.parse("requires_dist_torch", torch_req, _spec),
        requires_python=ctx.parse("requires_python", ctx.get(r, "requires_python", str), SpecifierSet),
        python_tags=ctx.str_list(r, "wheel_python_tags"),
        abi_tags=ctx.str_list(r, "wheel_abi_tags"),
        platforms=ctx.str_list(r, "wheel_platforms"),
        pypi_cuda=ctx.version(r, "pypi_build_cuda"),
        pypi_torch=ctx.get(r, "pypi_build_torch", str),
        arch=ctx.parse("pypi_build_torch_cuda_arch_list", ctx.get(r, "pypi_build_torch_cuda_arch_list", str), ArchList.parse),
        windows_cuda=ctx.version(r, "windows_build_cuda", default=None),
        index_variants=index_variants,
        has_components=ctx.get(r, "has_xformers_components", bool),
        sdist=ctx.get(r, "sdist_on_pypi", bool),
        source=source,
        source_torch=source_torch,
        source_min_cc=source_min_cc,
        source_requires_dist=source_requires,
        source_requires_dist_source=source_requires_source,
        note=ctx.get(r, "note", str, default=""),
        git_tag=ctx.get(r, "git_tag", str, default=None),
        git_commit=_commit(ctx, r, "git_tag_commit"),
    )


def _commit(ctx: _Ctx, r: Mapping[str, Any], key: str) -> str | None:
    """Return the full commit hash ``r[key]`` (``None`` when absent); refuse anything else."""
    value = ctx.get(r, key, str, default=None)
    if value is not None and not is_commit(value):
        raise ctx.fail(key, f"expected a full commit hash (40 hex digits), got {value!r}")
    return value  # type: ignore[no-any-return]


# --- flash-attn ---------------------------------------------------------------------------------------------------

def _flash_platform(os_name: str) -> str:
    return "linux_aarch64" if os_name.endswith("-arm") else "linux_x86_64"


def _cuda_build(text: str) -> Version:
    """``"113"`` -> 11.3; ``"12.9.1"`` -> 12.9.1."""
    if re.fullmatch(r"\d{3}", text):
        return _version(f"{text[:2]}.{text[2]}")
    return _version(text)


_OS_NAME = re.compile(r"[a-z][a-z0-9]*-[0-9]+(?:\.[0-9]+)?(?:-arm)?", re.ASCII)


def _oses(data: Mapping[str, Any]) -> tuple[OsRelease, ...]:
    """Return platforms.toml's ``[[os]]`` rows: each Linux release's os-release key and glibc, with its source (the
    one table of OS facts: flash-attn's build runners, a fleet's nodes and a Dockerfile's image all read it)."""
    out: dict[str, OsRelease] = {}
    for ctx, r in _rows(data, "platforms.toml", "os"):
        name = ctx.get(r, "name", str)
        if not _OS_NAME.fullmatch(name):
            raise ctx.fail("name", f"expected an os-release ID-VERSION_ID such as ubuntu-22.04 or centos-7, got {name!r}")
        if name in out:
            raise ctx.fail("name", f"{name!r} appears twice")
        glibc = ctx.get(r, "glibc", str)
        if not re.fullmatch(r"2\.[0-9]{1,2}", glibc, re.ASCII):
            raise ctx.fail("glibc", f"expected a glibc version such as 2.28 (what the release's `ldd --version` "
                                    f"prints), got {glibc!r}")
        out[name] = OsRelease(name=name, glibc=_version(glibc), source=_source(ctx, r), note=ctx.get(r, "note", str, default=""))
    if not out:
        raise InvalidMatrix("no [[os]] rows; the file needs at least one", "platforms.toml: os")
    return tuple(out.values())


def _windows_driver(data: Mapping[str, Any]) -> None:
    """Check platforms.toml ``[windows_driver]``: its rules name their sources, and the file-version rule gpustack
    applies (``models.windows_file_driver``) gives each example the version the table says."""
    from resolver.models import windows_file_driver

    ctx, table = _table(data, "platforms.toml", "windows_driver")
    for key in ("file_version_source", "branch_rule_source"):
        if not ctx.get(table, key, str).strip():
            raise ctx.fail(key, "empty: every rule must say where it comes from")
    examples = ctx.get(table, "file_version_examples", dict)
    for file_version, driver in examples.items():
        if windows_file_driver(str(file_version)) != driver:
            raise ctx.fail("file_version_examples", f"{file_version} reads as {windows_file_driver(str(file_version))}"
                                                    f" by gpustack's rule, not {driver!r}")


def _flash_release(ctx: _Ctx, r: Mapping[str, Any], os_rows: Mapping[str, OsRelease]) -> FlashRelease:
    version = ctx.version(r, "version")
    unverified = ctx.get(r, "unverified", bool, default=False)
    wheels: list[FlashWheelRow] = []
    oses = ctx.str_list(r, "wheel_matrix_os", default=())
    platforms = sorted({_flash_platform(o) for o in oses}) or ["linux_x86_64"]
    glibc: dict[str, Version] = {}  # per wheel platform: the newest glibc of the OSes that build it
    for o in oses:
        if o not in os_rows:
            raise ctx.fail("wheel_matrix_os", f"{o!r} has no [[os]] row in platforms.toml (its wheels need its glibc)")
        plat = _flash_platform(o)
        glibc[plat] = max(os_rows[o].glibc, glibc.get(plat, os_rows[o].glibc))
    for i, row in enumerate(ctx.get(r, "torch", list, default=[])):
        tctx = _Ctx(ctx.file, f"{ctx.row} torch[{i}]")
        torch_v = tctx.version(row, "torch")
        row_platforms = tctx.str_list(row, "platforms", default=tuple(platforms))
        abis = tctx.str_list(row, "cxx11_abi", default=("FALSE",))
        for abi in abis:
            if abi not in ("TRUE", "FALSE"):
                raise tctx.fail("cxx11_abi", f"expected TRUE or FALSE, got {abi!r}")
        for cuda in tctx.str_list(row, "cuda_build"):
            cuda_v = tctx.parse("cuda_build", cuda, _cuda_build)
            for py in tctx.str_list(row, "python"):
                for abi in abis:
                    for plat in row_platforms:
                        wheels.append(FlashWheelRow(torch_v, cuda_v, abi == "TRUE", py, plat, glibc.get(plat)))
    min_cc = ctx.parse("runtime_min_cc", ctx.get(r, "runtime_min_cc", str), ComputeCapability.parse)
    max_raw = ctx.get(r, "runtime_max_cc", str, default=None)
    max_cc = ctx.parse("runtime_max_cc", max_raw, ComputeCapability.parse) if max_raw is not None else None
    sass: dict[str, ArchList] = {}
    for cuda, sms in ctx.get(r, "wheel_sass_by_cuda_build", dict, default={}).items():
        sass[cuda] = ctx.parse("wheel_sass_by_cuda_build", " ".join(sms), ArchList.parse)
    pin = ctx.str_list(r, "setup_wheel_cuda_pin", default=())
    rule = ctx.get(r, "wheel_cuda_tag_rule", str, default="")
    if rule == "cu{major}{minor}" and pin:
        rule = "pinned:" + ",".join(pin)
    min_torch = ctx.get(r, "readme_min_torch", str, default=None)
    setup_min_cuda = ctx.get(r, "setup_min_cuda_for_build", str, default=None)
    requires_dist, requires_source = _install_requires(ctx, r)
    return FlashRelease(
        version=version,
        git_tag=ctx.get(r, "git_tag", str, default=None),
        requires_python=ctx.parse("python_requires", ctx.get(r, "python_requires", str, default=">=3.9"), SpecifierSet),
        min_cc=min_cc,
        max_cc=max_cc,
        setup_min_cuda=ctx.parse("setup_min_cuda_for_build", setup_min_cuda, Version) if setup_min_cuda else None,
        min_torch=ctx.parse("readme_min_torch", min_torch, Version) if min_torch else None,
        wheels=tuple(wheels),
        wheel_sass=sass,
        cuda_tag_rule=rule,
        wheels_unverified=ctx.get(r, "wheel_matrix_unverified", bool, default=False) or unverified,
        unverified=unverified,
        source=_source(ctx, r),
        note=ctx.get(r, "note", str, default=""),
        requires_dist=requires_dist,
        requires_dist_source=requires_source,
    )


@functools.lru_cache(maxsize=1024)
def _requirement_problem(req: str) -> str | None:
    """Return why ``req`` is not a requirement a wheel can declare (PEP 508, no direct URL), or ``None``; each text
    is read once, like ``_version`` (the same few repeat on every row)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        parsed = Requirement(req)
    except InvalidRequirement as exc:
        return f"{req!r}: {exc}"
    if parsed.url:
        return f"{req!r}: a direct URL; record the requirement a wheel declares"
    return None


def _install_requires(ctx: _Ctx, r: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, str]:
    """Return a release's ``install_requires`` (PEP 508, what its wheels declare; ``None`` when not recorded) and
    ``install_requires_source``, required with it."""
    if "install_requires" not in r:
        if "install_requires_source" in r:
            raise ctx.fail("install_requires_source", "given without install_requires")
        return None, ""
    reqs = ctx.str_list(r, "install_requires")
    for req in reqs:
        problem = _requirement_problem(req)
        if problem is not None:
            raise ctx.fail("install_requires", problem)
    src = ctx.get(r, "install_requires_source", str, default="")
    if not src.strip():
        raise ctx.fail("install_requires_source", "missing or empty: say where install_requires comes from")
    return reqs, str(src)


# --- cuda, gpus, profiles, docker -----------------------------------------------------------------------------------


def _cuda_minor(ctx: _Ctx, r: Mapping[str, Any]) -> CudaMinor:
    sms = ctx.get(r, "sm_list", list)
    if not all(isinstance(s, int) for s in sms):
        raise ctx.fail("sm_list", f"expected a list of integers, got {sms!r}")
    return CudaMinor(
        cuda=ctx.version(r, "cuda"),
        ga_min_driver_linux=_driver(ctx.get(r, "ga_min_driver_linux", str)),
        ga_min_driver_windows=_driver(ctx.get(r, "ga_min_driver_windows", str)),
        nvcc_sms=frozenset(ComputeCapability(s // 10, s % 10) for s in sms),
        unverified=ctx.get(r, "unverified", bool, default=False),
        source=_source(ctx, r),
    )


def _minor_compat(ctx: _Ctx, r: Mapping[str, Any]) -> MinorCompat:
    linux = _driver(ctx.get(r, "min_driver_linux", str))
    windows = _driver(ctx.get(r, "min_driver_windows", str))
    if linux is None or windows is None:
        raise ctx.fail("min_driver_linux", "expected a driver version such as 525.60.13")
    return MinorCompat(ctx.get(r, "major", int), linux, windows, _source(ctx, r))


def _gpu(ctx: _Ctx, r: Mapping[str, Any]) -> GpuRow:
    cc = ctx.parse("compute_capability", ctx.get(r, "compute_capability", str), ComputeCapability.parse)
    sm = ctx.get(r, "sm", str)
    if sm != cc.sm:
        raise ctx.fail("sm", f"{sm!r} disagrees with compute_capability {cc}")
    names = r.get("nvidia_smi_name")
    smi: tuple[str, ...] = ()
    if isinstance(names, str):
        smi = (names,)
    elif isinstance(names, list):
        smi = tuple(str(n) for n in names)
    mem = r.get("memory_gb")
    memory = tuple(mem) if isinstance(mem, list) else ((int(mem),) if isinstance(mem, (int, float)) else ())
    return GpuRow(
        name=ctx.get(r, "name", str),
        compute_capability=cc,
        nvidia_smi_names=smi,
        architecture=ctx.get(r, "architecture", str),
        memory_gb=memory,
        unverified=bool(r.get("cc_unverified", False)),
        source=_source(ctx, r),
        integrated=ctx.get(r, "integrated", bool, default=False),
        host_platforms=_host_platforms(ctx, r),
    )


def _driver_support(ctx: _Ctx, r: Mapping[str, Any]) -> DriverSupport:
    """A ``[[driver_support]]`` row: its capabilities and at least one branch bound, each with its own source."""
    ccs = ctx.str_list(r, "compute_capabilities")
    if not ccs:
        raise ctx.fail("compute_capabilities", "empty: name the compute capabilities the bounds apply to")
    _source(ctx, r)
    caps = frozenset(ctx.parse("compute_capabilities", c, ComputeCapability.parse) for c in ccs)
    bounds: dict[str, int | None] = {}
    sources = []
    for key in ("first_driver_branch", "last_driver_branch"):
        bounds[key] = ctx.get(r, key, int, default=None)
        if bounds[key] is None:
            continue
        src = ctx.get(r, f"{key}_source", str, default="")
        if not src.strip():
            raise ctx.fail(f"{key}_source", f"missing: every {key} names its source (NVIDIA driver or CUDA release notes)")
        sources.append(src)
    first, last = bounds["first_driver_branch"], bounds["last_driver_branch"]
    if first is None and last is None:
        raise ctx.fail("first_driver_branch", "missing: a row bounds the driver on at least one side")
    if first is not None and last is not None and first > last:
        raise ctx.fail("last_driver_branch", f"{last} is older than first_driver_branch {first}")
    return DriverSupport(ctx.get(r, "architecture", str), caps, first, last, "; ".join(sources))


def _host_platforms(ctx: _Ctx, r: Mapping[str, Any]) -> tuple[str, ...]:
    """Return a GPU's ``host_platforms`` (each a known platform, with its own ``host_platforms_source``)."""
    found = ctx.str_list(r, "host_platforms", default=())
    for p in found:
        if p not in PLATFORMS:
            raise ctx.fail("host_platforms", f"unknown platform {p!r} (known: {', '.join(PLATFORMS)})")
    if found and not isinstance(r.get("host_platforms_source"), str):
        raise ctx.fail("host_platforms_source", "missing: every host_platforms fact names its source")
    return tuple(found)


def _profile(ctx: _Ctx, r: Mapping[str, Any]) -> Profile:
    from packaging.requirements import InvalidRequirement, Requirement

    reqs = ctx.str_list(r, "requirements")
    constraints = ctx.str_list(r, "constraints", default=())
    needs = ctx.str_list(r, "needs", default=())
    optional = ctx.str_list(r, "optional", default=())
    for need in needs:
        if need not in _KNOWN_NEEDS:
            raise ctx.fail("needs", f"unknown feature {need!r} (known: {', '.join(sorted(_KNOWN_NEEDS))})")
    for req in reqs + constraints + optional:
        try:
            Requirement(req)
        except InvalidRequirement as exc:
            raise ctx.fail("requirements", f"{req!r}: {exc}") from None
    return Profile(
        name=ctx.get(r, "name", str),
        requirements=reqs,
        summary=ctx.get(r, "summary", str),
        source=_source(ctx, r),
        constraints=constraints,
        needs=needs,
        note=ctx.get(r, "note", str, default=""),
        unverified=ctx.get(r, "unverified", bool, default=False),
        optional=optional,
    )


_KNOWN_NEEDS = {"xformers.components"}


def _docker(ctx: _Ctx, r: Mapping[str, Any]) -> DockerImage:
    return DockerImage(
        cuda=ctx.version(r, "cuda"),
        version=ctx.get(r, "version", str),
        runtime=ctx.get(r, "cudnn_runtime", str, default=None) or ctx.get(r, "runtime", str),
        devel=ctx.get(r, "cudnn_devel", str, default=None) or ctx.get(r, "devel", str),
        removed=ctx.get(r, "removed", bool, default=False),
        unverified=ctx.get(r, "unverified", bool, default=False),
        source=_source(ctx, r),
        ubuntu=ctx.get(r, "ubuntu", str, default=""),
        status=ctx.get(r, "status", str, default=""),
    )


def _build_job(ctx: _Ctx, r: Mapping[str, Any]) -> BuildJob:
    per_job = ctx.get(r, "gib_per_job", (int, float))
    threads = ctx.get(r, "nvcc_threads", int, default=1)
    if per_job <= 0 or threads < 1:
        raise ctx.fail("gib_per_job", f"expected a positive size and at least one nvcc thread, got {per_job!r}, {threads!r}")
    return BuildJob(ctx.get(r, "package", str), float(per_job), threads, _source(ctx, r))


def _table(data: Mapping[str, Any], file: str, key: str) -> tuple[_Ctx, Mapping[str, Any]]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise InvalidMatrix("expected a table", f"{file}: [{key}]")
    return _Ctx(file, f"[{key}]"), table


def _facts(data: Mapping[str, Mapping[str, Any]]) -> CompatFacts:
    """Return the single typed facts of the ``[general]`` / ``[meta]`` tables (each names its source key)."""
    fctx, general = _table(data["flash_attn"], "flash_attn.toml", "general")
    archs = tuple(fctx.parse("cuda_archs", a, ComputeCapability.parse) for a in fctx.str_list(general, "cuda_archs", default=()))
    env_from = fctx.version(general, "cuda_archs_env_from", default=None)
    url = fctx.get(general, "wheel_url", str, default="")
    xctx, xmeta = _table(data["xformers"], "xformers.toml", "meta")
    fmha = xctx.get(xmeta, "fmha_min_cc", str, default=None)
    git_url = xctx.get(xmeta, "git_url", str)
    if not git_url.startswith("git+") or "{tag}" not in git_url:
        raise xctx.fail("git_url", f"expected a git+URL with {{tag}} where the release's tag goes, got {git_url!r}")
    tctx, tmeta = _table(data["torch"], "torch.toml", "meta")
    sources = tuple(str(t.get(k)) for t, k in ((general, "cuda_archs_source"), (general, "source"),
                                                 (xmeta, "fmha_min_cc_source"), (xmeta, "git_url_source"),
                                                 (tmeta, "cxx11_abi_linux_aarch64_source"))
                    if isinstance(t.get(k), str))
    return CompatFacts(
        flash_cuda_archs=tuple(sorted(archs)),
        flash_cuda_archs_env_from=env_from,
        flash_wheel_url=str(url),
        xformers_fmha_min_cc=xctx.parse("fmha_min_cc", fmha, ComputeCapability.parse) if fmha else None,
        xformers_git_url=git_url,
        torch_aarch64_abi_from=tctx.version(tmeta, "cxx11_abi_linux_aarch64_from", default=None),
        sources=sources,
    )


def _pin(ctx: _Ctx, r: Mapping[str, Any]) -> Pin:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    package = ctx.get(r, "package", str)
    parsed = {}
    for key in ("requirement", "when"):
        try:
            parsed[key] = Requirement(ctx.get(r, key, str))
        except InvalidRequirement as exc:
            raise ctx.fail(key, f"{r[key]!r} is not a PEP 508 requirement ({str(exc).splitlines()[0]})") from None
        if not str(parsed[key].specifier):
            raise ctx.fail(key, f"{r[key]!r} has no version bound")
    if canonicalize_name(parsed["requirement"].name) != canonicalize_name(package):
        raise ctx.fail("requirement", f"{r['requirement']!r} does not name the package {package!r}")
    platforms = ctx.str_list(r, "platforms", default=())
    for p in platforms:
        if p not in PLATFORMS:
            raise ctx.fail("platforms", f"unknown platform {p!r} (known: {', '.join(PLATFORMS)})")
    return Pin(package=package, requirement=str(parsed["requirement"]), when=str(parsed["when"]),
               reason=ctx.get(r, "reason", str), source=_source(ctx, r), platforms=platforms,
               note=ctx.get(r, "note", str, default=""))


WHEEL_KEYS = frozenset({"package", "version", "platform", "pythons", "abi3", "platform_tag", "glibc", "requires_python",
                        "build", "unverified", "source", "upload_time", "yanked", "note"})
WHEEL_PLATFORMS = ("linux_x86_64", "linux_aarch64", "win_amd64", "any")


def _wheel(ctx: _Ctx, r: Mapping[str, Any]) -> WheelFacts:
    platform = ctx.get(r, "platform", str)
    if platform not in WHEEL_PLATFORMS:
        raise ctx.fail("platform", f"expected one of {', '.join(WHEEL_PLATFORMS)}, got {platform!r}")
    pythons = ctx.str_list(r, "pythons")
    for py in pythons:
        if not re.fullmatch(r"3\.\d{1,2}", py):
            raise ctx.fail("pythons", f"expected CPython minors such as '3.11', got {py!r}")
    glibc = ctx.version(r, "glibc", default=None)
    if (glibc is None) == platform.startswith("linux_"):
        raise ctx.fail("glibc", "required for Linux wheels, absent for Windows and pure-Python ones")
    tag = ctx.get(r, "platform_tag", str)
    if not tag.endswith(platform.removeprefix("linux_")):
        raise ctx.fail("platform_tag", f"{tag!r} is not a {platform} tag")
    return WheelFacts(
        package=ctx.get(r, "package", str),
        version=ctx.version(r, "version"),
        platform=platform,
        pythons=tuple(sorted(pythons, key=lambda p: int(p.split(".")[1]))),
        abi3=ctx.get(r, "abi3", bool, default=False),
        platform_tag=tag,
        glibc=glibc,
        requires_python=ctx.parse("requires_python", ctx.get(r, "requires_python", str, default=""), SpecifierSet),
        build=ctx.get(r, "build", str, default=""),
        unverified=ctx.get(r, "unverified", bool, default=False),
        source=_source(ctx, r),
    )


def _rows(data: Mapping[str, Any], file: str, key: str) -> list[tuple[_Ctx, Mapping[str, Any]]]:
    rows = data.get(key, [])
    if not isinstance(rows, list):
        raise InvalidMatrix(f"expected an array of tables [[{key}]]", f"{file}: {key}")
    out: list[tuple[_Ctx, Mapping[str, Any]]] = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise InvalidMatrix("expected a table", f"{file}: {key}[{i}]")
        label = (" ".join(str(r.get(k, "?")) for k in ("package", "version", "platform")) if "platform" in r else None) \
            or r.get("version") or r.get("name") or r.get("cuda") or r.get("minor") or r.get("major") or r.get("package") or r.get("architecture") or i
        out.append((_Ctx(file, f"{key}[{i}] ({label})"), r))
    return out


# Every key each table of each file may hold: ("file stem", "table") -> keys, "" = the file's top level, "a/b" = the
# table ``b`` inside each ``a`` row. A key is listed when the parser above reads it or when it records a sourced fact for
# people (dates, commits, notes, the source of a sub-fact); anything else is a typo or a dead field and fails the load
# (so ``gpustack matrix validate``). Map values with free keys (``build_env``, ``arch_min_cuda``, ``extras``,
# ``wheel_sass_by_cuda_build``, ``submodule_pins``) are not listed.
KEYS: dict[tuple[str, str], frozenset[str]] = {
    ("attention", ""): frozenset({
        "release"}),
    ("attention", "release"): ATTENTION_KEYS,
    ("build", ""): frozenset({
        "job"}),
    ("build", "job"): frozenset({
        "gib_per_job", "note", "nvcc_threads", "package", "source"}),
    ("cuda", ""): frozenset({
        "cuda_minor", "meta", "minor_version_compat", "toolkit_release"}),
    ("cuda", "cuda_minor"): frozenset({
        "arch_specific_targets", "arch_specific_unverified", "cuda", "ga_min_driver_linux",
        "ga_min_driver_windows", "major", "minor_compat_min_driver_linux", "minor_compat_min_driver_windows",
        "note", "sm_list", "sm_max", "sm_min", "source", "unverified"}),
    ("cuda", "meta"): frozenset({
        "driver_branch_source_13x", "driver_table_source", "generated", "scope"}),
    ("cuda", "minor_version_compat"): frozenset({
        "major", "max_driver_exclusive", "min_driver_linux", "min_driver_windows", "note", "source"}),
    ("cuda", "toolkit_release"): frozenset({
        "min_driver_linux", "min_driver_windows", "minor", "note", "release", "source", "unverified"}),
    ("docker", ""): frozenset({
        "image", "meta"}),
    ("docker", "image"): frozenset({
        "cuda", "cudnn7_devel", "cudnn7_runtime", "cudnn_devel", "cudnn_runtime", "cudnn_version",
        "deletion_planned", "devel", "eol_marked", "eol_unverified", "existence_unverified", "fallback",
        "fallback_source", "full_toolkit_version_note", "note", "other_ubuntu", "removed", "removed_by",
        "runtime", "source", "status", "ubuntu", "unverified", "version"}),
    ("docker", "meta"): frozenset({
        "eol_chart_dates_note", "generated", "source", "support_policy", "support_policy_source"}),
    ("flash_attn", ""): frozenset({
        "general", "release"}),
    ("flash_attn", "general"): frozenset({
        "build_env_vars", "cuda_archs", "cuda_archs_env_from", "cuda_archs_source", "fa3", "fa4",
        "main_branch_matrix", "prebuilt_sass", "runtime_check_history", "runtime_min_compute_capability",
        "source", "wheel_cuda_tag_rule", "wheel_glibc_floor_source", "wheel_url"}),
    ("flash_attn", "release"): frozenset({
        "default_flash_attn_cuda_archs", "fa3_readme", "git_tag", "git_tag_commit", "git_tag_date",
        "install_requires", "install_requires_source", "note",
        "pypi_date", "python_requires", "readme_min_cuda", "readme_min_torch", "runtime_cc_check",
        "runtime_max_cc", "runtime_min_cc", "sdist_only_on_pypi", "setup_downloads_prebuilt_wheel",
        "setup_min_cuda_for_build", "setup_sass_targets", "setup_wheel_cuda_pin", "source", "tag_note", "torch",
        "unverified", "version", "wheel_combos", "wheel_cuda_tag_rule", "wheel_matrix_cuda_build",
        "wheel_matrix_cxx11_abi", "wheel_matrix_os", "wheel_matrix_python", "wheel_matrix_source",
        "wheel_matrix_torch", "wheel_matrix_unverified", "wheel_sass_by_cuda_build"}),
    ("flash_attn", "release/torch"): frozenset({
        "cuda_build", "cxx11_abi", "platforms", "python", "source", "torch"}),
    ("gpus", ""): frozenset({
        "driver_support", "gpu", "meta"}),
    ("gpus", "driver_support"): frozenset({
        "architecture", "compute_capabilities", "first_driver_branch", "first_driver_branch_source",
        "last_driver_branch", "last_driver_branch_source", "note", "source"}),
    ("gpus", "gpu"): frozenset({
        "architecture", "cc_unverified", "compute_capability", "host_platforms", "host_platforms_source",
        "integrated", "integrated_source", "memory_gb",
        "memory_source", "memory_unverified", "name", "note", "nvidia_smi_name", "nvidia_smi_name_source",
        "nvidia_smi_name_unverified", "segment", "sm", "source"}),
    ("gpus", "meta"): frozenset({
        "generated", "rows"}),
    ("pins", ""): frozenset({
        "pin"}),
    ("pins", "pin"): frozenset({
        "note", "package", "platforms", "reason", "requirement", "source", "when"}),
    ("platforms", ""): frozenset({
        "meta", "os", "windows_driver"}),
    ("platforms", "meta"): frozenset({
        "generated", "scope", "source"}),
    ("platforms", "os"): frozenset({
        "glibc", "name", "note", "source"}),
    ("platforms", "windows_driver"): frozenset({
        "branch_rule", "branch_rule_source", "file_version_examples", "file_version_rule", "file_version_source"}),
    ("profiles", ""): frozenset({
        "profile"}),
    ("profiles", "profile"): frozenset({
        "constraints", "name", "needs", "note", "optional", "requirements", "source", "summary", "unverified"}),
    ("torch", ""): frozenset({
        "meta", "release"}),
    ("torch", "meta"): frozenset({
        "cxx11_abi_linux_aarch64_from", "cxx11_abi_linux_aarch64_source", "cxx11_abi_summary", "generated",
        "newest_torch_on_pypi", "pypi_platform_summary", "scope", "source"}),
    ("torch", "release"): frozenset({
        "cxx11_abi_note", "cxx11_abi_pypi_linux_x86_64", "date_source", "free_threaded_abi_tags",
        "index_cuda_variants", "index_url_pattern", "index_variants_source", "index_variants_unverified",
        "minor", "note", "pypi_aarch64_arch_list_verified", "pypi_arch_list_verified",
        "pypi_default_cuda_linux_x86_64", "pypi_linux_aarch64_cuda", "pypi_linux_aarch64_local_version",
        "pypi_linux_x86_64_local_version", "pypi_requires_cuda_runtime", "pypi_requires_cudnn",
        "pypi_requires_triton", "pypi_windows_cuda", "pypi_windows_local_version",
        "python_versions_pypi_linux_x86_64", "release_date", "requires_python", "source", "variant", "version"}),
    ("torch", "release/variant"): frozenset({
        "aarch64_arch_list", "aarch64_source", "aarch64_unverified", "cuda", "note", "ptx", "pypi_default",
        "pypi_wheel_verified", "sm_list", "source", "tag", "torch_cuda_arch_list", "unverified"}),
    ("wheels", ""): frozenset({
        "wheel"}),
    ("wheels", "wheel"): WHEEL_KEYS,
    ("xformers", ""): frozenset({
        "api_change", "meta", "release"}),
    ("xformers", "api_change"): frozenset({
        "changed_in", "detail", "fairseq_impact", "fairseq_impact_unverified", "removed_fully_in",
        "removed_partially_in", "source", "topic"}),
    ("xformers", "meta"): frozenset({
        "fmha_min_cc", "fmha_min_cc_source", "generated", "git_url", "git_url_source", "newest_on_pypi", "source"}),
    ("xformers", "release"): frozenset({
        "compiled_extensions", "git_tag", "git_tag_commit", "has_xformers_components", "index_cuda_variants",
        "index_cuda_variants_source", "index_upload_targets", "linux_wheel_size_mib", "note", "prerelease",
        "pypi_build_cuda", "pypi_build_flash", "pypi_build_torch", "pypi_build_torch_cuda_arch_list",
        "pypi_upload_filter", "release_date", "requires_dist_all", "requires_dist_torch", "requires_python",
        "sdist_on_pypi", "source", "version", "wheel_abi_tags", "wheel_platforms", "wheel_python_tags",
        "windows_build_cuda", "windows_wheel_on_pypi"}),
    ("xformers_source", ""): frozenset({
        "meta", "release", "user_report"}),
    ("xformers_source", "meta"): frozenset({
        "generated", "repo_snapshot_head", "source"}),
    ("xformers_source", "release"): frozenset({
        "cuda_feature_gates", "git_commit", "git_tag", "honours_force_cuda", "honours_torch_cuda_arch_list",
        "install_requires", "install_requires_source", "min_cc_buildable", "note", "note_min_cc", "pyproject_build_requires_torch", "setup_min_cuda",
        "sm37_buildable", "sm37_buildable_basis", "sm37_buildable_unverified", "sm37_note", "source",
        "source_requires_torch", "sputnik_removed", "submodule_init", "submodule_pins", "submodules",
        "submodules_needed_for_cuda_build", "tag_date", "vendored_in_tree", "version"}),
    ("xformers_source", "user_report"): frozenset({
        "caveat", "caveat_unverified", "compute_capability", "gpu", "id", "install_command", "nvcc", "outcome",
        "source", "torch", "torch_cuda_arch_list", "xformers_build"}),
}


def _known(ctx: _Ctx, r: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(r) - allowed)
    if unknown:
        raise ctx.fail(unknown[0], f"unknown key (expected one of {', '.join(sorted(allowed))})")


def check_keys(data: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ``InvalidMatrix`` (``file: row: field: unknown key (expected one of ...)``) for the first key of any table
    of any matrix file that ``KEYS`` does not list."""
    for name, doc in data.items():
        file = f"{name}.toml"
        top = KEYS.get((name, ""))
        if top is None:
            continue
        _known(_Ctx(file, "top level"), doc, top)
        for table, value in doc.items():
            allowed = KEYS[(name, table)]
            if isinstance(value, dict):
                _known(_Ctx(file, f"[{table}]"), value, allowed)
                continue
            for ctx, r in _rows(doc, file, table):
                _known(ctx, r, allowed)
                for sub, inner in r.items():
                    nested = KEYS.get((name, f"{table}/{sub}"))
                    if nested is None:
                        continue
                    if isinstance(inner, dict):
                        _known(_Ctx(file, f"{ctx.row}: {sub}"), inner, nested)
                    elif isinstance(inner, list):
                        for c, row in _rows(r, file, sub):
                            _known(_Ctx(file, f"{ctx.row}: {c.row}"), row, nested)


def keys_fingerprint() -> str:
    """Return a digest of ``KEYS``: a cache of tables whose keys were checked binds itself to the rule it passed."""
    listed = sorted((f"{name}/{table}", sorted(keys)) for (name, table), keys in KEYS.items())
    return hashlib.sha256(repr(listed).encode()).hexdigest()


def from_dicts(data: Mapping[str, Mapping[str, Any]], *, keys_checked: bool = False) -> Matrix:
    """Return the typed ``Matrix`` of parsed TOML documents keyed by file stem (``torch``, ``cuda``, ...).

    Pure: raises ``InvalidMatrix`` naming ``file: row: field`` for the first wrong value. ``keys_checked``: the
    tables passed ``check_keys`` under this ``KEYS`` already (the matrix cache, bound to the TOML and to
    ``keys_fingerprint``), so it is not run again; every value is still checked.
    """
    for name in FILES:
        if name not in data and name not in OPTIONAL:
            raise InvalidMatrix("file missing", f"{name}.toml")
    if not keys_checked:
        check_keys(data)
    torch = tuple(_torch_release(c, r) for c, r in _rows(data["torch"], "torch.toml", "release"))
    source_rows = {str(r.get("version")): r for _, r in _rows(data.get("xformers_source", {}), "xformers_source.toml", "release")}
    xformers = tuple(
        _xformers_release(c, r, source_rows)
        for c, r in _rows(data["xformers"], "xformers.toml", "release")
        if not r.get("prerelease", False)
    )
    oses = _oses(data["platforms"])
    _windows_driver(data["platforms"])
    by_name = {o.name: o for o in oses}
    flash = tuple(_flash_release(c, r, by_name) for c, r in _rows(data["flash_attn"], "flash_attn.toml", "release"))
    cuda = tuple(_cuda_minor(c, r) for c, r in _rows(data["cuda"], "cuda.toml", "cuda_minor"))
    compat = tuple(_minor_compat(c, r) for c, r in _rows(data["cuda"], "cuda.toml", "minor_version_compat"))
    gpus = tuple(_gpu(c, r) for c, r in _rows(data["gpus"], "gpus.toml", "gpu"))
    driver_support = tuple(_driver_support(c, r) for c, r in _rows(data["gpus"], "gpus.toml", "driver_support"))
    seen: dict[ComputeCapability, str] = {}
    for d in driver_support:
        for cc in d.capabilities:
            if cc in seen:
                raise InvalidMatrix(f"compute capability {cc} is bounded twice ({seen[cc]}, {d.architecture})",
                                    "gpus.toml: driver_support")
            seen[cc] = d.architecture
    profiles = tuple(_profile(c, r) for c, r in _rows(data["profiles"], "profiles.toml", "profile"))
    docker = tuple(_docker(c, r) for c, r in _rows(data.get("docker", {}), "docker.toml", "image"))
    jobs = tuple(_build_job(c, r) for c, r in _rows(data.get("build", {}), "build.toml", "job"))
    pins = tuple(_pin(c, r) for c, r in _rows(data.get("pins", {}), "pins.toml", "pin"))
    wheels = tuple(_wheel(c, r) for c, r in _rows(data.get("wheels", {}), "wheels.toml", "wheel"))
    wheel_index: dict[tuple[str, Version, str], WheelFacts] = {}
    for (c, _), w in zip(_rows(data.get("wheels", {}), "wheels.toml", "wheel"), wheels):
        key = (w.package, w.version, w.platform)
        if key in wheel_index:
            raise c.fail("version", f"{w.package} {w.version} {w.platform} appears twice")
        wheel_index[key] = w
    for rows, file, table in ((torch, "torch.toml", "release"), (cuda, "cuda.toml", "cuda_minor"), (gpus, "gpus.toml", "gpu")):
        if not rows:
            raise InvalidMatrix(f"no [[{table}]] rows; the file needs at least one", f"{file}: {table}")
    return Matrix(
        torch=tuple(sorted(torch, key=lambda t: t.version, reverse=True)),
        xformers=tuple(sorted(xformers, key=lambda x: x.version, reverse=True)),
        flash_attn=tuple(sorted(flash, key=lambda f: f.version, reverse=True)),
        cuda=tuple(sorted(cuda, key=lambda c: c.cuda)),
        minor_compat=compat,
        gpus=gpus,
        profiles=profiles,
        docker=docker,
        build_jobs=jobs,
        facts=_facts(data),
        pins=pins,
        wheels=wheels,
        wheel_index=wheel_index,
        attention=parse_rows(data.get("attention", {})),
        oses=oses,
        driver_support=driver_support,
    )
