"""Why nothing fits: one reason per blocking fact, each with what would work instead.

Pure. Called by ``resolver.solve`` after the search found no option; it re-asks targeted questions of the matrix
(is there any torch with code for this GPU? for this driver? which torch does this xformers pin?) rather than
dumping every rejected candidate.
"""

from __future__ import annotations

import dataclasses
import functools

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.candidates import TorchOption, torch_options
from resolver.compat import driver_floor, driver_refusal, torch_release_refusal, xformers_off_pin_ok
from resolver.compat import coverage as _coverage
from resolver.companions import choose_flash, choose_xformers
from resolver.matrix_types import Matrix, TorchRelease
from resolver.models import ArchList, ComputeCapability, Target, format_driver, spec_allows
from resolver.refusal import Alternative, Change, Refusal, alternative, apply, refusal
from resolver.report import Reporter
from resolver.request import Request

__all__ = ["explain_failure", "solves"]


class _Record(Reporter):
    """Records the companions' rejections (``Refusal`` values) for one torch option at a time."""

    def __init__(self) -> None:
        self.rows: list[tuple[Refusal, str]] = []  # (why, the torch build it was tried beside or "")

    def rejected(self, refusal: Refusal, with_torch: str = "") -> None:
        self.rows.append((refusal, with_torch))


def _all_options(matrix: Matrix, target: Target, spec: SpecifierSet | None = None) -> list[TorchOption]:
    out = []
    for rel in matrix.torch:
        if spec is not None and not spec_allows(spec, rel.version):
            continue
        if torch_release_refusal(rel, target, matrix) is not None:
            continue
        out.extend(torch_options(rel, target, matrix))
    return out


def coverage(arch: ArchList, target: Target) -> tuple[list[ComputeCapability], list[ComputeCapability]]:
    return _coverage(arch, target.capabilities)


def _driver_runs(target: Target, cuda: Version | None, matrix: Matrix) -> bool:
    """Return whether the target's driver runs a CUDA ``cuda`` build (``compat.driver_refusal``; False for CPU)."""
    return cuda is not None and driver_refusal(target.driver, cuda, matrix, target.platform) is None


def solves(target: Target, matrix: Matrix, request: Request, change: Change) -> bool:
    """Return whether the whole request, with ``change`` applied (``resolver.refusal.apply``: a bound a requested
    profile sets is narrowed, never lifted), solves on the whole target: an alternative is printed only then."""
    from resolver.solve import feasible

    t, r = apply(change, target, request)
    return feasible(t, matrix, r)


def _pin(version: object, variant: str | None = None) -> Change:
    """The change "ask for torch==version(+variant)"."""
    if variant is None:
        return Change(request={"torch": f"=={version}"})
    return Change(request={"torch": f"=={version}", "torch_variant": variant})


def _gpu_name(target: Target, cc: ComputeCapability) -> str:
    names = sorted({g.name for g in target.gpus if g.compute_capability == cc})
    return " / ".join(names) or f"compute capability {cc}"


def _install_reasons(target: Target, matrix: Matrix, request: Request,
                     in_spec: list[TorchRelease]) -> tuple[list[Refusal], list[Alternative]]:
    """No torch release in the request installs here (Python, platform or glibc): say which and what would, each
    alternative solved for the whole request on the target with only that one thing changed."""
    spec = str(request.torch or "")
    problems = [p for p in (torch_release_refusal(r, target, matrix) for r in in_spec) if p is not None]
    glibc = [p.text for p in problems if p.kind == "glibc"]
    if glibc and target.glibc is not None:
        # a release whose builds run here, each release solved once (the pin names the release, not the build)
        runs = dict.fromkeys(o.release for o in _all_options(matrix, target) if not coverage(o.arch, target)[0]
                             and (o.cuda is None or _driver_runs(target, o.cuda, matrix)))
        fits = next((r for r in runs if solves(target, matrix, request, _pin(r.version))), None)
        reasons = [refusal("torch", spec, "glibc", "torch{spec} has no {platform} wheel for glibc {glibc}: {detail}",
                           spec=spec, platform=target.platform, glibc=target.glibc, detail=glibc[0])]
        floors = [f.glibc for f in (matrix.wheel_facts("torch", r.version, target.platform) for r in in_spec)
                  if f is not None and f.glibc is not None]
        alts = []
        host = Change(target={"glibc": str(min(floors))}) if floors else None
        if host is not None and len(glibc) == len(problems) and solves(target, matrix, request, host):
            alts.append(alternative("a host with glibc {glibc} or newer (pass its --glibc)", host, glibc=min(floors)))
        if fits is not None:
            alts.append(alternative("torch=={version}: the newest torch whose {platform} wheel installs with glibc "
                                    "{glibc} and Python {python} and runs on these GPUs and driver", _pin(fits.version),
                                    version=fits.version, platform=target.platform, glibc=target.glibc,
                                    python=target.python))
        return reasons, alts
    pys: set[str] = set()
    for r in in_spec:
        facts = matrix.wheel_facts("torch", r.version, target.platform)
        pys.update(facts.pythons if facts is not None else r.pythons)
    order = sorted(pys, key=lambda p: tuple(int(x) for x in p.split(".")))
    # Only the Pythons on which the whole request (companions, profile needs) solves on this target.
    moves = {py: Change(target={"python": py}) for py in order}
    solved = [py for py in order if solves(target, matrix, request, moves[py])]
    alt = None
    if solved:
        contiguous = order[order.index(solved[0]):order.index(solved[-1]) + 1] == solved
        span = solved[0] if len(solved) == 1 else f"{solved[0]}–{solved[-1]}" if contiguous else ", ".join(solved)
        alt = alternative("use Python {span} (--python X.Y, or --python-exe PATH)", *(moves[py] for py in solved),
                          span=span)
    else:  # no Python serves this torch bound here: the newest torch build that does, on this Python, solved
        build = next((o for o in _all_options(matrix, target)[:48] if (o.cuda is not None or target.is_cpu)
                      and solves(target, matrix, request, _pin(o.release.version, o.tag))), None)
        if build is not None:
            alt = alternative("torch=={version}: the newest torch with {platform} wheels for Python {python} that runs "
                              "on these GPUs and driver (ask for it instead)", _pin(build.release.version, build.tag),
                              version=build.version, platform=target.platform, python=target.python)
    reasons = [refusal("torch", spec, "python", "torch{spec} has no wheels for Python {python} on {platform}", alt,
                       spec=spec, python=target.python, platform=target.platform, pythons=", ".join(order))]
    return reasons, [alt] if alt else []


def _platforms_with_code(target: Target, matrix: Matrix, cc: ComputeCapability) -> list[str]:
    """Return the other platforms with a torch build that has SASS for ``cc`` (the target's Python; any glibc)."""
    from resolver.models import PLATFORMS

    out = []
    for plat in PLATFORMS:
        if plat == target.platform:
            continue
        there = dataclasses.replace(target, platform=plat, glibc=None, glibc_assumed=False)
        if any(o.arch.covers(cc) == "sass" for o in _all_options(matrix, there)):
            out.append(plat)
    return out


def _with_companions_moved(target: Target, matrix: Matrix, request: Request, builds: list[TorchOption],
                           gpu: str) -> Alternative | None:
    """Return "torch==X+cuNNN with xformers==Y runs on GPU" for the newest torch build with code for the GPU whose
    stack solves when the companions' version bounds are lifted too (profile needs and kernels kept), or None."""
    from resolver.errors import NoCompatibleStack
    from resolver.solve import solve

    moved: dict[str, str | None] = {f: "" for f, bound in (("xformers", request.xformers),
                                                           ("flash_attn", request.flash_attn))
                                    if bound is not None and str(bound)}
    profiles = {n for n, bound in request.profile_bounds if str(bound)}
    if not moved or profiles & {"torch", *(f.replace("_", "-") for f in moved)}:
        return None  # nothing to lift, or a profile's own pins (its application needs them): not lifted
    for o in builds:
        trial = Change(request={"torch": f"=={o.release.version}", "torch_variant": o.tag, **moved})
        t, r = apply(trial, target, request)
        try:
            stack = solve(t, matrix, r)
        except NoCompatibleStack:
            continue
        got = [p for p in stack.packages if p.name in ("xformers", "flash-attn")]
        pins = " and ".join(f"{p.name}=={p.version}" for p in got)
        asked = ", ".join([f"torch{request.torch}"] + [request.describe(n) for n in ("xformers", "flash-attn")
                                                        if n.replace("-", "_") in moved])
        change = Change(request={**trial.request, **{p.name.replace("-", "_"): f"=={p.version}" for p in got}})
        return alternative("torch=={version}+{variant} with {pins} runs on {gpu} (ask for these instead of {asked})",
                           change, version=o.release.version, variant=o.tag, pins=pins, gpu=gpu, asked=asked)
    return None


def _without_variant(target: Target, matrix: Matrix, request: Request) -> Alternative | None:
    """Return "ask for torch==X without +variant: the plan takes torch X+cuNNN" when the asked build variant is what
    blocks: the whole request with the variant dropped (the version bound kept) solves on the whole target; else None."""
    from resolver.errors import NoCompatibleStack
    from resolver.solve import solve

    if request.torch_variant is None:
        return None
    drop = Change(request={"torch_variant": None})
    t, r = apply(drop, target, request)
    try:
        stack = solve(t, matrix, r)
    except NoCompatibleStack:
        return None
    build = next(p.version for p in stack.packages if p.name == "torch")
    where = "the CPU" if target.is_cpu else ", ".join(dict.fromkeys(g.name for g in target.gpus))
    return alternative("torch{spec} without +{variant}: the plan takes torch {build}, which runs on {where} (ask for "
                       "torch{spec})", drop, spec=request.torch or "", variant=request.torch_variant, build=build,
                       where=where)


def _torch_reasons(target: Target, matrix: Matrix, request: Request) -> tuple[list[Refusal], list[Alternative]]:
    """Why no torch build fits, and what would; a refusal that blocks on the asked build variant (``+cpu`` on a GPU,
    ``+cu118`` a release lacks, a CUDA build the driver cannot run) also offers the same release without it."""
    blocked, alts = _torch_build_reasons(target, matrix, request)
    if not blocked or request.torch_variant is None:
        return blocked, alts
    drop = _without_variant(target, matrix, request)
    if drop is None:
        return blocked, alts
    return [dataclasses.replace(b, alternative=drop) if b.alternative is None else b for b in blocked], [drop, *alts]


def _torch_build_reasons(target: Target, matrix: Matrix, request: Request) -> tuple[list[Refusal], list[Alternative]]:
    reasons: list[Refusal] = []
    alts: list[Alternative] = []
    spec = request.torch
    in_spec = [r for r in matrix.torch if spec_allows(spec, r.version)]
    if not in_spec:
        known = f"{matrix.torch[-1].version}–{matrix.torch[0].version}"
        # Any release gpustack knows: carried as a change when the whole request solves with it, else advice.
        every = Change(request={"torch": f">={matrix.torch[-1].version},<={matrix.torch[0].version}"})
        ask = alternative("ask for a torch in {known}", *([every] if solves(target, matrix, request, every) else []),
                          known=known)
        return [refusal("torch", str(spec or ""), "no_release", "torch{spec} matches no torch release gpustack knows ({known})",
                        ask, spec=spec or "", known=known)], [ask]
    with_py = [r for r in in_spec if torch_release_refusal(r, target, matrix) is None]
    if not with_py:
        return _install_reasons(target, matrix, request, in_spec)
    variant = request.torch_variant
    # The asked build, as the user wrote it: "torch==2.13.0+cu130 for these GPUs needs ..." (a bound without a
    # variant is shown as it is).
    asked = f"{spec}+{variant}" if variant is not None and str(spec or "") else str(spec or "")
    if target.is_cpu:
        if variant is not None and variant != "cpu":  # a CUDA build asked for a machine without a GPU
            reasons.append(refusal("torch", asked, "variant", "torch{spec} is a CUDA build: this target has no GPU, "
                                   "and a CPU target takes a +cpu build (--gpu NAME plans for a GPU machine)",
                                   spec=asked))
        return reasons, alts
    in_spec_opts = _all_options(matrix, target, spec)
    opts = [o for o in in_spec_opts if variant is None or o.tag == variant]

    @functools.cache
    def every_build() -> list[TorchOption]:  # every build for the target, whatever the bound: listed once, when asked
        return _all_options(matrix, target)

    if variant == "cpu" and not opts:  # a GPU target: torch_options lists no +cpu build, as none drives a GPU
        tags = sorted({o.tag for o in in_spec_opts})
        gpus = ", ".join(dict.fromkeys(g.name for g in target.gpus))
        reasons.append(refusal("torch", f"{spec or ''}+cpu", "variant",
                               "torch{spec}+cpu cannot drive the {gpus} of this target: a +cpu build runs on no GPU "
                               "(for this target torch{spec} has {variants}; --cpu plans for a machine without one)",
                               spec=spec or "", gpus=gpus, variants=", ".join(tags) or "no build"))
        return reasons, alts
    if variant is not None and not opts:
        tags = sorted({o.tag for o in in_spec_opts})
        reasons.append(refusal("torch", f"{spec or ''}+{variant}", "variant",
                               "torch{spec} has no +{variant} build for {platform}; it has {variants}",
                               spec=spec or "", variant=variant, platform=target.platform, variants=", ".join(tags)))
        return reasons, alts
    for cc in target.capabilities:
        if not any(o.arch.covers(cc) for o in opts):
            anywhere = [o for o in every_build() if o.arch.covers(cc) == "sass"]
            template = ("torch{spec} has no wheel with {sm} code ({gpu})" if str(spec) else
                        "no {platform} torch wheel has {sm} code ({gpu})")
            facts = {"spec": asked, "sm": cc.sm, "gpu": _gpu_name(target, cc), "platform": target.platform,
                     "compute_capability": str(cc)}
            alt: Alternative | None = None
            if anywhere:
                template += "; the newest with it is {newest}"
                facts["newest"] = anywhere[0].version
                # Suggested only when the whole request solves with it on the whole target (driver, platform, ...).
                ok = next((o for o in anywhere[:24] if solves(target, matrix, request,
                                                                _pin(o.release.version, o.tag))), None)
                if ok is not None:
                    if ok.version != anywhere[0].version:  # the newest does not fit (driver, Python ...): name both
                        template += "; the newest that fits this target is {fits}"
                        facts["fits"] = ok.version
                    alt = alternative("torch=={version}+{variant} runs on {gpu}", _pin(ok.release.version, ok.tag),
                                      version=ok.release.version, variant=ok.tag, gpu=_gpu_name(target, cc))
                else:
                    alt = _with_companions_moved(target, matrix, request, anywhere[:24], _gpu_name(target, cc))
                if alt is not None:
                    alts.append(alt)
            else:  # no build for this platform has it: the platforms whose wheels do, or that none does
                elsewhere = _platforms_with_code(target, matrix, cc)
                if elsewhere:
                    template += "; {elsewhere} torch wheels have it (--platform {first} plans for such a host)"
                    facts.update(elsewhere=", ".join(elsewhere), first=elsewhere[0])
                elif not any(v.arch.covers(cc) == "sass" for r in matrix.torch for v in r.variants) and \
                        not any(a.covers(cc) == "sass" for r in matrix.torch for a in r.pypi_arch.values()):
                    template += ("; no torch wheel gpustack knows has it, for any platform or Python (a torch built "
                                 "from source for {sm} is outside what gpustack plans)")
            reasons.append(refusal("torch", str(spec or ""), "gpu_code", template, alt, **facts))
    if reasons:
        return reasons, alts
    covered_all = [o for o in opts if not coverage(o.arch, target)[0]]
    if not covered_all and len(target.capabilities) > 1:
        per_gpu = []
        for cc in target.capabilities:
            newest = next((o for o in opts if o.arch.covers(cc) == "sass"), None)
            if newest is not None:
                per_gpu.append(f"{_gpu_name(target, cc)}: {newest.version}")
        split = alternative("plan each group of GPUs separately (newest per GPU: {per_gpu})",  # advice: no change
                            per_gpu="; ".join(per_gpu))
        reasons.append(refusal("torch", str(spec or ""), "gpu_code",
                               "no torch{spec} build has code for every GPU of the fleet ({sms})", split,
                               spec=spec or "", sms=", ".join(c.sm for c in target.capabilities)))
        alts.append(split)
        return reasons, alts
    runnable = [o for o in covered_all if _driver_runs(target, o.cuda, matrix)]
    if covered_all and not runnable:
        needed = min((o.cuda for o in covered_all if o.cuda is not None))
        problem = driver_refusal(target.driver, needed, matrix, target.platform)
        floor = driver_floor(needed, matrix, target.platform)
        driver_facts = {"problem": problem.text if problem is not None else "", "spec": asked,
                        "cuda": str(needed),
                        "driver": format_driver(target.driver) if target.driver is not None else "",
                        "driver_floor": format_driver(floor) if floor is not None else ""}
        fallback = [o for o in every_build() if not coverage(o.arch, target)[0] and _driver_runs(target, o.cuda, matrix)]
        ok = next((o for o in fallback[:24] if solves(target, matrix, request, _pin(o.release.version, o.tag))), None)
        if ok is not None:
            alts.append(alternative("the newest torch this driver runs on these GPUs is {version}",
                                    _pin(ok.release.version, ok.tag), version=ok.version))
        update = Change(target={"driver": format_driver(floor)}) if floor is not None else None
        if update is not None and solves(target, matrix, request, update):
            alts.append(alternative("update the NVIDIA driver to >= {driver_floor} for CUDA {cuda_major}.x builds",
                                    update, driver_floor=update.target["driver"], cuda_major=needed.major))
        reasons.append(refusal("torch", str(spec or ""), "driver", "{problem}; torch{spec} for these GPUs needs CUDA >= {cuda}",
                               alts[-1] if alts else None, **driver_facts))
    elif request.verified_only and runnable and all(o.unverified or o.assumptions for o in runnable):
        # every build that runs here rests on a fact upstream did not confirm, and --verified-only refuses those
        unsure = list(dict.fromkeys(u for o in runnable for u in (*o.unverified, *o.assumptions)))
        verified = [o for o in every_build() if not (o.unverified or o.assumptions) and not coverage(o.arch, target)[0]
                    and _driver_runs(target, o.cuda, matrix)]
        ok = next((o for o in verified[:24] if solves(target, matrix, request, _pin(o.release.version, o.tag))), None)
        alt = None
        if ok is not None:
            alt = alternative("torch=={version}: the newest torch build on verified facts that runs on these GPUs and "
                              "driver (ask for it instead)", _pin(ok.release.version, ok.tag), version=ok.version)
            alts.append(alt)
        from resolver.solve import feasible

        unrefused = feasible(target, matrix, dataclasses.replace(request, verified_only=False))
        reasons.append(refusal("torch", asked, "unverified", "every torch{spec} build that runs here relies on an "
                               "unverified fact, which --verified-only refuses" +
                               (" (without it the plan takes it)" if unrefused else "") + ": {facts}",
                               alt, spec=asked, facts="; ".join(unsure)))
    return reasons, alts


def _flash_reasons(target: Target, matrix: Matrix, request: Request) -> tuple[list[Refusal], list[Alternative]]:
    if request.flash_attn is None:
        return [], []
    reasons: list[Refusal] = []
    alts: list[Alternative] = []
    spec = str(request.flash_attn)
    releases = [f for f in matrix.flash_attn if spec_allows(request.flash_attn, f.version)]
    if not releases:
        return _unknown_release("flash-attn", target, matrix, request)
    low = [cc for cc in target.capabilities if cc < releases[0].min_cc]
    # xformers instead of flash-attn: offered only when the request with xformers (its bound, if any) solves here.
    instead = Change(request={"flash_attn": None, "xformers": str(request.xformers or "")})
    xformers_fits = bool(low) and solves(target, matrix, request, instead)
    for cc in low:
        alt = alternative("xformers (memory_efficient_attention) and torch SDPA's efficient kernel run on "
                          "{compute_capability}: ask for xformers instead of flash-attn", instead,
                          compute_capability=cc) if xformers_fits else None
        reasons.append(refusal("flash-attn", str(releases[0].version), "compute_capability",
                               "flash-attn needs compute capability {min_cc}; {gpu} is {compute_capability}", alt,
                               min_cc=releases[0].min_cc, gpu=_gpu_name(target, cc), compute_capability=cc))
        if alt is not None:
            alts.append(alt)
    high = [cc for cc in target.capabilities if all(f.max_cc is not None and cc > f.max_cc for f in releases)]
    newer = _flash_runs_on(target, matrix, request, high) if high else None
    for cc in high:
        reasons.append(refusal("flash-attn", spec, "compute_capability",
                               "flash-attn{spec} rejects {gpu} (compute capability {compute_capability}) at run time", newer,
                               spec=spec, max_cc=max(f.max_cc for f in releases if f.max_cc is not None),
                               gpu=_gpu_name(target, cc), compute_capability=cc))
        if newer is not None and newer not in alts:
            alts.append(newer)
    return reasons, alts


def _unknown_release(name: str, target: Target, matrix: Matrix,
                     request: Request) -> tuple[list[Refusal], list[Alternative]]:
    """The bound on a companion (xformers, flash-attn) matches no release gpustack knows: name the releases it knows
    and where they are listed, and, when the whole request solves with any of them, that move (the bound lifted)."""
    attr = dict(_COMPANIONS)[name]
    rows = matrix.xformers if name == "xformers" else matrix.flash_attn
    spec = str(getattr(request, attr))
    known = f"{rows[-1].version}–{rows[0].version}"
    what = "flash-attn 2 release" if name == "flash-attn" else "xformers release"
    every = Change(request={attr: ""})
    alt = alternative("{name} without a version bound plans here (gpustack knows {known}): ask for {name}", every,
                      name=name, known=known) if solves(target, matrix, request, every) else None
    return [refusal(name, spec, "no_release", "{name}{spec} matches no {what} gpustack knows ({known}; `gpustack "
                    "matrix show {name}` lists them)", alt, name=name, spec=spec, what=what, known=known)], \
        [alt] if alt else []


def _flash_runs_on(target: Target, matrix: Matrix, request: Request,
                   high: list[ComputeCapability]) -> Alternative | None:
    """Return the hint "flash-attn >= X runs on these GPUs" for the oldest release whose run-time check accepts every
    GPU of ``high``, only when the whole request with ``flash-attn>=X`` instead of the asked bound solves on the same
    target; else None (nothing unsolved is printed)."""
    runs = sorted((f for f in matrix.flash_attn if all(f.max_cc is None or cc <= f.max_cc for cc in high)),
                  key=lambda f: f.version)
    if not runs:
        return None
    bound = Change(request={"flash_attn": f">={runs[0].version}"})
    if not solves(target, matrix, request, bound):
        return None
    gpus = ", ".join(f"{_gpu_name(target, cc)} (compute capability {cc})" for cc in high)
    return alternative("flash-attn >= {version} runs on {gpus}: ask for flash-attn>={version}", bound,
                       version=runs[0].version, gpus=gpus)


def _xformers_reasons(target: Target, matrix: Matrix, request: Request) -> tuple[list[Refusal], list[Alternative]]:
    if request.xformers is None:
        return [], []
    reasons: list[Refusal] = []
    alts: list[Alternative] = []
    releases = [x for x in matrix.xformers if spec_allows(request.xformers, x.version)]
    if releases and "xformers.components" in request.needs and not any(x.has_components for x in releases):
        # The newest release that has it and with which the whole request solves here, if any.
        has = next((x for x in matrix.xformers if x.has_components
                    and solves(target, matrix, request, _xformers(x.version))), None)
        alt = None if has is None else alternative("xformers {version} has xformers.components (ask for "
                                                   "xformers=={version})", _xformers(has.version), version=has.version)
        return [refusal("xformers", str(request.xformers), "needs",
                        "xformers{spec} matches no xformers release that has what was asked for ({needs})", alt,
                        spec=request.xformers, needs="xformers.components",
                        versions=", ".join(str(x.version) for x in releases))], [alt] if alt else []
    if "xformers.components" in request.needs:
        releases = [x for x in releases if x.has_components]
    if not releases:
        return _unknown_release("xformers", target, matrix, request)
    pins = [x for x in releases if any(spec_allows(request.torch, t.version) and spec_allows(x.torch, t.version) for t in matrix.torch)]
    source_ok = [x for x in releases if any(spec_allows(request.torch, t.version) and xformers_off_pin_ok(x, t.version) for t in matrix.torch)]
    if not pins and not source_ok:
        newest = releases[0]
        pin_facts = {"spec": str(request.xformers), "pins": str(newest.torch), "version": str(newest.version),
                     "torch": str(request.torch or "")}
        # Another torch for the xformers that has what was asked (its needs included), solved on the whole target.
        for x in releases[:12]:
            pin = next((t.version for t in matrix.torch if spec_allows(x.torch, t.version)
                        and solves(target, matrix, request, _xformers(x.version, t.version))), None)
            if pin is not None:
                alts.append(alternative("xformers {version} works with torch {torch} (ask for torch=={torch})",
                                        _xformers(x.version, pin), version=x.version, torch=pin))
                break
        # Or keep the torch bound and move xformers (the oldest that pins an allowed torch and has what is needed).
        usable = [x for x in matrix.xformers if "xformers.components" not in request.needs or x.has_components]
        for x in list(reversed(usable))[:40]:
            pin = next((t.version for t in reversed(matrix.torch) if spec_allows(request.torch, t.version)
                        and spec_allows(x.torch, t.version)
                        and solves(target, matrix, request, _xformers(x.version, t.version))), None)
            if pin is not None:
                alts.append(alternative("xformers {version} works with torch {torch} (ask for xformers=={version})",
                                        _xformers(x.version, pin), version=x.version, torch=pin))
                break
        reasons.append(refusal("xformers", str(newest.version), "torch_pin",
                               "xformers{spec} pins torch{pins} (xformers {version}); torch{torch} was asked",
                               alts[0] if alts else None, **pin_facts))
    return reasons, alts


def _xformers(version: object, torch: object = None) -> Change:
    """The change "ask for xformers==version" (and torch==torch)."""
    if torch is None:
        return Change(request={"xformers": f"=={version}"})
    return Change(request={"torch": f"=={torch}", "xformers": f"=={version}"})


def _grouped(rows: list[tuple[Refusal, str]]) -> list[Refusal]:
    """Return the companions' rejections with the same cause folded (``xformers 0.0.18, 0.0.19 with torch X: why``):
    one refusal of the cause's kind and facts, the cause kept as its ``causes``."""
    groups: dict[tuple[str, str, str], list[Refusal]] = {}
    for why, torch in rows:
        groups.setdefault((why.package, torch, why.text), []).append(why)
    out = []
    for (package, torch, _), whys in groups.items():
        versions = [w.candidate for w in whys]
        shown = versions if len(versions) <= 3 else [versions[-1], "…", versions[0]]
        template = "{name} {versions} with torch {with_torch}: {causes}" if torch else "{name} {versions}: {causes}"
        facts = {**whys[0].facts, "name": package, "versions": ", ".join(shown), "with_torch": torch}
        out.append(Refusal(package, ", ".join(versions), whys[0].kind, facts, template, causes=(whys[0],)))
    return out


def _toolkit_alternatives(target: Target, matrix: Matrix, request: Request,
                          shown: list[Refusal]) -> list[Alternative]:
    """Return "install a CUDA N.x toolkit" for each nvcc major a refusal names, only when the whole request solves
    on the same target with that toolkit."""
    out = []
    # A shown refusal carries the kind and facts of the fact that finally blocked it (``refusal.joined``, ``_grouped``):
    # "nvcc of another CUDA major" is the toolkit refusal that alone names ``cuda_major`` (``compat.nvcc_refusal``).
    wanted = {r.facts["cuda_major"]: r.facts["cuda"] for r in shown if r.kind == "toolkit" and "cuda_major" in r.facts}
    for major, cuda in sorted(wanted.items(), key=lambda kv: int(kv[0])):
        toolkit = Change(target={"nvcc": cuda})
        if solves(target, matrix, request, toolkit):
            out.append(alternative("install a CUDA {cuda_major}.x toolkit and point CUDA_HOME at it (or pass --nvcc "
                                   "{cuda_major}.x when planning)", toolkit, cuda_major=major))
    # An nvcc below a build's CUDA floor (flash-attn's setup.py, an attention kernel): torch's own CUDA, when it is
    # at or above the floor, is the toolkit to install (``compat.build_nvcc``).
    floors = {r.facts["cuda"]: r.facts["min_cuda"] for r in shown if r.kind == "toolkit" and "min_cuda" in r.facts
              and "cuda" in r.facts and "cuda_major" not in r.facts and target.nvcc is not None}
    for cuda, floor in sorted(floors.items(), key=lambda kv: Version(kv[0])):
        toolkit = Change(target={"nvcc": cuda})
        if Version(cuda) >= Version(floor) and solves(target, matrix, request, toolkit):
            out.append(alternative("install the CUDA {cuda} toolkit (the build needs nvcc >= {min_cuda}; nvcc {nvcc} "
                                   "is older) and point CUDA_HOME at it (or pass --nvcc {cuda} when planning)", toolkit,
                                   cuda=cuda, min_cuda=floor, nvcc=target.nvcc))
    return out


_COMPANIONS = (("xformers", "xformers"), ("flash-attn", "flash_attn"))


def _binding(target: Target, matrix: Matrix, request: Request) -> tuple[set[str], list[Alternative]]:
    """Return the binding conflict of a request whose torch fits but whose companions do not: the companions
    (xformers, flash-attn) without which the rest of the request solves on the target, and what works instead,
    each solved for the whole request and target: another release of that companion, or another torch for it."""
    binding = {name for name, attr in _COMPANIONS if getattr(request, attr) is not None
               and solves(target, matrix, request, Change(request={attr: None}))}
    alts: list[Alternative] = []
    for name, attr in _COMPANIONS:
        if name not in binding:
            continue
        asked = getattr(request, attr)
        rows = matrix.xformers if name == "xformers" else matrix.flash_attn
        other = next((r.version for r in rows[:16] if not r.version.is_prerelease and not spec_allows(asked, r.version)
                      and solves(target, matrix, request, Change(request={attr: f"=={r.version}"}))), None)
        if other is not None:
            alts.append(alternative("{name}=={version} works with the rest of the request here (ask for it instead of "
                                    "{name}{asked})", Change(request={attr: f"=={other}"}), name=name,
                                    version=other, asked=asked))
        if request.torch is None or not str(request.torch):
            continue
        releases = [r.version for r in matrix.torch if not r.version.is_prerelease]
        near = [v for v in releases if spec_allows(request.torch, v)]
        if near:  # the torch releases closest to the asked bound first
            i, order = releases.index(near[0]), list(releases)
            releases.sort(key=lambda v: abs(order.index(v) - i))
        torch = next((v for v in releases[:12] if not spec_allows(request.torch, v)
                      and solves(target, matrix, request, Change(request={"torch": f"=={v}"}))), None)
        if torch is not None:
            alts.append(alternative("torch=={torch} takes {name}{asked} (ask for it instead of torch{spec})",
                                    Change(request={"torch": f"=={torch}"}), torch=torch, name=name, asked=asked,
                                    spec=request.torch))
    return binding, alts


def explain_failure(target: Target, matrix: Matrix, request: Request) -> tuple[list[Refusal], list[Alternative]]:
    """Return (refusals, alternatives) for a target and request that the solver could not satisfy."""
    reasons: list[Refusal] = []
    alts: list[Alternative] = []
    for part in (_torch_reasons, _flash_reasons, _xformers_reasons):
        r, a = part(target, matrix, request)
        reasons += r
        alts += a
    if not reasons:
        # Torch itself fits somewhere: say why the newest fitting builds could not take the companions.
        record = _Record()
        # The six newest builds that run here (the GPUs and driver: the others were explained above), those the
        # requested xformers releases pin first: the newest six of all builds are often CUDA 12/13 ones an old
        # driver skips, or builds every asked xformers pins away from, which left nothing but "pins another torch".
        runs = [o for o in _all_options(matrix, target, request.torch)
                if not (request.torch_variant and o.tag != request.torch_variant)
                and not coverage(o.arch, target)[0] and _driver_runs(target, o.cuda, matrix)]
        pins = [x.torch for x in matrix.xformers if request.xformers is not None
                and spec_allows(request.xformers, x.version)]
        on_pin = [o for o in runs if any(spec_allows(p, o.release.version) for p in pins)]
        for opt in list(dict.fromkeys(on_pin + runs))[:6]:
            if request.xformers is not None:
                choose_xformers(opt, target, matrix, request, record)
            if request.flash_attn is not None:
                choose_flash(opt, target, matrix, request, record)
        found = _grouped(record.rows)
        binding, moves = _binding(target, matrix, request)
        if binding:  # the companions the request solves without: the others' rejections blame the wrong package
            found = [f for f in found if f.package in binding] or found
            if all(f.kind in ("torch_pin", "unverified") for f in found):  # a version conflict: move one of them
                alts += moves
            # a companion no asked release of which serves these GPUs (every row about it is about the GPUs'
            # compute capability, not a toolkit or a pin that another choice could meet): the rest solves without it
            gpu_bound = {f.package for f in found} - {f.package for f in found if f.kind != "compute_capability"}
            for name in sorted(gpu_bound & binding):
                attr = dict(_COMPANIONS)[name]
                alts.append(alternative("the rest of the request plans without {name} on {gpus} (drop {name}{asked} "
                                        "from the request)", Change(request={attr: None}), name=name,
                                        asked=getattr(request, attr),
                                        gpus=", ".join(dict.fromkeys(g.name for g in target.gpus))))
        # A reason about the machine (nvcc, GPUs, platform) tells the user more than "X pins another torch".
        specific = [f for f in found if f.kind != "torch_pin"]
        shown = (specific or found)[:8]
        reasons += shown or [refusal("", "", "other", "no combination of the requested packages fits this target")]
        alts += _toolkit_alternatives(target, matrix, request, shown)
    return reasons, list(dict.fromkeys(alts))  # NoCompatibleStack orders them: root blocking facts first, each once
