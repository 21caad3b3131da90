"""The binaries a target could use: torch builds per platform, xformers and flash-attn wheels or builds.

Pure helpers for ``resolver.solve``: each ``*_options`` function returns candidates with the facts they rest on, and
each check returns ``None`` when a candidate fits or the reason it does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version

from resolver.matrix_types import FlashRelease, Matrix, TorchRelease
from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX, ArchList, ComputeCapability, Target, format_driver

__all__ = [
    "integrated_gpus",
    "wheel_problem",
    "torch_release_problem",
    "TorchOption",
    "torch_options",
    "driver_problem",
    "coverage",
    "build_arch",
    "flash_archs",
    "flash_url_cuda_tag",
]


@dataclass(frozen=True, slots=True)
class TorchOption:
    """One installable torch build: release x CUDA variant x where it comes from."""

    release: TorchRelease
    tag: str  # cu121 / cpu
    cuda: Version | None
    arch: ArchList
    index_url: str
    from_pypi: bool
    cxx11_abi: bool | None
    unverified: tuple[str, ...]  # facts about this build that upstream did not confirm (ranked below verified)
    assumptions: tuple[str, ...] = ()  # unconfirmed facts shared by every build on the platform (reported, not ranked)

    @property
    def version(self) -> str:
        """Return torch's version as ``torch.__version__`` prints it (``2.1.0+cu121``)."""
        return f"{self.release.version}+{self.tag}"

    def is_installed(self, installed: str | None) -> bool:
        """Return whether ``installed`` (``torch.__version__``, or a PyPI dist version without a tag) is this build."""
        if not installed:
            return False
        if "+" in installed:
            return installed == self.version
        return self.from_pypi and installed == str(self.release.version)

    @property
    def requirement(self) -> str:
        """Return the pin pip needs: PyPI serves torch without a local tag, the PyTorch index with one."""
        if self.from_pypi:
            return f"torch=={self.release.version}"
        return f"torch=={self.version}"


def integrated_gpus(target: Target, matrix: Matrix) -> list[str]:
    """Return the target's integrated (Jetson / Tegra) GPUs, by name; a bare compute capability counts when every GPU
    of that capability in ``gpus.toml`` is integrated (8.7 is only Orin)."""
    from resolver.gpus import find_gpu_row

    out = []
    for g in target.gpus:
        row = find_gpu_row(g.name, matrix)
        if row is not None:
            integrated = row.integrated
        else:
            same = [r for r in matrix.gpus if r.compute_capability == g.compute_capability]
            integrated = bool(same) and all(r.integrated for r in same)
        if integrated:
            out.append(g.name)
    return out


def wheel_problem(matrix: Matrix, package: str, version: Version | str, target: Target) -> str | None:
    """Return why the target cannot install ``package`` ``version``'s PyPI wheel (Python, platform, glibc), or
    ``None`` when it can or when ``wheels.toml`` does not record that release (the caller decides what unknown means).

    A wheel installs when a CPython tag matches the target's Python (or is abi3 below it) and, on Linux, its
    manylinux floor is at or below the target's glibc (PEP 600); an unknown glibc is not checked.
    """
    facts = matrix.wheel_facts(package, version, target.platform)
    if facts is None:
        return None
    if not facts.python_ok(target.python):
        have = ", ".join(facts.pythons) + (" and later (abi3)" if facts.abi3 else "")
        return f"{package} {version} has no {target.platform} wheel for Python {target.python} (only {have})"
    if facts.glibc is not None and target.glibc is not None and target.glibc < facts.glibc:
        assumed = " (assumed; pass --glibc)" if target.glibc_assumed else ""
        return (f"{package} {version} {target.platform} wheels are {facts.platform_tag}: they need glibc {facts.glibc}, "
                f"the target has {target.glibc}{assumed}")
    return None


def torch_release_problem(rel: TorchRelease, target: Target, matrix: Matrix) -> str | None:
    """Return why no torch ``rel`` wheel installs on the target's platform, Python and glibc, or ``None``.

    Read from ``wheels.toml`` (PyPI's files per platform). PyTorch-index builds of a release share the PyPI wheel's
    tags on each platform (the same manylinux build scripts); a release ``wheels.toml`` lacks falls back to the
    Linux x86_64 Python list of ``torch.toml``.
    """
    if matrix.wheel_facts("torch", rel.version, target.platform) is None:
        return None if target.python in rel.pythons else f"no wheels for Python {target.python}"
    return wheel_problem(matrix, "torch", rel.version, target)


def torch_options(rel: TorchRelease, target: Target) -> list[TorchOption]:
    """Return the builds of ``rel`` for the target's platform, highest CUDA first (CPU build for a CPU target)."""
    plat = target.platform
    abi: bool | None = rel.cxx11_abi if plat == "linux_x86_64" else None
    if plat == "linux_aarch64":
        abi = rel.version >= Version("2.6")  # aarch64 PyPI wheels moved to the new ABI at 2.6.0 (torch.toml meta)
    if target.is_cpu:
        if rel.pypi_cuda.get(plat) == "cpu":
            return [TorchOption(rel, "cpu", None, ArchList(), PYPI_SIMPLE, True, abi, ())]
        return [TorchOption(rel, "cpu", None, ArchList(), f"{PYTORCH_INDEX}/cpu", False, abi, ())]
    out: list[TorchOption] = []
    for v in rel.variants:
        unverified = [f"torch {rel.version}+{v.tag}: {v.note or 'variant not confirmed upstream'}"] if v.unverified else []
        if plat == "linux_x86_64":
            if rel.pypi_cuda[plat] == v.tag:
                out.append(TorchOption(rel, v.tag, v.cuda, rel.pypi_arch[plat], PYPI_SIMPLE, True, abi, tuple(unverified)))
            else:
                out.append(TorchOption(rel, v.tag, v.cuda, v.arch, f"{PYTORCH_INDEX}/{v.tag}", False, abi, tuple(unverified)))
        elif plat == "linux_aarch64":
            if rel.pypi_cuda[plat] == v.tag and plat in rel.pypi_arch:
                out.append(TorchOption(rel, v.tag, v.cuda, rel.pypi_arch[plat], PYPI_SIMPLE, True, abi, tuple(unverified)))
            elif v.arch_aarch64 is not None:
                assumed = (f"torch {rel.version}+{v.tag} aarch64 arch list comes from PyTorch build PRs and RFC tables, not the wheel",)
                out.append(TorchOption(rel, v.tag, v.cuda, v.arch_aarch64, f"{PYTORCH_INDEX}/{v.tag}", False, abi,
                                       tuple(unverified), assumed))
        else:  # win_amd64: PyPI serves CPU builds only; CUDA builds come from the PyTorch index
            assumed = (f"torch {rel.version}+{v.tag} Windows wheel assumed to match the Linux arch list",)
            out.append(TorchOption(rel, v.tag, v.cuda, v.arch, f"{PYTORCH_INDEX}/{v.tag}", False, abi,
                                   tuple(unverified), assumed))
    return out


def driver_problem(target: Target, cuda: Version, matrix: Matrix, *, ptx: bool = False) -> str | None:
    """Return why the target's driver cannot run a CUDA ``cuda`` build, or ``None`` when it can (or is unknown).

    Minor-version compatibility lets a driver of the major's floor run any build of that major; PTX JIT is not
    covered by it and needs the toolkit's own driver.
    """
    if target.driver is None:
        return None
    windows = target.platform == "win_amd64"
    compat = matrix.compat(cuda.major)
    if compat is None:
        return f"no driver table for CUDA {cuda.major}"
    floor = compat.min_driver_windows if windows else compat.min_driver_linux
    if target.driver < floor:
        return f"driver {format_driver(target.driver)} is older than {format_driver(floor)}, the minimum for CUDA {cuda.major}.x builds"
    if ptx:
        minor = matrix.cuda_minor(cuda)
        ga = None if minor is None else (minor.ga_min_driver_windows if windows else minor.ga_min_driver_linux)
        if ga is not None and target.driver < ga:
            return (f"driver {format_driver(target.driver)} cannot JIT PTX from CUDA {cuda} "
                    f"(needs {format_driver(ga)}, the toolkit's own driver)")
    return None


def coverage(arch: ArchList, target: Target) -> tuple[list[ComputeCapability], list[ComputeCapability]]:
    """Return (GPUs with no code at all, GPUs served only by PTX) for ``arch``."""
    missing = [cc for cc in target.capabilities if arch.covers(cc) is None]
    ptx = [cc for cc in target.capabilities if arch.covers(cc) == "ptx"]
    return missing, ptx


def build_arch(cc: ComputeCapability, nvcc_sms: frozenset[ComputeCapability]) -> ComputeCapability | None:
    """Return the SASS target to build for ``cc`` with an nvcc that can target ``nvcc_sms``.

    The GPU's own capability when nvcc knows it, else the highest of the same major below it (an ``8.6`` cubin runs
    on ``8.9``), else ``None``.
    """
    if cc in nvcc_sms:
        return cc
    same = [s for s in nvcc_sms if s.major == cc.major and s.minor <= cc.minor]
    return max(same) if same else None


_FLASH_ARCH = {8: "80", 9: "90", 10: "100", 12: "120"}


def flash_archs(caps: tuple[ComputeCapability, ...]) -> str | None:
    """Return ``FLASH_ATTN_CUDA_ARCHS`` for the GPUs (it knows only 80/90/100/120: 8.6 and 8.9 get 80), or ``None``."""
    out = []
    for cc in caps:
        arch = _FLASH_ARCH.get(cc.major)
        if arch is None:
            return None
        if arch not in out:
            out.append(arch)
    return ";".join(sorted(out, key=int))


def flash_url_cuda_tag(rel: FlashRelease, cuda: Version) -> str:
    """Return the ``cuXYZ`` part of the wheel name flash-attn's setup.py asks for, given torch's CUDA."""
    rule = rel.cuda_tag_rule
    if rule == "cu{major}":
        return f"cu{cuda.major}"
    if rule.startswith("pinned:"):
        for pin in rule.removeprefix("pinned:").split(","):
            p = Version(pin)
            if p.major == cuda.major:
                return f"cu{p.major}{p.minor}"
    return f"cu{cuda.major}{cuda.minor}"


def flash_wheel_matches(rel: FlashRelease, cuda_build: Version, torch_cuda: Version) -> bool:
    """Return whether a wheel built with ``cuda_build`` is the one setup.py picks for torch built with ``torch_cuda``."""
    if rel.cuda_tag_rule == "cu{major}" or rel.cuda_tag_rule.startswith("pinned:"):
        return cuda_build.major == torch_cuda.major
    return (cuda_build.major, cuda_build.minor) == (torch_cuda.major, torch_cuda.minor)
