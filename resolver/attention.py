"""Attention kernels beyond flash-attn 2 and xformers (``matrices/attention.toml``): FlashAttention-3, flash-attn-4,
SageAttention 1.x / 2.x and flash-attn 1.x, as rows, and the rule that places one beside a chosen torch build.

Pure. ``resolver.attention_rows`` turns the TOML into ``AttentionRelease`` rows; ``choose_kernel`` returns a ``Companion``
(wheel or source build, with its dependencies pinned as constraints) or ``None`` after reporting why each release
was dropped; ``kernel_problem`` answers "does this release run here at all" for a target, whatever torch.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.candidates import TorchOption
from resolver.compat import build_arch
from resolver.companions import Companion
from resolver.matrix_types import AttentionRelease
from resolver.models import ComputeCapability, PackageChoice, Target, spec_allows
from resolver.report import Reporter

__all__ = ["AttentionRelease", "kernel_problem", "choose_kernel", "names", "pointer"]


def names(rows: tuple[AttentionRelease, ...]) -> frozenset[str]:
    """Return the distribution names the attention rows decide (``flash-attn`` is decided with flash-attn 2)."""
    return frozenset(a.name for a in rows)


def pointer(rows: tuple[AttentionRelease, ...], family: str, spec: SpecifierSet) -> str | None:
    """Return where ``family``'s later generations live when ``spec`` asks for one (``flash-attn>=3`` -> FA3, FA4)."""
    later = [a for a in rows if a.family == family and a.name != family and spec_allows(spec, Version(f"{a.generation}"))]
    if not later:
        return None
    seen = dict.fromkeys(f"{a.title} is the distribution '{a.name}' ({a.method} {a.version})" for a in later)
    return "; ".join(seen) + ": ask for it by that name"


def kernel_problem(a: AttentionRelease, target: Target) -> str | None:
    """Return why ``a`` cannot run on the target whatever torch is chosen, or ``None``."""
    if target.platform not in a.platforms:
        return f"{a.title} {a.version} is not built for {target.platform} (only {', '.join(a.platforms)})"
    if not spec_allows(a.requires_python, target.python + ".0"):
        return f"{a.title} {a.version} needs Python{a.requires_python}"
    low = [cc for cc in target.capabilities if cc < a.min_cc]
    high = [cc for cc in target.capabilities if a.max_cc_major is not None and cc.major > a.max_cc_major]
    if low or high:
        where = f"compute capability {a.min_cc}" + (f" to {a.max_cc_major}.x" if a.max_cc_major is not None else " or newer")
        if a.max_cc_major == a.min_cc.major and a.min_cc.major >= 9:
            where = f"{a.min_cc.sm} only"
        gpus = ", ".join(f"{cc} ({cc.sm})" for cc in low + high)
        return f"{a.title} {a.version} runs on {where}; this target has {gpus}"
    return None


def _cuda_problem(a: AttentionRelease, torch: TorchOption, target: Target) -> str | None:
    cuda = torch.cuda
    if cuda is None:
        return f"{a.title} needs a CUDA build of torch"
    if a.cuda_majors and cuda.major not in a.cuda_majors:
        majors = " or ".join(str(m) for m in a.cuda_majors)
        return f"{a.title} {a.version} works with CUDA {majors} builds of torch; torch {torch.version} is CUDA {cuda}"
    if a.min_torch is not None and torch.release.version < a.min_torch:
        return f"{a.title} {a.version} needs torch >= {a.min_torch}"
    if a.method != "source":
        return None
    nvcc = target.nvcc if target.nvcc is not None else cuda
    if target.nvcc is not None and target.nvcc.major != cuda.major:
        return f"nvcc {target.nvcc} cannot build against torch {torch.version} (CUDA {cuda.major} needs nvcc {cuda.major}.x)"
    if a.min_cuda is not None and nvcc < a.min_cuda:
        return f"building {a.title} {a.version} needs CUDA >= {a.min_cuda}; nvcc would be {nvcc}"
    for cc in target.capabilities:
        floor = (a.arch_min_cuda or {}).get(str(cc))
        if floor is not None and nvcc < floor:
            return f"building {a.title} {a.version} for {cc.sm} needs CUDA >= {floor}; nvcc would be {nvcc}"
    return None


def _build_arch(a: AttentionRelease, target: Target) -> tuple[str | None, str]:
    """Return (the arch list a source build targets, "") or (None, why no supported arch serves a GPU)."""
    if not a.build_archs:
        return None, ""
    archs: list[ComputeCapability] = []
    for cc in target.capabilities:
        best = build_arch(cc, frozenset(a.build_archs))  # the compat rule: own arch, else the same major's below
        if best is None:
            return None, f"{a.title} {a.version} has no kernels to build for {cc.sm} (it builds {', '.join(b.sm for b in a.build_archs)})"
        if best not in archs:
            archs.append(best)
    return ";".join(str(b) for b in sorted(archs)), ""


def _choice(a: AttentionRelease, torch: TorchOption, target: Target) -> tuple[Companion | None, str]:
    problem = kernel_problem(a, target) or _cuda_problem(a, torch, target)
    if problem:
        return None, problem
    assert torch.cuda is not None
    arch, why = _build_arch(a, target)
    if why:
        return None, why
    major = torch.cuda.major
    extra = (a.extras or {}).get(major)
    constraints = a.deps + (a.deps_cuda or {}).get(major, ())
    notes: list[str] = []
    unverified = (f"{a.title} {a.version}: {a.note or 'not confirmed upstream'}",) if a.unverified else ()
    env: dict[str, str] = {}
    if a.method == "source":
        env = dict(a.build_env or {})
        if a.arch_env and arch:
            env[a.arch_env] = arch
        nvcc = target.nvcc or torch.cuda
        notes.append(f"{a.title} {a.version} is built from source ({a.url or 'PyPI sdist'}) with nvcc {nvcc.major}.x"
                     + (f" for {arch}" if arch else "") + (f"; {a.pypi}" if a.pypi else ""))
        if target.nvcc is None:
            notes.append(f"the source build needs nvcc {major}.x (CUDA toolkit {torch.cuda}) and ninja")
    if extra:
        notes.append(f"{a.name}[{extra}]: torch {torch.version} is CUDA {major}, so the CUDA {major} libraries are installed")
    choice = PackageChoice(
        a.requirement_name or a.name, str(a.version), "wheel" if a.method == "wheel" else "source",
        index_url=a.index, url=a.url, build_env=env, variant=f"cu{major}" if (extra or a.deps_cuda) else None,
        cuda=str(torch.cuda) if a.method == "source" else None, arch_list=arch,
        extras=(extra,) if extra else (), constraints=constraints,
    )
    return Companion(choice, notes=tuple(notes), unverified=unverified), ""


def choose_kernel(
    name: str, spec: SpecifierSet, torch: TorchOption, target: Target, rows: tuple[AttentionRelease, ...],
    reporter: Reporter, *, verified_only: bool = False, prefer_wheels: bool = False,
) -> tuple[Companion | None, list[str]]:
    """Return the newest release of ``name`` in ``spec`` that fits beside ``torch`` (with ``prefer_wheels``: the
    newest wheel before any source build), or (None, why each was dropped)."""
    why: list[str] = []
    order = sorted(rows, key=lambda a: a.method != "wheel") if prefer_wheels else list(rows)
    for a in order:
        if a.name != name or not spec_allows(spec, a.version):
            continue
        if verified_only and a.unverified:
            why.append(f"{a.title} {a.version} relies on an unverified fact (--verified-only)")
            continue
        comp, problem = _choice(a, torch, target)
        if comp is not None:
            return comp, []
        reporter.rejected(name, f"{a.version} with torch {torch.version}", problem)
        why.append(problem)
    if not why:
        known = ", ".join(str(a.version) for a in rows if a.name == name)
        why.append(f"{name}{spec} matches no release gpustack knows ({known})")
    return None, why
