"""The one place that answers compatibility questions, from the matrices. Pure: data in, answers out.

Every command asks these functions and none re-derives them:

* GPU x torch build: ``coverage`` (SASS, PTX or nothing per GPU).
* driver x CUDA: ``driver_floor`` / ``driver_refusal`` (exact driver versions, NVIDIA's minor-version compatibility,
  the toolkit's own driver for PTX JIT); ``runtime_cuda_problem`` for a driver known only by the CUDA it reports.
* torch's C++ ABI per platform: ``torch_cxx11_abi``.
* xformers wheel x Python / platform / torch CUDA: ``xformers_wheel_tags_ok``, ``xformers_platform_ok``,
  ``xformers_index_variant``, ``xformers_off_pin_ok``, ``xformers_fmha_min_cc``, ``xformers_git_url``.
* flash-attn release x GPUs / torch build: ``flash_gpu_refusal``, ``flash_wheel`` (the per-release CUDA tag rule;
  check-upgrade asks the solver itself), ``flash_wheel_glibc_refusal`` (the build OS's glibc), ``flash_wheel_url``, ``flash_build_archs`` / ``flash_archs_value``
  (``FLASH_ATTN_CUDA_ARCHS``), ``flash_archs_env_honoured``.
* which architectures a source build targets for the GPUs: ``build_archs`` (per GPU ``build_arch``: its own, else
  the highest of its major below it), for nvcc's list, flash-attn's and each attention kernel's alike.
* one build job: ``build_job`` / ``max_jobs`` (RAM per job and nvcc threads from ``matrices/build.toml``).
* a PyPI wheel x Python / platform / glibc: ``wheel_refusal``, ``torch_release_refusal`` (``wheels.toml``).
* attention kernels of ``attention.toml`` (FA3, flash-attn-4, SageAttention, flash-attn 1) x target / torch build:
  ``attention_target_problem`` (platform, Python, compute capability range), ``attention_cuda_problem`` (CUDA major,
  torch floor, nvcc floors of a source build, per arch), ``attention_build_arch`` (the arch list a source build targets).
* the nvcc that runs a source build (the target's, else torch's CUDA), which every toolkit floor is checked against:
  ``build_nvcc`` / ``nvcc_refusal``.
* integrated (Jetson / Tegra) GPUs, which PyPI / PyTorch-index CUDA wheels are not for: ``integrated_gpus``.
* how a pin is spelled: ``torch_pin``.

Each check that can fail returns ``None`` when the candidate fits, else a ``Refusal`` (``resolver.refusal``: a kind,
the facts involved and the text rendered from them); callers that print read its ``text``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Literal

from packaging.version import Version

from resolver.matrix_types import AttentionRelease, BuildJob, FlashRelease, FlashWheelRow, Matrix, TorchRelease, XformersRelease
from resolver.models import PYPI_SIMPLE, ArchList, ComputeCapability, Target, format_driver, python_tag, spec_allows
from resolver.refusal import Refusal, refusal

__all__ = [
    "Coverage",
    "coverage",
    "driver_floor",
    "driver_refusal",
    "runtime_cuda_problem",
    "attention_target_problem",
    "attention_cuda_problem",
    "attention_build_arch",
    "nvcc_refusal",
    "build_nvcc",
    "wheel_refusal",
    "integrated_gpus",
    "gpu_driver_refusals",
    "torch_release_refusal",
    "torch_cxx11_abi",
    "torch_pin",
    "build_arch",
    "build_archs",
    "xformers_wheel_tags_ok",
    "xformers_platform_ok",
    "xformers_index_variant",
    "xformers_off_pin_ok",
    "xformers_fmha_min_cc",
    "xformers_git_url",
    "flash_gpu_refusal",
    "flash_url_cuda_tag",
    "flash_wheel_matches",
    "flash_wheel",
    "flash_wheel_sass",
    "flash_wheel_url",
    "flash_wheel_glibc_refusal",
    "flash_build_archs",
    "flash_archs_value",
    "torch_arch_list",
    "flash_archs_env_honoured",
    "build_job",
    "job_gib",
    "max_jobs",
]

Coverage = Literal["sass", "ptx"]


# --- GPU x build ------------------------------------------------------------------------------------------------------


def coverage(arch: ArchList, caps: Iterable[ComputeCapability]) -> tuple[list[ComputeCapability], list[ComputeCapability]]:
    """Return (GPUs with no code at all, GPUs served only by PTX) of a build with ``arch``."""
    missing: list[ComputeCapability] = []
    ptx: list[ComputeCapability] = []
    for cc in caps:
        how = arch.covers(cc)
        if how is None:
            missing.append(cc)
        elif how == "ptx":
            ptx.append(cc)
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


def build_archs(caps: Iterable[ComputeCapability],
                known: Iterable[ComputeCapability]) -> tuple[list[ComputeCapability], ComputeCapability | None]:
    """Return (the architectures a source build targets for the GPUs ``caps``, sorted and distinct, None) or
    ([], the first GPU none of them serves), given the architectures the builder ``known``s (nvcc's, or the arch
    list of a package's setup.py): per GPU ``build_arch``. The one rule every source build's arch list follows."""
    sms = frozenset(known)
    out: list[ComputeCapability] = []
    for cc in caps:
        arch = build_arch(cc, sms)
        if arch is None:
            return [], cc
        if arch not in out:
            out.append(arch)
    return sorted(out), None


# --- driver x CUDA ----------------------------------------------------------------------------------------------------


def driver_floor(cuda: Version | str | None, matrix: Matrix, platform: str, *, jit: bool = False) -> Version | None:
    """Return the oldest driver that runs CUDA ``cuda`` builds on ``platform``, or ``None`` (CPU, or unknown CUDA).

    Minor-version compatibility lets the floor of the CUDA major run any build of that major; ``jit`` (PTX JIT
    compilation) needs the toolkit's own driver instead (its GA driver), so the higher of the two.
    """
    if cuda is None or cuda == "":
        return None
    v = Version(str(cuda))
    windows = platform.startswith("win")
    compat = matrix.compat(v.major)
    minor = matrix.cuda_minor(v)
    ga = None if minor is None else (minor.ga_min_driver_windows if windows else minor.ga_min_driver_linux)
    floor = None if compat is None else (compat.min_driver_windows if windows else compat.min_driver_linux)
    if jit and ga is not None:
        return max(ga, floor) if floor is not None else ga
    return floor if floor is not None else ga


def driver_refusal(driver: Version | None, cuda: Version, matrix: Matrix, platform: str, *, ptx: bool = False,
                   package: str = "torch", candidate: str = "") -> Refusal | None:
    """Return why ``driver`` cannot run a CUDA ``cuda`` build on ``platform`` (kind ``driver``: facts driver,
    driver_floor, cuda); ``None`` when it can or is unknown."""
    if driver is None:
        return None
    if matrix.compat(cuda.major) is None and matrix.cuda_minor(cuda) is None:
        return refusal(package, candidate, "driver", "no driver table for CUDA {cuda_major}", cuda=cuda,
                       cuda_major=cuda.major, driver=format_driver(driver))
    floor = driver_floor(cuda, matrix, platform)
    if floor is not None and driver < floor:
        return refusal(package, candidate, "driver",
                       "driver {driver} is older than {driver_floor}, the minimum for CUDA {cuda_major}.x builds",
                       driver=format_driver(driver), driver_floor=format_driver(floor), cuda=cuda, cuda_major=cuda.major)
    if ptx:
        jit = driver_floor(cuda, matrix, platform, jit=True)
        if jit is not None and driver < jit:
            return refusal(package, candidate, "driver",
                           "driver {driver} cannot JIT PTX from CUDA {cuda} (needs {driver_floor}, the toolkit's own driver)",
                           driver=format_driver(driver), driver_floor=format_driver(jit), cuda=cuda, ptx="true")
    return None


def runtime_cuda_problem(driver_cuda: Version, cuda: Version) -> tuple[bool, str | None]:
    """Return (runs, caveat) for a build of CUDA ``cuda`` under a driver that reports CUDA ``driver_cuda``.

    A driver runs builds of its own CUDA major up to its minor and, by minor-version compatibility, newer minors
    of that major, without PTX JIT (caveat). An older major does not run at all.
    """
    if driver_cuda.major < cuda.major:
        return False, None
    if driver_cuda.major == cuda.major and (driver_cuda.major, driver_cuda.minor) < (cuda.major, cuda.minor):
        return True, "minor-version compatibility: no PTX JIT"
    return True, None


# --- torch ------------------------------------------------------------------------------------------------------------


def torch_cxx11_abi(rel: TorchRelease, platform: str, matrix: Matrix) -> bool | None:
    """Return whether ``rel``'s wheels for ``platform`` use the new C++ ABI (``None``: not a Linux platform)."""
    if platform == "linux_x86_64":
        return rel.cxx11_abi
    if platform == "linux_aarch64":
        switch = matrix.facts.torch_aarch64_abi_from
        return rel.cxx11_abi if switch is None else rel.version >= switch
    return None


def torch_pin(version: str, index_url: str | None) -> str:
    """Return the pin pip needs for torch ``version``: PyPI serves it without a local tag, the PyTorch index with."""
    if index_url == PYPI_SIMPLE:
        return f"torch=={version.split('+')[0]}"
    return f"torch=={version}"


# --- wheels x Python / platform / glibc (wheels.toml) -----------------------------------------------------------------


def gpu_driver_refusals(target: Target, matrix: Matrix) -> list[Refusal]:
    """Return one refusal (kind ``driver``) per GPU of the target that its driver cannot drive: the driver's branch
    (its major) is older than the architecture's first branch or newer than its last (``gpus.toml
    [[driver_support]]``). Facts: gpu, architecture, compute_capability, driver, driver_range and ``suggested``, the
    matrix's own driver (a CUDA toolkit's GA driver, ``cuda.toml``, of the target's OS) nearest inside the range, or
    "". A Linux driver's branch is its major. A Windows driver's is not (572.83 is R570): it lies between the branch
    of the newest toolkit whose Windows GA driver it reaches (``windows_branches``) and its own major (platforms.toml
    ``[windows_driver]``), and only a bound outside that span refuses it. An unknown driver or GPU is not checked, nor
    a machine read here (``Target.source`` detected, or verify's probe) with the driver it read: its driver lists its
    GPUs, better evidence than a conservative bound. Described targets are checked: --gpu, a lock's, a fleet's
    classes, and a driver described over a machine read here (``Target.driver_described``: ``plan --driver X``)."""
    read_here = target.source in ("detected", "verify") and not target.driver_described
    windows = target.platform == "win_amd64"
    if target.driver is None or not (target.platform.startswith("linux_") or windows) or read_here:
        return []
    if windows:  # the toolkits' Windows drivers, each with its Linux twin's branch
        pairs = windows_branches(matrix)
        known = [w for w, _ in pairs]
        lowest = max((b for w, b in pairs if w <= target.driver), default=None)  # its branch is at least this
        highest: int | None = target.driver.major  # and at most its major
        branch_text = f"Windows, R{lowest} or newer" if lowest is not None else "Windows"
        branch_of = dict(pairs)
    else:
        known = sorted({c.ga_min_driver_linux for c in matrix.cuda if c.ga_min_driver_linux is not None})
        lowest = highest = target.driver.major
        branch_text = f"R{lowest}"
        branch_of = {v: v.major for v in known}
    out = []
    for g in sorted(target.gpus, key=lambda g: (g.compute_capability, g.name)):
        row = next((d for d in matrix.driver_support if g.compute_capability in d.capabilities), None)
        if row is None:
            continue
        first, last = row.first_branch, row.last_branch
        if first is not None and highest is not None and highest < first:
            rng = f"R{first} or newer"
            suggested = next((format_driver(v) for v in known if branch_of[v] >= first
                              and (last is None or branch_of[v] <= last)), "")
        elif last is not None and lowest is not None and lowest > last:
            rng = f"R{last} or older"
            suggested = next((format_driver(v) for v in reversed(known) if branch_of[v] <= last
                              and (first is None or branch_of[v] >= first)), "")
        else:
            continue
        out.append(refusal("", g.name, "driver", "driver {driver} ({driver_branch}) cannot drive {gpu} ({architecture}, "
                           "{sm}): NVIDIA drives it with {driver_range} drivers", driver=format_driver(target.driver),
                           branch=lowest if lowest is not None else "", driver_branch=branch_text, gpu=g.name, architecture=row.architecture, sm=g.compute_capability.sm,
                           compute_capability=g.compute_capability, driver_range=rng, suggested=suggested,
                           source=row.source))
    return list({r.text: r for r in out}.values())  # two GPUs of one name: said once


def windows_branches(matrix: Matrix) -> list[tuple[Version, int]]:
    """Return each CUDA toolkit's Windows GA driver with the branch of its Linux twin (``cuda.toml``: 551.61 with
    550.54.14 -> R550), oldest first. NVIDIA numbers a branch's Windows drivers above its older branches' (a Windows
    driver that reaches 496.04, CUDA 11.5's, is of R495 or newer; platforms.toml ``[windows_driver] branch_rule``)."""
    pairs = {c.ga_min_driver_windows: c.ga_min_driver_linux.major for c in matrix.cuda
             if c.ga_min_driver_windows is not None and c.ga_min_driver_linux is not None}
    return sorted(pairs.items())


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


def wheel_refusal(matrix: Matrix, package: str, version: Version | str, target: Target) -> Refusal | None:
    """Return why the target cannot install ``package`` ``version``'s PyPI wheel (kind ``python``: facts python,
    pythons; kind ``glibc``: facts glibc, glibc_needed, platform_tag), or ``None`` when it can or when
    ``wheels.toml`` does not record that release (the caller decides what unknown means).

    A wheel installs when a CPython tag matches the target's Python (or is abi3 below it) and, on Linux, its
    manylinux floor is at or below the target's glibc (PEP 600); an unknown glibc is not checked.
    """
    facts = matrix.wheel_facts(package, version, target.platform)
    if facts is None:
        return None
    if not facts.python_ok(target.python):
        have = ", ".join(facts.pythons) + (" and later (abi3)" if facts.abi3 else "")
        return refusal(package, str(version), "python",
                       "{package} {version} has no {platform} wheel for Python {python} (only {pythons})",
                       package=package, version=version, platform=target.platform, python=target.python, pythons=have)
    if facts.glibc is not None and target.glibc is not None and target.glibc < facts.glibc:
        assumed = " (assumed; pass --glibc)" if target.glibc_assumed else ""
        return refusal(package, str(version), "glibc",
                       "{package} {version} {platform} wheels are {platform_tag}: they need glibc {glibc_needed}, "
                       "the target has {glibc}{assumed}", package=package, version=version, platform=target.platform,
                       platform_tag=facts.platform_tag, glibc_needed=facts.glibc, glibc=target.glibc, assumed=assumed)
    return None


def torch_release_refusal(rel: TorchRelease, target: Target, matrix: Matrix) -> Refusal | None:
    """Return why no torch ``rel`` wheel installs on the target's platform, Python and glibc, or ``None``.

    Read from ``wheels.toml`` (PyPI's files per platform). PyTorch-index builds of a release share the PyPI wheel's
    tags on each platform (the same manylinux build scripts); a release ``wheels.toml`` lacks falls back to the
    Linux x86_64 Python list of ``torch.toml``.
    """
    if matrix.wheel_facts("torch", rel.version, target.platform) is None:
        if target.python in rel.pythons:
            return None
        return refusal("torch", str(rel.version), "python", "no wheels for Python {python}", python=target.python,
                       pythons=", ".join(rel.pythons))
    return wheel_refusal(matrix, "torch", rel.version, target)


# --- xformers ---------------------------------------------------------------------------------------------------------


def xformers_wheel_tags_ok(x: XformersRelease, python: str) -> bool:
    """Return whether a PyPI wheel of ``x`` installs on Python ``python`` (its cpXY tags, or abi3 from 3.9)."""
    if x.abi3:
        return Version(python) >= Version("3.9")
    return python_tag(python) in x.python_tags


def xformers_platform_ok(x: XformersRelease, platform: str) -> bool:
    """Return whether PyPI has a wheel of ``x`` for ``platform``."""
    if platform == "win_amd64":
        return "win_amd64" in x.platforms
    if platform == "linux_x86_64":
        return any(p.endswith("x86_64") and p.startswith("manylinux") for p in x.platforms) or "any" in x.platforms
    return "any" in x.platforms


def xformers_index_variant(x: XformersRelease, cuda: Version) -> str | None:
    """Return the PyTorch-index build of ``x`` for a torch of CUDA ``cuda``: the same tag, else the newest build of
    the same CUDA major not newer than it (the extension must find libcudart of its own major)."""
    if not x.index_variants:
        return None
    exact = f"cu{cuda.major}{cuda.minor}"
    if exact in x.index_variants:
        return exact
    same = [t for t in x.index_variants if t.startswith(f"cu{cuda.major}") and len(t) == len(exact) and t <= exact]
    return max(same) if same else None


def xformers_off_pin_ok(x: XformersRelease, torch_version: Version) -> bool:
    """Return whether ``x`` may be built from source against a torch its wheels do not pin.

    Only inside the range its developers vouched for: at or above the source tree's own torch floor and below the
    torch its wheels pin (building an old xformers against a newer torch meets API changes nobody tested).
    """
    if x.source_torch is None or not spec_allows(x.source_torch, torch_version):
        return False
    pins = [s.version for s in x.torch if s.operator in ("==", ">=", "~=")]
    return bool(pins) and all(torch_version < Version(p) for p in pins)


def xformers_fmha_min_cc(matrix: Matrix) -> ComputeCapability | None:
    """Return the compute capability below which xformers' memory_efficient_attention finds no operator."""
    return matrix.facts.xformers_fmha_min_cc


def xformers_git_url(x: XformersRelease, matrix: Matrix) -> str:
    """Return the git requirement URL a source build of ``x`` installs (template: xformers.toml ``git_url``, at the
    release's ``git_tag``, else ``v{version}``); a lock pins it to ``git_tag_commit`` (``Matrix.git_commit``)."""
    return matrix.facts.xformers_git_url.format(tag=x.git_tag or f"v{x.version}")


# --- flash-attn -------------------------------------------------------------------------------------------------------


def flash_gpu_refusal(f: FlashRelease, caps: Sequence[ComputeCapability]) -> Refusal | None:
    """Return why flash-attn release ``f`` refuses one of the GPUs at run time (kind ``compute_capability``: facts
    min_cc, max_cc, compute_capability), or ``None``."""
    low = [cc for cc in caps if cc < f.min_cc]
    if low:
        return refusal("flash-attn", str(f.version), "compute_capability",
                       "flash-attn needs compute capability {min_cc}; {compute_capability} is below",
                       min_cc=f.min_cc, compute_capability=", ".join(str(c) for c in low))
    if f.max_cc is not None:
        high = [cc for cc in caps if cc > f.max_cc]
        if high:
            return refusal("flash-attn", str(f.version), "compute_capability",
                           "flash-attn {version} rejects compute capability {compute_capability} at run time "
                           "(it accepts {min_cc}–{max_cc})", version=f.version,
                           compute_capability=", ".join(str(c) for c in high), min_cc=f.min_cc, max_cc=f.max_cc)
    return None


def flash_url_cuda_tag(f: FlashRelease, cuda: Version) -> str:
    """Return the ``cuXYZ`` part of the wheel name flash-attn's setup.py asks for, given torch's CUDA."""
    rule = f.cuda_tag_rule
    if rule == "cu{major}":
        return f"cu{cuda.major}"
    if rule.startswith("pinned:"):
        for pin in rule.removeprefix("pinned:").split(","):
            p = Version(pin)
            if p.major == cuda.major:
                return f"cu{p.major}{p.minor}"
    return f"cu{cuda.major}{cuda.minor}"


def flash_wheel_matches(f: FlashRelease, cuda_build: Version, torch_cuda: Version) -> bool:
    """Return whether a wheel built with ``cuda_build`` is the one setup.py picks for torch built with ``torch_cuda``."""
    if f.cuda_tag_rule == "cu{major}" or f.cuda_tag_rule.startswith("pinned:"):
        return cuda_build.major == torch_cuda.major
    return (cuda_build.major, cuda_build.minor) == (torch_cuda.major, torch_cuda.minor)


def flash_wheel(f: FlashRelease, torch: Version, torch_cuda: Version, cxx11_abi: bool | None, python: str,
                platform: str) -> FlashWheelRow | None:
    """Return the prebuilt wheel setup.py downloads for torch ``torch`` (CUDA ``torch_cuda``, ABI ``cxx11_abi``) on
    Python ``python`` / ``platform``, or ``None`` when its CI published none (the per-release CUDA tag rule)."""
    py = ".".join(python.split(".")[:2])
    for w in _wheel_rows(f, (torch.major, torch.minor), py, platform):
        if w.cxx11_abi == bool(cxx11_abi) and flash_wheel_matches(f, w.cuda_build, torch_cuda):
            return w
    return None


def flash_wheel_glibc_refusal(f: FlashRelease, w: FlashWheelRow, target: Target) -> Refusal | None:
    """Return why the target's glibc cannot load flash-attn wheel ``w`` (kind ``glibc``), or ``None``: the wheel
    needs the glibc of the OS its CI built it on (``FlashWheelRow.glibc``, platforms.toml ``[[os]]`` of its ``wheel_matrix_os``),
    which its plain ``linux_x86_64`` tag does not tell pip. An unknown glibc is not checked (as ``wheel_refusal``)."""
    if w.glibc is None or target.glibc is None or target.glibc >= w.glibc:
        return None
    assumed = " (assumed; pass --glibc)" if target.glibc_assumed else ""
    return refusal("flash-attn", str(f.version), "glibc", "its GitHub wheel for torch {torch_minor} needs glibc "
                   "{glibc_needed} (the glibc of the OS it was built on; its plain {platform_tag} tag does not say so), "
                   "the target has {glibc}{assumed}", torch_minor=f"{w.torch.major}.{w.torch.minor}",
                   platform_tag=w.platform, glibc_needed=w.glibc, glibc=target.glibc, assumed=assumed)


@functools.lru_cache(maxsize=256)
def _wheel_index(f: FlashRelease) -> dict[tuple[int, int, str, str], list[FlashWheelRow]]:
    """Return ``f``'s wheels by (torch major, torch minor, Python, platform), built once per release (a release row
    is its own key: ``eq=False``)."""
    index: dict[tuple[int, int, str, str], list[FlashWheelRow]] = {}
    for w in f.wheels:
        index.setdefault((w.torch.major, w.torch.minor, w.python, w.platform), []).append(w)
    return index


def _wheel_rows(f: FlashRelease, minor: tuple[int, int], python: str, platform: str) -> list[FlashWheelRow]:
    """Return ``f``'s wheels for one torch minor, Python and platform (a solve asks often)."""
    return _wheel_index(f).get((*minor, python, platform), [])


def flash_wheel_sass(f: FlashRelease, w: FlashWheelRow) -> ArchList:
    """Return the SASS a wheel carries (releases without a per-CUDA row: sm_80 and sm_90, flash_attn.toml)."""
    return f.wheel_sass.get(str(w.cuda_build), ArchList.parse("8.0;9.0"))


def flash_wheel_url(f: FlashRelease, torch: Version, torch_cuda: Version, cxx11_abi: bool | None, python: str,
                    platform: str, matrix: Matrix) -> str:
    """Return the GitHub release URL of the wheel ``flash_wheel`` found (template: flash_attn.toml ``wheel_url``)."""
    py = python_tag(python)
    return matrix.facts.flash_wheel_url.format(
        tag=f.git_tag or f"v{f.version}", version=f.version, cuda_tag=flash_url_cuda_tag(f, torch_cuda),
        torch_minor=f"{torch.major}.{torch.minor}", abi="TRUE" if cxx11_abi else "FALSE", py=py, platform=platform)


def flash_build_archs(caps: Iterable[ComputeCapability], matrix: Matrix) -> list[ComputeCapability] | None:
    """Return the architectures flash-attn's setup.py builds for the GPUs (``build_archs`` over the ones it knows:
    8.6 and 8.9 get 8.0), or ``None`` when a GPU has none."""
    archs, unserved = build_archs(caps, matrix.facts.flash_cuda_archs)
    return None if unserved is not None else archs


def flash_archs_value(archs: Iterable[ComputeCapability]) -> str:
    """Return ``FLASH_ATTN_CUDA_ARCHS`` for the architectures ``flash_build_archs`` chose, in flash-attn's spelling
    (``80;90``)."""
    return ";".join(f"{a.major}{a.minor}" for a in archs)


def torch_arch_list(caps: Iterable[ComputeCapability]) -> str:
    """Return ``TORCH_CUDA_ARCH_LIST`` for native code on ``caps``, in torch's spelling (``8.0;9.0``)."""
    return ";".join(str(c) for c in sorted(set(caps)))


def flash_archs_env_honoured(f: FlashRelease, matrix: Matrix) -> bool:
    """Return whether ``f``'s setup.py reads ``FLASH_ATTN_CUDA_ARCHS`` (older ones always build sm_80 + sm_90)."""
    since = matrix.facts.flash_cuda_archs_env_from
    return since is not None and f.version >= since


# --- build resources --------------------------------------------------------------------------------------------------

_DEFAULT_JOB = BuildJob("*", 2.0, 1, "built-in default when matrices/build.toml has no row")


def build_job(package: str, matrix: Matrix) -> BuildJob:
    """Return what one compile job of ``package`` needs (RAM per nvcc thread, nvcc threads per job)."""
    return matrix.build_job(package) or _DEFAULT_JOB


def job_gib(package: str, matrix: Matrix, nvcc_threads: int | None = None) -> float:
    """Return the RAM one compile job of ``package`` needs: GiB per nvcc thread x threads (its row's by default)."""
    job = build_job(package, matrix)
    return job.gib_per_job * (nvcc_threads or job.nvcc_threads)


def max_jobs(package: str, matrix: Matrix, cores: int | None, mem_gib: float | None, *,
             nvcc_threads: int | None = None) -> int:
    """Return ``MAX_JOBS`` for building ``package`` on a machine with ``cores`` and ``mem_gib`` free RAM: bounded by
    the cores and by RAM per job (``None`` RAM: cores only; ``None`` cores: 1). At least 1."""
    by_cores = cores if cores and cores > 0 else 1
    if mem_gib is None:
        return max(1, by_cores)
    by_ram = int(mem_gib // job_gib(package, matrix, nvcc_threads))
    return max(1, min(by_cores, by_ram))


# --- attention kernels (matrices/attention.toml): FA3, flash-attn-4, SageAttention 1.x / 2.x, flash-attn 1.x --------


def attention_target_problem(a: AttentionRelease, target: Target) -> Refusal | None:
    """Return why ``a`` cannot run on the target whatever torch is chosen (kinds ``platform``, ``python``,
    ``compute_capability``), or ``None``."""
    def refused(kind: str, template: str, **facts: object) -> Refusal:
        return refusal(a.name, str(a.version), kind, template, title=a.title, version=a.version, **facts)

    if target.platform not in a.platforms:
        return refused("platform", "{title} {version} is not built for {platform} (only {platforms})",
                       platform=target.platform, platforms=", ".join(a.platforms))
    if not spec_allows(a.requires_python, target.python + ".0"):
        return refused("python", "{title} {version} needs Python{requires_python}", requires_python=a.requires_python,
                       python=target.python)
    low = [cc for cc in target.capabilities if cc < a.min_cc]
    high = [cc for cc in target.capabilities if a.max_cc_major is not None and cc.major > a.max_cc_major]
    if low or high:
        where = f"compute capability {a.min_cc}" + (f" to {a.max_cc_major}.x" if a.max_cc_major is not None else " or newer")
        if a.max_cc_major == a.min_cc.major and a.min_cc.major >= 9:
            where = f"{a.min_cc.sm} only"
        return refused("compute_capability", "{title} {version} runs on {where}; this target has {gpus}", where=where,
                       gpus=", ".join(f"{cc} ({cc.sm})" for cc in low + high), min_cc=a.min_cc,
                       max_cc_major="" if a.max_cc_major is None else a.max_cc_major,
                       compute_capability=", ".join(str(cc) for cc in low + high))
    return None


def nvcc_refusal(nvcc: Version | None, package: str, candidate: str, torch_version: str,
                 cuda: Version) -> Refusal | None:
    """Return why the target's ``nvcc`` cannot build ``package`` against torch ``torch_version`` (CUDA ``cuda``):
    kind ``toolkit``, facts nvcc, torch, cuda (torch's) and cuda_major (the toolkit major it needs; only this
    refusal has it); ``None`` when it can or is unknown."""
    if nvcc is None or nvcc.major == cuda.major:
        return None
    return refusal(package, candidate, "toolkit",
                   "nvcc {nvcc} cannot build against torch {torch} (CUDA {cuda_major} needs nvcc {cuda_major}.x)",
                   nvcc=nvcc, torch=torch_version, cuda=cuda, cuda_major=cuda.major)


def attention_cuda_problem(a: AttentionRelease, torch_version: str, torch_release: Version, cuda: Version | None,
                           target: Target) -> Refusal | None:
    """Return why ``a`` does not fit beside the torch build ``torch_version`` (release ``torch_release``, CUDA
    ``cuda``; None = CPU build) on the target: CUDA major (kind ``variant``), torch floor (``torch_pin``), and for a
    source build the nvcc that would build it (the target's, else torch's CUDA) against the release's floors, overall
    and per GPU arch (``toolkit``)."""
    def refused(kind: str, template: str, **facts: object) -> Refusal:
        return refusal(a.name, str(a.version), kind, template, title=a.title, version=a.version, torch=torch_version,
                       **facts)

    if cuda is None:
        return refused("variant", "{title} needs a CUDA build of torch")
    if a.cuda_majors and cuda.major not in a.cuda_majors:
        return refused("variant", "{title} {version} works with CUDA {cuda_majors} builds of torch; torch {torch} is CUDA {cuda}",
                       cuda_majors=" or ".join(str(m) for m in a.cuda_majors), cuda=cuda)
    if a.min_torch is not None and torch_release < a.min_torch:
        return refused("torch_pin", "{title} {version} needs torch >= {min_torch}", min_torch=a.min_torch)
    if a.method != "source":
        return None
    mismatch = nvcc_refusal(target.nvcc, a.name, str(a.version), torch_version, cuda)
    if mismatch is not None:
        return mismatch
    nvcc = build_nvcc(target, cuda)
    if a.min_cuda is not None and nvcc < a.min_cuda:
        return refused("toolkit", "building {title} {version} needs CUDA >= {min_cuda}; nvcc would be {nvcc}",
                       min_cuda=a.min_cuda, nvcc=nvcc, cuda=cuda)
    for cc in target.capabilities:
        floor = (a.arch_min_cuda or {}).get(str(cc))
        if floor is not None and nvcc < floor:
            return refused("toolkit", "building {title} {version} for {sm} needs CUDA >= {min_cuda}; nvcc would be {nvcc}",
                           sm=cc.sm, min_cuda=floor, nvcc=nvcc, cuda=cuda)
    return None


def build_nvcc(target: Target, cuda: Version) -> Version:
    """Return the nvcc a source build against a torch of CUDA ``cuda`` runs: the target's (``--nvcc``, or the one
    detected there) when known, else a toolkit of torch's own CUDA (which the plan then names as a prerequisite).
    The floors of flash-attn's setup.py and of the attention kernels are checked against it (``nvcc_refusal``
    refuses another major first)."""
    return target.nvcc if target.nvcc is not None else cuda


def attention_build_arch(a: AttentionRelease, caps: Iterable[ComputeCapability]) -> tuple[str | None, Refusal | None]:
    """Return (the arch list a source build of ``a`` targets for ``caps``, None) or (None, why no supported arch
    serves a GPU: kind ``gpu_code``); (None, None) when the release has no arch list (wheels)."""
    if not a.build_archs:
        return None, None
    archs, unserved = build_archs(caps, a.build_archs)  # own arch, else the same major's below
    if unserved is not None:
        return None, refusal(a.name, str(a.version), "gpu_code",
                             "{title} {version} has no kernels to build for {sm} (it builds {builds})",
                             title=a.title, version=a.version, sm=unserved.sm, compute_capability=unserved,
                             builds=", ".join(b.sm for b in a.build_archs))
    return ";".join(str(b) for b in archs), None
