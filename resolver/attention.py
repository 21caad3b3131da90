"""Attention kernels beyond flash-attn 2 and xformers (``matrices/attention.toml``): FlashAttention-3, flash-attn-4,
SageAttention 1.x / 2.x and flash-attn 1.x, as rows, and how one is placed beside a chosen torch build. The
compatibility questions (GPU, CUDA, nvcc, build arch) are answered by ``resolver.compat``.

Pure. ``resolver.attention_rows`` turns the TOML into ``AttentionRelease`` rows; ``choose_kernel`` returns a ``Companion``
(wheel or source build, with its dependencies pinned as constraints) or ``None`` after reporting why each release
was dropped; ``compat.attention_target_problem`` answers "does this release run here at all" for a target, whatever torch.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.candidates import TorchOption
from resolver.compat import attention_build_arch, attention_cuda_problem, attention_target_problem
from resolver.companions import Companion
from resolver.matrix_types import AttentionRelease
from resolver.models import PackageChoice, Target, spec_allows
from resolver.refusal import Refusal, refusal
from resolver.report import Reporter

__all__ = ["AttentionRelease", "choose_kernel", "names", "pointer", "later_generations"]


def names(rows: tuple[AttentionRelease, ...]) -> frozenset[str]:
    """Return the distribution names the attention rows decide (``flash-attn`` is decided with flash-attn 2)."""
    return frozenset(a.name for a in rows)


def later_generations(rows: tuple[AttentionRelease, ...], family: str, spec: SpecifierSet) -> list[AttentionRelease]:
    """Return the rows of ``family``'s later generations, published as distributions of their own, that ``spec``
    asks for (``flash-attn>=3`` -> flash-attn-3's and flash-attn-4's rows; ``flash-attn>=4`` -> flash-attn-4's)."""
    return [a for a in rows if a.family == family and a.name != family
            and spec_allows(spec, Version(f"{a.generation}"))]


def pointer(rows: tuple[AttentionRelease, ...], family: str, spec: SpecifierSet,
            only: frozenset[str] | None = None) -> str | None:
    """Return where ``family``'s later generations live when ``spec`` asks for one (``flash-attn>=3`` -> FA3, FA4:
    "FlashAttention-3 is the distribution 'flash-attn-3' (...); ..."); with ``only``, just those distributions."""
    later = [a for a in later_generations(rows, family, spec) if only is None or a.name in only]
    if not later:
        return None
    seen = dict.fromkeys(f"{a.title} is the distribution '{a.name}' ({a.method} {a.version})" for a in later)
    return "; ".join(seen)


def _choice(a: AttentionRelease, torch: TorchOption, target: Target) -> tuple[Companion | None, Refusal | None]:
    problem = attention_target_problem(a, target) or attention_cuda_problem(a, str(torch.version), torch.release.version,
                                                                  torch.cuda, target)
    if problem:
        return None, problem
    assert torch.cuda is not None
    arch, why = attention_build_arch(a, target.capabilities)
    if why is not None:
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
    return Companion(choice, notes=tuple(notes), unverified=unverified), None


def choose_kernel(
    name: str, spec: SpecifierSet, torch: TorchOption, target: Target, rows: tuple[AttentionRelease, ...],
    reporter: Reporter, *, verified_only: bool = False, prefer_wheels: bool = False,
) -> tuple[Companion | None, list[Refusal]]:
    """Return the newest release of ``name`` in ``spec`` that fits beside ``torch`` (with ``prefer_wheels``: the
    newest wheel before any source build), or (None, why each was dropped)."""
    why: list[Refusal] = []
    order = sorted(rows, key=lambda a: a.method != "wheel") if prefer_wheels else list(rows)
    for a in order:
        if a.name != name or not spec_allows(spec, a.version):
            continue
        if verified_only and a.unverified:
            why.append(refusal(name, str(a.version), "unverified", "{title} {version} relies on an unverified fact "
                               "(--verified-only)", title=a.title, version=a.version, note=a.note))
            continue
        comp, problem = _choice(a, torch, target)
        if comp is not None:
            return comp, []
        assert problem is not None
        reporter.rejected(problem, torch.version)
        why.append(problem)
    if not why:
        known = ", ".join(str(a.version) for a in rows if a.name == name)
        why.append(refusal(name, str(spec), "no_release", "{name}{spec} matches no release gpustack knows ({known})",
                           name=name, spec=spec, known=known))
    return None, why
