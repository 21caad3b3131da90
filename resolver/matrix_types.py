"""Typed rows of the compatibility matrices (``matrices/*.toml``), as ``resolver.matrix`` builds them.

Plain frozen dataclasses without generated ``__eq__``: rows are compared by identity. They are rebuilt from the
parsed tables on every run (``resolver.matrix_cache`` keeps the tables as JSON, never as a pickle).

Every row keeps its ``source`` and whether it is ``unverified``; the solver reports each unverified fact it
relies on (docs/matrix.md says how).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import re

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.models import ArchList, ComputeCapability

__all__ = [
    "TorchVariant",
    "TorchRelease",
    "XformersRelease",
    "FlashWheelRow",
    "FlashRelease",
    "CudaMinor",
    "MinorCompat",
    "GpuRow",
    "OsRelease",
    "Profile",
    "DockerImage",
    "BuildJob",
    "CompatFacts",
    "WheelFacts",
    "AttentionRelease",
    "Matrix",
    "is_commit",
    "git_ref",
]


def is_commit(ref: str | None) -> bool:
    """Return whether ``ref`` is a full git commit hash (40 hex digits: what PEP 751's ``commit-id`` holds)."""
    return bool(ref) and re.fullmatch(r"[0-9a-f]{40}", ref or "") is not None


def git_ref(url: str) -> str | None:
    """Return the ref of a ``git+URL@REF[#fragment]`` requirement URL (a tag, branch or hash), ``None`` without one."""
    path = url.split("#", 1)[0].removeprefix("git+")
    tail = path.rsplit("/", 1)[-1]
    return tail.rsplit("@", 1)[1] if "@" in tail else None


@dataclass(frozen=True, eq=False)
class TorchVariant:
    """One CUDA build of a torch release (``cu121``) with the code it carries per platform."""

    tag: str
    cuda: Version
    arch: ArchList  # Linux x86_64 (and Windows) wheels
    arch_aarch64: ArchList | None
    pypi_default: bool
    unverified: bool
    source: str
    note: str = ""


@dataclass(frozen=True, eq=False)
class TorchRelease:
    """A torch release: the Pythons it has wheels for, its CUDA variants, what PyPI serves per platform."""

    version: Version
    requires_python: SpecifierSet
    pythons: tuple[str, ...]
    pypi_cuda: dict[str, str]  # platform -> "cu121" / "cpu": the build PyPI serves there
    pypi_arch: dict[str, ArchList]  # platform -> arch list read from the PyPI wheel (verified)
    cxx11_abi: bool  # Linux x86_64 PyPI / index builds
    variants: tuple[TorchVariant, ...]
    source: str
    note: str = ""
    triton: str | None = None  # the PyPI wheel's Requires-Dist on triton (pypi_requires_triton), e.g. "triton==2.1.0"

    @property
    def minor(self) -> str:
        return f"{self.version.major}.{self.version.minor}"

    def variant(self, tag: str) -> TorchVariant | None:
        return next((v for v in self.variants if v.tag == tag), None)


@dataclass(frozen=True, eq=False)
class XformersRelease:
    """A final xformers release and the binaries it published."""

    version: Version
    torch: SpecifierSet  # the wheel's Requires-Dist on torch
    requires_python: SpecifierSet
    python_tags: tuple[str, ...]  # cp310 ... / cp39 (abi3) / py39 (none)
    abi_tags: tuple[str, ...]
    platforms: tuple[str, ...]  # wheel platform tags on PyPI
    pypi_cuda: Version | None
    pypi_torch: str | None  # 2.1.0+cu121
    arch: ArchList
    windows_cuda: Version | None
    index_variants: tuple[str, ...] | None  # cu118 ...: builds on download.pytorch.org; None = unknown
    has_components: bool
    sdist: bool
    source: str
    source_torch: SpecifierSet | None = None  # what a source build at the tag accepts
    source_min_cc: ComputeCapability | None = None  # a source build fails to compile below this
    # what a wheel built from source at the tag declares (Requires-Dist: setup.py's install_requires, the lines of
    # requirements.txt; the PyPI wheels' own differ: their CI pinned torch); None: not recorded. A lock resolves
    # these for a build step instead of building it (lock_resolve.declared_requires).
    source_requires_dist: tuple[str, ...] | None = None
    source_requires_dist_source: str = ""
    note: str = ""
    git_tag: str | None = None  # the release's tag in facebookresearch/xformers
    git_commit: str | None = None  # the full commit hash that tag names (git_tag_commit; a lock needs it)

    @property
    def abi3(self) -> bool:
        return "abi3" in self.abi_tags or "none" in self.abi_tags


@dataclass(frozen=True, eq=False)
class FlashWheelRow:
    """One prebuilt flash-attn wheel a release's CI built: torch minor x CUDA build x ABI x Python."""

    torch: Version
    cuda_build: Version
    cxx11_abi: bool
    python: str
    platform: str
    glibc: Version | None = None  # the glibc of the OS its CI built it on (platforms.toml [[os]]): its floor


@dataclass(frozen=True, eq=False)
class FlashRelease:
    """A flash-attn 2 release: what it runs on and which wheels it published on GitHub."""

    version: Version
    git_tag: str | None
    requires_python: SpecifierSet
    min_cc: ComputeCapability  # runtime_min_cc: flash_api.cpp's TORCH_CHECK rejects GPUs below it
    max_cc: ComputeCapability | None  # runtime_max_cc: 9.0 for <= 2.7.2 (rejects sm_100/sm_120 at run time)
    setup_min_cuda: Version | None
    min_torch: Version | None
    wheels: tuple[FlashWheelRow, ...]
    wheel_sass: dict[str, ArchList]  # cuda_build -> SASS in the wheels
    cuda_tag_rule: str  # "cu{major}{minor}", "cu{major}", ...
    wheels_unverified: bool
    unverified: bool
    source: str
    note: str = ""
    # install_requires: what its wheels declare (Requires-Dist), from setup.py at the tag; None: not recorded. A lock
    # gives these to the resolver instead of the GitHub wheel, which it could otherwise only read by downloading it.
    requires_dist: tuple[str, ...] | None = None
    requires_dist_source: str = ""


@dataclass(frozen=True, eq=False)
class CudaMinor:
    """A CUDA toolkit minor: its drivers and the SMs its nvcc can target."""

    cuda: Version
    ga_min_driver_linux: Version | None
    ga_min_driver_windows: Version | None
    nvcc_sms: frozenset[ComputeCapability]
    unverified: bool
    source: str


@dataclass(frozen=True, eq=False)
class MinorCompat:
    """NVIDIA's minor-version compatibility floor for a CUDA major."""

    major: int
    min_driver_linux: Version
    min_driver_windows: Version
    source: str


@dataclass(frozen=True, eq=False)
class GpuRow:
    """A GPU model: its name, the names ``nvidia-smi`` prints for it, and its compute capability."""

    name: str
    compute_capability: ComputeCapability
    nvidia_smi_names: tuple[str, ...]
    architecture: str
    memory_gb: tuple[int, ...]
    unverified: bool
    source: str
    integrated: bool = False  # a Tegra (Jetson) GPU: PyPI / PyTorch-index CUDA wheels are not for it
    host_platforms: tuple[str, ...] = ()  # the only platforms its machine can be (a Grace superchip: linux_aarch64)


@dataclass(frozen=True, eq=False)
class OsRelease:
    """One Linux distribution release (``platforms.toml [[os]]``): its os-release ``ID-VERSION_ID`` key
    (``ubuntu-22.04``, ``centos-7``; ``ubuntu-22.04-arm`` is GitHub's arm64 runner) and the glibc it ships."""

    name: str
    glibc: Version
    source: str
    note: str = ""


@dataclass(frozen=True, eq=False)
class DriverSupport:
    """The driver branches that drive one GPU architecture (``gpus.toml [[driver_support]]``): a branch is a driver
    version's major (470 = R470); ``None`` where no source confirms that side's bound."""

    architecture: str
    capabilities: frozenset[ComputeCapability]
    first_branch: int | None
    last_branch: int | None
    source: str  # the bounds' sources, joined


@dataclass(frozen=True, eq=False)
class Profile:
    """Requirements a known consumer (AudioCraft, fairseq, diffusers) puts on the stack."""

    name: str
    requirements: tuple[str, ...]
    summary: str
    source: str
    constraints: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    note: str = ""
    unverified: bool = False
    optional: tuple[str, ...] = ()  # planned where they fit the target, left out with the reason otherwise


@dataclass(frozen=True, eq=False)
class Pin:
    """A known-bad transitive pin (``pins.toml``): when the stack has ``when`` (e.g. ``torch<2.3``), every install
    and lock must hold ``requirement`` (e.g. ``numpy<2``), because the stack's binaries break otherwise."""

    package: str
    requirement: str
    when: str
    reason: str
    source: str
    platforms: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, eq=False)
class DockerImage:
    """An ``nvidia/cuda`` base image for one CUDA minor."""

    cuda: Version
    version: str
    runtime: str
    devel: str
    removed: bool
    unverified: bool
    source: str
    ubuntu: str = ""  # the Ubuntu release the image is built on ("22.04"): its glibc is the image's
    status: str = ""  # NVIDIA's support status of the tag ("supported", "eol"), as docker.toml records it


@dataclass(frozen=True, eq=False)
class BuildJob:
    """What one compile job of a package's source build needs (``matrices/build.toml``; ``*`` is the default)."""

    package: str
    gib_per_job: float  # per nvcc thread
    nvcc_threads: int
    source: str


@dataclass(frozen=True, eq=False)
class CompatFacts:
    """Single facts the compatibility layer reads, each from a typed matrix key with its source.

    ``flash_cuda_archs``: the ``FLASH_ATTN_CUDA_ARCHS`` values flash-attn's setup.py knows, honoured from
    ``flash_cuda_archs_env_from``; ``flash_wheel_url``: the GitHub release asset URL template;
    ``xformers_fmha_min_cc``: below it xformers' fMHA ops refuse to run; ``xformers_git_url``: the git requirement URL
    template (``{tag}``) of a source build of a release without an sdist; ``torch_aarch64_abi_from``: the first torch
    whose Linux aarch64 wheels use the new C++ ABI.
    """

    flash_cuda_archs: tuple[ComputeCapability, ...] = ()
    flash_cuda_archs_env_from: Version | None = None
    flash_wheel_url: str = ""
    xformers_fmha_min_cc: ComputeCapability | None = None
    xformers_git_url: str = ""
    torch_aarch64_abi_from: Version | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class WheelFacts:
    """What one release of a package publishes on PyPI for one platform (``matrices/wheels.toml``).

    ``pythons`` are the CPython minors with a wheel (free-threaded builds excluded); with ``abi3`` the single entry is
    the lowest one and every later Python installs it too. ``glibc`` is the manylinux floor of the wheels (``None``
    off Linux). Read from PyPI's simple API by ``gpustack matrix refresh``.
    """

    package: str
    version: Version
    platform: str  # linux_x86_64 / linux_aarch64 / win_amd64 / any (a pure-Python wheel)
    pythons: tuple[str, ...]
    abi3: bool
    platform_tag: str
    glibc: Version | None
    requires_python: SpecifierSet
    build: str  # cu130 / cpu / "" when the wheel has no CUDA build in its name or version
    unverified: bool
    source: str

    def python_ok(self, python: str) -> bool:
        """Return whether CPython ``python`` (``"3.11"``) has a wheel here."""
        if not self.pythons:  # a py3 wheel: requires-python decides
            return not self.requires_python or self.requires_python.contains(f"{python}.0", prereleases=True)
        if python in self.pythons:
            return True
        if not self.abi3 or not self.pythons:
            return False
        return _minor(python) >= _minor(self.pythons[0])


def _minor(python: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in python.split("."))
    except ValueError:
        return ()


@dataclass(frozen=True, eq=False)
class AttentionRelease:
    """One installable attention-kernel release and what it needs (``matrices/attention.toml`` says each field)."""

    name: str
    version: Version
    title: str
    family: str
    generation: int
    module: str
    backend: str
    method: str  # "wheel" | "source"
    min_cc: ComputeCapability
    requires_python: SpecifierSet
    platforms: tuple[str, ...]
    source: str
    index: str | None = None
    url: str | None = None
    requirement_name: str | None = None
    commit: str | None = None  # the full commit hash ``url``'s git ref names (``url``'s own when it is one)
    max_cc_major: int | None = None
    build_archs: tuple[ComputeCapability, ...] = ()
    arch_min_cuda: Mapping[str, Version] | None = None
    min_cuda: Version | None = None
    cuda_majors: tuple[int, ...] = ()
    min_torch: Version | None = None
    extras: Mapping[int, str] | None = None
    deps: tuple[str, ...] = ()
    deps_cuda: Mapping[int, tuple[str, ...]] | None = None
    build_env: Mapping[str, str] | None = None
    arch_env: str | None = None
    diffusers: tuple[str, ...] = ()
    pypi: str = ""
    unverified: bool = False
    note: str = ""


@dataclass(frozen=True, eq=False)
class Matrix:
    """Everything the solver knows. Built by ``resolver.matrix.load`` / ``from_dicts``."""

    torch: tuple[TorchRelease, ...]
    xformers: tuple[XformersRelease, ...]
    flash_attn: tuple[FlashRelease, ...]
    cuda: tuple[CudaMinor, ...]
    minor_compat: tuple[MinorCompat, ...]
    gpus: tuple[GpuRow, ...]
    profiles: tuple[Profile, ...] = ()
    docker: tuple[DockerImage, ...] = ()
    build_jobs: tuple[BuildJob, ...] = ()
    facts: CompatFacts = field(default_factory=CompatFacts)
    pins: tuple[Pin, ...] = ()
    wheels: tuple[WheelFacts, ...] = ()
    wheel_index: dict[tuple[str, Version, str], WheelFacts] = field(default_factory=dict)  # built by from_dicts
    extra: dict[str, object] = field(default_factory=dict)
    attention: tuple[AttentionRelease, ...] = ()  # FA3, flash-attn-4, SageAttention, flash-attn 1.x
    oses: tuple[OsRelease, ...] = ()  # platforms.toml [[os]]: each Linux release's glibc, with its source
    driver_support: tuple[DriverSupport, ...] = ()  # gpus.toml [[driver_support]]: which driver branches drive a GPU

    def git_commit(self, name: str, version: str, ref: str) -> str | None:
        """Return the full commit hash of the git source ``ref`` (a tag, or a hash) of package ``name`` ``version``
        that the matrices name: an attention release's ``commit`` (attention.toml), an xformers release's
        ``git_tag_commit`` (xformers.toml); ``ref`` itself when it is a full hash; ``None`` when unknown. A PEP 751
        lock needs it (``[packages.vcs] commit-id``)."""
        if is_commit(ref):
            return ref
        key = canonicalize_name(name)
        for a in self.attention:
            names = {a.name, canonicalize_name(a.requirement_name or a.name)}
            if key in names and str(a.version) == version and a.url and git_ref(a.url) == ref:
                return a.commit
        for x in self.xformers:
            if key == "xformers" and str(x.version) == version and x.git_tag == ref:
                return x.git_commit
        return None

    @functools.cached_property
    def _os_index(self) -> dict[str, OsRelease]:
        return {o.name: o for o in self.oses}

    def os_release(self, name: str) -> OsRelease | None:
        """Return the platforms.toml row of an os-release ``ID-VERSION_ID`` key (``ubuntu-22.04``, ``centos-7``), or
        ``None`` for a release the matrices do not know: the one place every command reads an OS's glibc from."""
        return self._os_index.get(name)

    def first_releases_with(self, glibc: Version, families: tuple[str, ...] = ("rhel", "rocky", "debian", "ubuntu")
                            ) -> list[str]:
        """Return, per OS family of ``families`` (an os-release ``ID``), its oldest release (``platforms.toml``) whose
        glibc is ``glibc`` or newer (``rhel-8``, ..., ``ubuntu-20.04`` for 2.28): the hosts an assumed glibc
        describes, as the plan's note names them."""
        out = []
        for family in families:
            rows = [o for o in self.oses if o.name.rsplit("-", 1)[0] == family and o.glibc >= glibc]
            if rows:
                out.append(min(rows, key=lambda o: (o.glibc, o.name)).name)
        return out

    def os_glibc(self, name: str) -> Version | None:
        """Return the glibc of the OS ``name`` (``os_release``), or ``None`` when not known."""
        row = self._os_index.get(name)
        return row.glibc if row is not None else None

    def torch_release(self, version: str | Version) -> TorchRelease | None:
        v = Version(str(version))
        return next((t for t in self.torch if t.version == v), None)

    @functools.cached_property
    def _cuda_minors(self) -> dict[tuple[int, int], CudaMinor]:
        """The CUDA table by (major, minor), first row wins (the solver asks per candidate: a scan cost ~10%)."""
        out: dict[tuple[int, int], CudaMinor] = {}
        for c in self.cuda:
            out.setdefault((c.cuda.major, c.cuda.minor), c)
        return out

    def cuda_minor(self, cuda: Version) -> CudaMinor | None:
        return self._cuda_minors.get((cuda.major, cuda.minor))

    def compat(self, major: int) -> MinorCompat | None:
        return next((c for c in self.minor_compat if c.major == major), None)

    def build_job(self, package: str) -> BuildJob | None:
        """Return the build row of ``package``, else the ``*`` default row."""
        rows = {j.package: j for j in self.build_jobs}
        return rows.get(package) or rows.get("*")

    def wheel_facts(self, package: str, version: str | Version, platform: str) -> WheelFacts | None:
        """Return what PyPI publishes of ``package`` ``version`` for ``platform``, or ``None`` when not recorded."""
        v = version if isinstance(version, Version) and version.local is None else Version(str(version).split("+")[0])
        return self.wheel_index.get((package, v, platform)) or self.wheel_index.get((package, v, "any"))

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)
