"""Typed rows of the compatibility matrices (``matrices/*.toml``), as ``resolver.matrix`` builds them.

Plain frozen dataclasses without slots or generated ``__eq__``: rows are compared by identity, and the parsed matrix
is read back from a pickle on every run, where slot classes unpickle several times slower.

Every row keeps its ``source`` and whether it is ``unverified``; the solver reports each unverified fact it
relies on (docs/matrix.md says how).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet
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
    "Profile",
    "DockerImage",
    "Matrix",
]


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
    platforms_pypi: tuple[str, ...]
    pypi_cuda: dict[str, str]  # platform -> "cu121" / "cpu": the build PyPI serves there
    pypi_arch: dict[str, ArchList]  # platform -> arch list read from the PyPI wheel (verified)
    cxx11_abi: bool  # Linux x86_64 PyPI / index builds
    cxx11_abi_inferred: bool
    variants: tuple[TorchVariant, ...]
    source: str
    note: str = ""

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
    note: str = ""

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


@dataclass(frozen=True, eq=False)
class FlashRelease:
    """A flash-attn 2 release: what it runs on and which wheels it published on GitHub."""

    version: Version
    git_tag: str | None
    requires_python: SpecifierSet
    min_cc: ComputeCapability
    max_cc_major: int | None  # 9 for <= 2.7.2 (rejects sm_100/sm_120 at run time)
    setup_min_cuda: Version | None
    min_torch: Version | None
    wheels: tuple[FlashWheelRow, ...]
    wheel_sass: dict[str, ArchList]  # cuda_build -> SASS in the wheels
    cuda_tag_rule: str  # "cu{major}{minor}", "cu{major}", ...
    wheels_unverified: bool
    unverified: bool
    source: str
    note: str = ""


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
    pins: tuple[Pin, ...] = ()
    flash_wheel_url: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def torch_release(self, version: str | Version) -> TorchRelease | None:
        v = Version(str(version))
        return next((t for t in self.torch if t.version == v), None)

    def cuda_minor(self, cuda: Version) -> CudaMinor | None:
        return next((c for c in self.cuda if (c.cuda.major, c.cuda.minor) == (cuda.major, cuda.minor)), None)

    def compat(self, major: int) -> MinorCompat | None:
        return next((c for c in self.minor_compat if c.major == major), None)

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)
