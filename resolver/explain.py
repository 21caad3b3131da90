"""Why nothing fits: one reason per blocking fact, each with what would work instead.

Pure. Called by ``resolver.solve`` after the search found no option; it re-asks targeted questions of the matrix
(is there any torch with code for this GPU? for this driver? which torch does this xformers pin?) rather than
dumping every rejected candidate.
"""

from __future__ import annotations

import re

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.candidates import TorchOption, torch_options
from resolver.compat import driver_floor, torch_release_problem, xformers_off_pin_ok
from resolver.compat import coverage as _coverage
from resolver.compat import driver_problem as _driver_problem
from resolver.companions import choose_flash, choose_xformers
from resolver.matrix_types import Matrix, TorchRelease
from resolver.models import ArchList, ComputeCapability, Target, format_driver, spec_allows
from resolver.report import Reporter
from resolver.request import Request

__all__ = ["explain_failure"]


class _Record(Reporter):
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def rejected(self, package: str, candidate: str, reason: str) -> None:
        self.reasons.append(f"{package} {candidate}: {reason}")


def _all_options(matrix: Matrix, target: Target, spec: SpecifierSet | None = None) -> list[TorchOption]:
    out = []
    for rel in matrix.torch:
        if spec is not None and not spec_allows(spec, rel.version):
            continue
        if torch_release_problem(rel, target, matrix):
            continue
        out.extend(torch_options(rel, target, matrix))
    return out


def coverage(arch: ArchList, target: Target) -> tuple[list[ComputeCapability], list[ComputeCapability]]:
    return _coverage(arch, target.capabilities)


def driver_problem(target: Target, cuda: Version, matrix: Matrix) -> str | None:
    return _driver_problem(target.driver, cuda, matrix, target.platform)


def _solves(target: Target, matrix: Matrix, request: Request, **bounds: object) -> bool:
    """Return whether the whole request, with ``bounds`` replacing some of its fields, solves on the whole target:
    an alternative is printed only then."""
    import dataclasses

    from resolver.solve import feasible

    return feasible(target, matrix, dataclasses.replace(request, **bounds))  # type: ignore[arg-type]


def _exact(version: object) -> SpecifierSet:
    return SpecifierSet(f"=={version}")


def _gpu_name(target: Target, cc: ComputeCapability) -> str:
    names = sorted({g.name for g in target.gpus if g.compute_capability == cc})
    return " / ".join(names) or f"compute capability {cc}"


def _install_reasons(target: Target, matrix: Matrix, in_spec: list[TorchRelease], spec: str) -> tuple[list[str], list[str]]:
    """No torch release in the request installs here (Python, platform or glibc): say which and what would."""
    problems = [p for p in (torch_release_problem(r, target, matrix) for r in in_spec) if p]
    glibc = [p for p in problems if "glibc" in p]
    if glibc and target.glibc is not None:
        fits = next((o.release for o in _all_options(matrix, target)
                     if not coverage(o.arch, target)[0]
                     and (o.cuda is None or not driver_problem(target, o.cuda, matrix))), None)
        reasons = [f"torch{spec} has no {target.platform} wheel for glibc {target.glibc}: {glibc[0]}"]
        floors = [f.glibc for f in (matrix.wheel_facts("torch", r.version, target.platform) for r in in_spec)
                  if f is not None and f.glibc is not None]
        alts = [f"a host with glibc {min(floors)} or newer (pass its --glibc)"] if floors and len(glibc) == len(problems) else []
        if fits is not None:
            alts.append(f"torch=={fits.version}: the newest torch whose {target.platform} wheel installs with glibc "
                        f"{target.glibc} and Python {target.python} and runs on these GPUs and driver")
        return reasons, alts
    pys: set[str] = set()
    for r in in_spec:
        facts = matrix.wheel_facts("torch", r.version, target.platform)
        pys.update(facts.pythons if facts is not None else r.pythons)
    order = sorted(pys, key=lambda p: tuple(int(x) for x in p.split(".")))
    reasons = [f"torch{spec} has no wheels for Python {target.python} on {target.platform}"]
    return reasons, [f"use Python {order[0]}–{order[-1]} (--python X.Y, or --python-exe PATH)"] if order else []


def _torch_reasons(target: Target, matrix: Matrix, request: Request) -> tuple[list[str], list[str]]:
    reasons: list[str] = []
    alts: list[str] = []
    spec = request.torch
    in_spec = [r for r in matrix.torch if spec_allows(spec, r.version)]
    if not in_spec:
        known = f"{matrix.torch[-1].version}–{matrix.torch[0].version}"
        return [f"torch{spec} matches no torch release gpustack knows ({known})"], [f"ask for a torch in {known}"]
    with_py = [r for r in in_spec if not torch_release_problem(r, target, matrix)]
    if not with_py:
        return _install_reasons(target, matrix, in_spec, str(spec or ""))
    if target.is_cpu:
        return reasons, alts
    variant = request.torch_variant
    opts = [o for o in _all_options(matrix, target, spec) if variant is None or o.tag == variant]
    if variant is not None and not opts:
        tags = sorted({o.tag for o in _all_options(matrix, target, spec)})
        reasons.append(f"torch{spec} has no +{variant} build for {target.platform}; it has {', '.join(tags)}")
        return reasons, alts
    for cc in target.capabilities:
        if not any(o.arch.covers(cc) for o in opts):
            anywhere = [o for o in _all_options(matrix, target) if o.arch.covers(cc) == "sass"]
            msg = (f"torch{spec} has no wheel with {cc.sm} code ({_gpu_name(target, cc)})" if str(spec) else
                   f"no {target.platform} torch wheel has {cc.sm} code ({_gpu_name(target, cc)})")
            if anywhere:
                msg += f"; the newest with it is {anywhere[0].version}"
                # Suggested only when the whole request solves with it on the whole target (driver, platform, ...).
                ok = next((o for o in anywhere[:24] if _solves(target, matrix, request, torch=_exact(o.release.version),
                                                                torch_variant=o.tag)), None)
                if ok is not None:
                    alts.append(f"torch=={ok.release.version}+{ok.tag} runs on {_gpu_name(target, cc)}")
            reasons.append(msg)
    if reasons:
        return reasons, alts
    covered_all = [o for o in opts if not coverage(o.arch, target)[0]]
    if not covered_all and len(target.capabilities) > 1:
        per_gpu = []
        for cc in target.capabilities:
            newest = next((o for o in opts if o.arch.covers(cc) == "sass"), None)
            if newest is not None:
                per_gpu.append(f"{_gpu_name(target, cc)}: {newest.version}")
        reasons.append(f"no torch{spec or ''} build has code for every GPU of the fleet ({', '.join(c.sm for c in target.capabilities)})")
        alts.append("plan each group of GPUs separately (newest per GPU: " + "; ".join(per_gpu) + ")")
        return reasons, alts
    runnable = [o for o in covered_all if o.cuda is not None and driver_problem(target, o.cuda, matrix) is None]
    if covered_all and not runnable:
        needed = min((o.cuda for o in covered_all if o.cuda is not None))
        problem = driver_problem(target, needed, matrix)
        reasons.append(f"{problem}; torch{spec or ''} for these GPUs needs CUDA >= {needed}")
        fallback = [o for o in _all_options(matrix, target)
                    if o.cuda is not None and not coverage(o.arch, target)[0] and driver_problem(target, o.cuda, matrix) is None]
        ok = next((o for o in fallback[:24] if _solves(target, matrix, request, torch=_exact(o.release.version),
                                                        torch_variant=o.tag)), None)
        if ok is not None:
            alts.append(f"the newest torch this driver runs on these GPUs is {ok.version}")
        floor = driver_floor(needed, matrix, target.platform)
        if floor is not None:
            alts.append(f"update the NVIDIA driver to >= {format_driver(floor)} for CUDA {needed.major}.x builds")
    return reasons, alts


def _flash_reasons(target: Target, matrix: Matrix, request: Request) -> tuple[list[str], list[str]]:
    if request.flash_attn is None:
        return [], []
    reasons, alts = [], []
    releases = [f for f in matrix.flash_attn if spec_allows(request.flash_attn, f.version)]
    if not releases:
        return [f"flash-attn{request.flash_attn} matches no flash-attn 2 release gpustack knows"], []
    low = [cc for cc in target.capabilities if cc < releases[0].min_cc]
    for cc in low:
        reasons.append(f"flash-attn needs compute capability {releases[0].min_cc}; {_gpu_name(target, cc)} is {cc}")
        alts.append(f"xformers (memory_efficient_attention) and torch SDPA's efficient kernel run on {cc}: ask for xformers instead of flash-attn")
    high = [cc for cc in target.capabilities if all(f.max_cc is not None and cc > f.max_cc for f in releases)]
    for cc in high:
        reasons.append(f"flash-attn{request.flash_attn} rejects {_gpu_name(target, cc)} (compute capability {cc}) at run time")
        alts.append("flash-attn >= 2.7.3 runs on Blackwell (compute capability 10.x/12.x)")
    return reasons, alts


def _xformers_reasons(target: Target, matrix: Matrix, request: Request) -> tuple[list[str], list[str]]:
    if request.xformers is None:
        return [], []
    reasons, alts = [], []
    releases = [x for x in matrix.xformers if spec_allows(request.xformers, x.version)]
    if "xformers.components" in request.needs:
        releases = [x for x in releases if x.has_components]
    if not releases:
        return [f"xformers{request.xformers} matches no xformers release that has what was asked for"], []
    pins = [x for x in releases if any(spec_allows(request.torch, t.version) and spec_allows(x.torch, t.version) for t in matrix.torch)]
    source_ok = [x for x in releases if any(spec_allows(request.torch, t.version) and xformers_off_pin_ok(x, t.version) for t in matrix.torch)]
    if not pins and not source_ok:
        newest = releases[0]
        reasons.append(f"xformers{request.xformers} pins torch{newest.torch} (xformers {newest.version}); torch{request.torch} was asked")
        # Another torch for the xformers that has what was asked (its needs included), solved on the whole target.
        for x in releases[:12]:
            pin = next((t.version for t in matrix.torch if spec_allows(x.torch, t.version)
                        and _solves(target, matrix, request, torch=_exact(t.version), xformers=_exact(x.version))), None)
            if pin is not None:
                alts.append(f"xformers {x.version} works with torch {pin} (ask for torch=={pin})")
                break
        # Or keep the torch bound and move xformers (the oldest that pins an allowed torch and has what is needed).
        usable = [x for x in matrix.xformers if "xformers.components" not in request.needs or x.has_components]
        for x in list(reversed(usable))[:40]:
            pin = next((t.version for t in reversed(matrix.torch) if spec_allows(request.torch, t.version)
                        and spec_allows(x.torch, t.version)
                        and _solves(target, matrix, request, torch=_exact(t.version), xformers=_exact(x.version))), None)
            if pin is not None:
                alts.append(f"xformers {x.version} works with torch {pin} (ask for xformers=={x.version})")
                break
    return reasons, alts


def _grouped(reasons: list[str]) -> list[str]:
    """Return rejection lines with the same cause folded: ``xformers 0.0.18, 0.0.19 with torch X: why``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for line in reasons:
        head, _, why = line.partition(": ")
        words = head.split(" ", 2)  # package, version, "with torch ..."
        rest = words[2] if len(words) > 2 else ""
        groups.setdefault((f"{words[0]}|{rest}", why), []).append(words[1] if len(words) > 1 else "")
    out = []
    for (key, why), versions in groups.items():
        package, rest = key.split("|")
        shown = versions if len(versions) <= 3 else [versions[-1], "…", versions[0]]
        out.append(f"{package} {', '.join(shown)} {rest}: {why}".replace("  ", " "))
    return out


def explain_failure(target: Target, matrix: Matrix, request: Request) -> tuple[list[str], list[str]]:
    """Return (reasons, alternatives) for a target and request that the solver could not satisfy."""
    reasons: list[str] = []
    alts: list[str] = []
    for part in (_torch_reasons, _flash_reasons, _xformers_reasons):
        r, a = part(target, matrix, request)
        reasons += r
        alts += a
    if not reasons:
        # Torch itself fits somewhere: say why the newest fitting builds could not take the companions.
        record = _Record()
        for opt in _all_options(matrix, target, request.torch)[:6]:
            if request.torch_variant and opt.tag != request.torch_variant:
                continue
            if opt.cuda is None or coverage(opt.arch, target)[0] or driver_problem(target, opt.cuda, matrix):
                continue
            if request.xformers is not None:
                choose_xformers(opt, target, matrix, request, record)
            if request.flash_attn is not None:
                choose_flash(opt, target, matrix, request, record)
        found = _grouped(record.reasons)
        # A reason about the machine (nvcc, GPUs, platform) tells the user more than "X pins another torch".
        specific = [r for r in found if "requires torch" not in r]
        reasons += (specific or found)[:8] or ["no combination of the requested packages fits this target"]
        majors = sorted(set(re.findall(r"needs nvcc (\d+)\.x", " ".join(reasons))), key=int)
        for major in majors:
            alts.append(f"install a CUDA {major}.x toolkit and point CUDA_HOME at it (or pass --nvcc {major}.x when planning)")
    return list(dict.fromkeys(reasons)), list(dict.fromkeys(alts))
