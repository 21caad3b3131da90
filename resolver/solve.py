"""The joint solve: torch, its CUDA build, xformers and flash-attn for every GPU of a target, or why not.

Pure: no subprocess, network, files, environment or clock. ``solve(target, matrix, request)`` returns a ``Stack``
or raises ``NoCompatibleStack`` with one reason per blocking fact and what would work instead.

Ranking (smallest key wins): native code (SASS) before PTX-only coverage; companions on their wheels' torch pin
before builds against another torch; (with ``prefer_wheels``: fewest source builds); verified facts before unverified ones (an unverified fact is used
only when nothing verified fits); then the newest torch (with ``Request.near``: the torch closest to it, its own
build first, and companions closest to theirs, wheels first); with a source build and a known nvcc, a torch CUDA no newer
than that nvcc; the highest CUDA the driver runs; the newest xformers and
flash-attn; a wheel over a build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from resolver.attention import choose_kernel, later_generations, pointer
from resolver.candidates import TorchOption, torch_options
from resolver.compat import (
    attention_target_problem,
    coverage,
    driver_refusal,
    gpu_driver_refusals,
    integrated_gpus,
    torch_release_refusal,
)
from resolver.companions import Companion, choose_flash, choose_xformers, flash_fits_gpus
from resolver.errors import NoCompatibleStack
from resolver.explain import explain_failure, solves
from resolver.holds import contradicts, held_pins, hold_refusal, within
from resolver.matrix_types import Matrix, Pin
from resolver.models import PLATFORMS, PackageChoice, Stack, Target, spec_allows
from resolver.passthrough import UNCHECKED, pin_others
from resolver.refusal import Alternative, Change, Refusal, advice, alternative, apply, refusal
from resolver.report import Reporter
from resolver.request import Request

__all__ = ["solve", "Option"]


@dataclass(frozen=True, slots=True)
class Option:
    """A complete candidate stack and its rank."""

    torch: TorchOption
    torch_ptx: tuple[str, ...]  # GPUs that run this torch build only through PTX JIT
    companions: tuple[Companion, ...]

    @property
    def ptx(self) -> tuple[str, ...]:
        return self.torch_ptx + tuple(p for c in self.companions for p in c.ptx)

    @property
    def unverified(self) -> tuple[str, ...]:
        return self.torch.unverified + tuple(u for c in self.companions for u in c.unverified)

    @property
    def off_pin(self) -> int:
        return sum(1 for c in self.companions if c.off_pin)

    @property
    def settled(self) -> bool:
        """True when no older torch can rank higher: native code, companions on their pin, verified facts only."""
        return not self.ptx and not self.off_pin and not self.unverified

    @property
    def source_builds(self) -> int:
        return sum(1 for c in self.companions if c.choice.method == "source")

    @property
    def versions(self) -> dict[str, str]:
        """The stack's packages and versions, as ``holds.held_pins`` reads them."""
        return {"torch": self.torch.version, **{c.choice.name: c.choice.version for c in self.companions}}

    def key(self, request: Request, target: Target) -> tuple[object, ...]:
        t = self.torch
        newest = request.nearness("torch", t.release.version)
        near = request.near_version("torch")
        if near is not None:  # the same build of torch first: its CUDA tag, or PyPI's when it has none
            tag = near.partition("+")[2]
            newest += (not (t.tag == tag if tag else t.from_pypi),)
        nvcc_penalty = 0
        if self.source_builds and target.nvcc is not None and t.cuda is not None and t.cuda > target.nvcc:
            nvcc_penalty = 1
        cuda = tuple(-x for x in t.cuda.release) if t.cuda else ()
        companions = tuple(request.nearness(c.choice.name, Version(c.choice.version)) for c in self.companions)
        methods = tuple(c.choice.method != "wheel" for c in self.companions)
        first: tuple[object, ...] = (bool(self.ptx), self.off_pin)
        if request.prefer_wheels:
            first += (self.source_builds,)
        first += (not t.is_installed(request.keep_torch),)
        return first + (bool(self.unverified), newest, nvcc_penalty, cuda, companions, methods, not t.from_pypi)


def _torch_fits(opt: TorchOption, target: Target, matrix: Matrix, reporter: Reporter) -> tuple[bool, tuple[str, ...]]:
    """Return (fits, GPUs served only by PTX) for one torch build; report a rejection."""
    if opt.cuda is None:
        return True, ()
    missing, ptx = coverage(opt.arch, target.capabilities)
    if missing:
        reporter.rejected(refusal("torch", opt.version, "gpu_code", "no code for {sms}",
                                  sms=", ".join(cc.sm for cc in missing),
                                  compute_capability=", ".join(str(cc) for cc in missing)))
        return False, ()
    problem = driver_refusal(target.driver, opt.cuda, matrix, target.platform, ptx=bool(ptx), candidate=opt.version)
    if problem is not None:
        reporter.rejected(problem)
        return False, ()
    return True, tuple(f"{cc.sm} runs torch {opt.version} only through PTX JIT" for cc in ptx)


def _contradicted(held: tuple[Pin, ...], request: Request, target: Target) -> str | None:
    """Return the first pass-through requirement that nothing satisfies under the holds ``held``, or None: with the
    index's answer, none of its files that install on the target (``pin_others`` of ``holds.within``); without
    one, by the specifiers alone (``holds.contradicts``)."""
    for text in request.others:
        narrowed = within((text,), held)
        if narrowed == (text,):
            continue  # no hold bounds this package
        name = str(canonicalize_name(Requirement(text).name))
        if request.index is not None and name not in UNCHECKED and name in request.index:
            if pin_others(narrowed, request.index, target)[2]:
                return text
        elif contradicts(text, held):
            return text
    return None


def _hold_problem(option: Option, target: Target, matrix: Matrix, request: Request,
                  seen: dict[tuple[int, ...], str | None]) -> Refusal | None:
    """Return why ``option`` cannot take the request's pass-through requirements: a known-bad pin its stack holds
    (``matrices/pins.toml``) contradicts one of them. ``seen`` caches the answer per set of holds."""
    if not request.others or not matrix.pins:
        return None
    versions = option.versions
    held = tuple(held_pins(versions, target.platform, matrix.pins))
    if not held:
        return None
    key = tuple(id(p) for p in held)
    if key not in seen:
        seen[key] = _contradicted(held, request, target)
    text = seen[key]
    return None if text is None else hold_refusal(text, held, versions)


def _options(target: Target, matrix: Matrix, request: Request, reporter: Reporter,
             kernel_why: list[Refusal] | None = None, hold_why: list[Refusal] | None = None) -> list[Option]:
    """Return feasible options, newest torch first; stops early once nothing later can rank higher.

    ``kernel_why`` collects why a requested attention kernel could not join a torch build that fits otherwise;
    ``hold_why``, why a stack that fits otherwise holds a pin (``matrices/pins.toml``) a requirement contradicts.
    """
    found: list[Option] = []
    holds_seen: dict[tuple[int, ...], str | None] = {}
    if gpu_driver_refusals(target, matrix):
        return found  # the driver cannot drive a GPU of the target, whatever the stack: solve says why
    if request.flash_attn is not None and not any(
        flash_fits_gpus(f, target) for f in matrix.flash_attn if spec_allows(request.flash_attn, f.version)
    ):
        return found  # no flash-attn release runs on these GPUs, whatever torch: explain_failure says why
    for rel in request.order("torch", matrix.torch):
        if not spec_allows(request.torch, rel.version):
            continue
        installable = torch_release_refusal(rel, target, matrix)
        if installable is not None:
            reporter.rejected(installable)
            continue
        for opt in torch_options(rel, target, matrix):
            if request.torch_variant and opt.tag != request.torch_variant:
                continue
            if request.verified_only and (opt.unverified or opt.assumptions):
                reporter.rejected(refusal("torch", opt.version, "unverified", "relies on an unverified fact "
                                          "(--verified-only)", facts="; ".join(opt.unverified + opt.assumptions)))
                continue
            fits, ptx = _torch_fits(opt, target, matrix, reporter)
            if not fits:
                continue
            companions: list[Companion] = []
            ok = True
            for wanted, chooser in ((request.xformers, choose_xformers), (request.flash_attn, choose_flash)):
                if wanted is None:
                    continue
                comp = chooser(opt, target, matrix, request, reporter)
                if comp is None:
                    ok = False
                    break
                companions.append(comp)
            for name, spec in request.kernels if ok else ():
                kernel, why = choose_kernel(name, spec, opt, target, matrix.attention, reporter,
                                            verified_only=request.verified_only, prefer_wheels=request.prefer_wheels)
                if kernel is None:
                    if kernel_why is not None:
                        kernel_why.extend(why)
                    ok = False
                    break
                companions.append(kernel)
            if not ok:
                continue
            option = Option(opt, ptx, tuple(companions))
            contradiction = _hold_problem(option, target, matrix, request, holds_seen)
            if contradiction is not None:
                reporter.rejected(contradiction)
                if hold_why is not None:
                    hold_why.append(contradiction)
                continue
            found.append(option)
        if request.keep_torch and not any(o.torch.is_installed(request.keep_torch) for o in found) \
                and _installed_is_older(request.keep_torch, rel.version):
            continue  # the installed torch, if it fits, outranks newer releases: keep looking down to it
        if not request.prefer_wheels and any(o.settled for o in found):
            break  # later releases in this order rank lower
        if request.prefer_wheels and any(o.settled and not o.source_builds for o in found):
            break
    return found


def feasible(target: Target, matrix: Matrix, request: Request) -> bool:
    """Return whether some stack satisfies ``request`` on ``target``: how an alternative is checked before it is shown."""
    return bool(_options(target, matrix, request, Reporter()))


def _installed_is_older(installed: str, release: Version) -> bool:
    try:
        return Version(installed.split("+")[0]) < release
    except InvalidVersion:
        return False


def from_here_note(target: Target) -> str:
    """Return the note naming the facts of a described target taken from this machine (``Target.from_here``) and the
    options that change them."""
    facts = {"python": (f"Python {target.python}", "--python X.Y"),
             "platform": (f"platform {target.platform}", f"--platform TAG ({', '.join(PLATFORMS)})")}
    said = [facts[k] for k in target.from_here]
    one = len(said) == 1
    return (f"{' and '.join(f for f, _ in said)} {'is' if one else 'are'} this machine's (the described target does "
            f"not give {'it' if one else 'them'}): pass {' and '.join(o for _, o in said)} to set "
            f"{'it' if one else 'them'}")


def _stack(best: Option, target: Target, request: Request, notes: list[str], matrix: Matrix) -> Stack:
    t = best.torch
    torch_choice = PackageChoice(
        name="torch",
        version=t.version,
        method="wheel",
        index_url=t.index_url,
        variant=t.tag,
        cuda=str(t.cuda) if t.cuda else None,
        arch_list=t.arch.to_torch_arch_list() or None,
        ptx_fallback=bool(best.torch_ptx),
        notes=best.torch_ptx[:1],
    )
    notes = list(notes)
    if target.from_here:
        notes.append(from_here_note(target))
    if target.glibc_assumed and target.platform.startswith("linux_") and target.glibc is not None:
        hosts = ", ".join(matrix.first_releases_with(target.glibc))
        notes.append(f"glibc not given: assumed {target.glibc} (hosts such as {hosts} and later: "
                     "matrices/platforms.toml); pass --glibc X.Y for an older host")
    if target.driver is None and not target.is_cpu:
        notes.append("no driver given or detected: assumed new enough for every CUDA build; pass --driver to check it")
    for u in best.unverified + best.torch.assumptions:
        notes.append(f"relies on an unverified fact: {u}")
    for p in best.ptx:
        notes.append(f"PTX fallback: {p}; first launches JIT-compile and need the toolkit's own driver")
    for c in best.companions:
        notes.extend(c.notes)
    return Stack(
        target=target,
        packages=(torch_choice,) + tuple(c.choice for c in best.companions),
        other_requirements=request.others,
        notes=tuple(dict.fromkeys(notes)),
        torch_cxx11_abi=t.cxx11_abi,
        others_index_url=request.index_url,
    )


def _driver_gpu_refusal(target: Target, matrix: Matrix, request: Request) -> NoCompatibleStack | None:
    """Return the refusal of a target whose driver cannot drive one of its GPUs (``compat.gpu_driver_refusals``), each
    GPU's refusal carrying the driver inside its range (the matrix's own) only when the whole request solves with it
    on the whole target; or None."""
    why = gpu_driver_refusals(target, matrix)
    if not why:
        return None
    out: list[Refusal] = []
    alts: list[Alternative] = []
    for r in why:
        change = Change(target={"driver": r.facts["suggested"]}) if r.facts["suggested"] else None
        alt = None
        if change is not None and solves(target, matrix, request, change):
            alt = alternative("use an NVIDIA driver of {driver_range} for {gpu} (such as {suggested}, pass --driver "
                              "{suggested})", change, driver_range=r.facts["driver_range"], gpu=r.facts["gpu"],
                              suggested=r.facts["suggested"])
            alts.append(alt)
        out.append(dataclasses.replace(r, alternative=alt))
    return NoCompatibleStack(out, list(dict.fromkeys(alts)))


def _kernel_refusal(target: Target, matrix: Matrix, request: Request) -> NoCompatibleStack | None:
    """Return the refusal for a requested attention kernel that cannot run on the target whatever torch, or None."""
    if request.flash_attn is not None and not any(spec_allows(request.flash_attn, f.version) for f in matrix.flash_attn):
        where = pointer(matrix.attention, "flash-attn", request.flash_attn)
        if where:
            # "ask for it by that name" only for the distributions with which the rest of the request solves here.
            later = {a.name for a in later_generations(matrix.attention, "flash-attn", request.flash_attn)}
            asked = tuple(f"{n}{s}" for n, s in request.kernels)
            by_name = {n: Change(request={"flash_attn": None, "kernels": (*asked, n)}) for n in sorted(later)}
            fits = frozenset(n for n, c in by_name.items() if solves(target, matrix, request, c))
            text = pointer(matrix.attention, "flash-attn", request.flash_attn, fits) if fits else None
            solved = None if text is None else alternative("{distributions}: ask for it by that name",
                                                           *(c for n, c in by_name.items() if n in fits),
                                                           distributions=text)
            # Why the later generations do not run here either, when no torch could change that.
            why_not = [] if fits else [p for n in sorted(later) for p in [attention_target_problem(a, target) for a in matrix.attention
                                                                           if a.name == n][:1] if p is not None]
            return NoCompatibleStack([refusal("flash-attn", str(request.flash_attn), "no_release",
                                              "flash-attn{spec} matches no flash-attn 2 release", solved,
                                              spec=request.flash_attn, later=where), *why_not],
                                     [solved] if solved else [])
    for name, spec in request.kernels:
        rows = [a for a in matrix.attention if a.name == name and spec_allows(spec, a.version)]
        problems = [attention_target_problem(a, target) for a in rows]
        if rows and all(problems):
            # torch's own SDPA is offered only when the rest of the request solves here without the kernel.
            without = Change(request={"kernels": tuple(f"{n}{s}" for n, s in request.kernels if n != name)})
            sdpa = [alternative("torch's scaled_dot_product_attention (flash / efficient / cuDNN kernels) runs here: "
                                "`gpustack verify` measures it", without)]
            if not solves(target, matrix, request, without):
                sdpa = []
            return NoCompatibleStack([p for p in dict.fromkeys(problems) if p is not None], sdpa)
    return None


def _kernel_alternatives(target: Target, matrix: Matrix, request: Request) -> list[Alternative]:
    """What works when the asked attention kernels fit no torch build the request allows, each solved: the request
    with the torch bound lifted (naming the torch it gets), and the request without the kernels."""
    out = []
    # The user's torch bound is lifted; a requested profile's stays (``apply`` narrows to it, never lifts it).
    _, lifted = apply(Change(request={"torch": "", "torch_variant": None, "keep_torch": None}), target, request)
    if str(request.torch) or request.torch_variant or request.keep_torch:
        options = _options(target, matrix, lifted, Reporter())
        if options:
            best = min(options, key=lambda o: o.key(lifted, target))
            names = ", ".join(f"{n}{s}" for n, s in request.kernels)
            take = Change(request={"torch": f"=={best.torch.release.version}", "torch_variant": best.torch.tag,
                                   "keep_torch": None})
            out.append(alternative("torch=={version} takes {kernels} on this target (ask for it instead of "
                                   "{asked}{installed})", take, version=best.torch.version, kernels=names,
                                   asked=request.describe("torch"),
                                   installed=" and the installed torch" if request.keep_torch else ""))
    out.append(alternative("drop the attention kernel: the rest of the request solves without it",
                           Change(request={"kernels": ()})))
    return out


def _hold_alternatives(target: Target, matrix: Matrix, request: Request, why: list[Refusal]) -> list[Alternative]:
    """What works when every stack that fits holds a pin a requirement contradicts (``why``, kind ``hold``), each
    solved: the requirement inside the pin, and the torch nearest the asked one that takes the requirement as asked."""
    out = []
    for asked, pin, when in dict.fromkeys((r.facts["asked"], r.facts["pin"], r.facts["when"]) for r in why):
        req = Requirement(asked)
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        inside = f"{req.name}{extras}{Requirement(pin).specifier}{f'; {req.marker}' if req.marker else ''}"
        change = Change(request={"others": tuple(inside if o == asked else o for o in request.others)})
        if solves(target, matrix, request, change):
            out.append(alternative("ask for {inside} instead of {asked} ({when} needs it)", change, inside=inside,
                                   asked=asked, when=when))
    if str(request.torch) or request.torch_variant or request.keep_torch:
        _, lifted = apply(Change(request={"torch": "", "torch_variant": None, "keep_torch": None}), target, request)
        anchor = next((s.version for s in request.torch if s.operator in ("==", "===")), None)
        if anchor is not None:  # the torch nearest the asked one first
            lifted = dataclasses.replace(lifted, near=(("torch", anchor), *(n for n in lifted.near if n[0] != "torch")))
        options = _options(target, matrix, lifted, Reporter())
        if options:
            best = min(options, key=lambda o: o.key(lifted, target))
            take = Change(request={"torch": f"=={best.torch.release.version}", "torch_variant": best.torch.tag,
                                   "keep_torch": None})
            if solves(target, matrix, request, take):
                asked_others = ", ".join(dict.fromkeys(r.facts["asked"] for r in why))
                out.append(alternative("torch=={version} takes {others} on this target (ask for it instead of "
                                       "{asked}{installed})", take, version=best.torch.version, others=asked_others,
                                       asked=request.describe("torch"),
                                       installed=" and the installed torch" if request.keep_torch else ""))
    return out


def _with_optional(target: Target, matrix: Matrix, request: Request) -> tuple[Request, list[str]]:
    """Return ``request`` with each optional xformers / flash-attn that fits added, and a note per one left out."""
    notes: list[str] = []
    for name, spec in request.optional:
        if name not in ("xformers", "flash-attn"):
            continue
        trial = (dataclasses.replace(request, optional=(), xformers=spec) if name == "xformers"
                 else dataclasses.replace(request, optional=(), flash_attn=spec))
        try:
            solve(target, matrix, trial)
        except NoCompatibleStack as exc:
            notes.append(f"left out {name}{spec}: {exc.reasons[0] if exc.reasons else 'no build fits this target'}")
            continue
        request = dataclasses.replace(trial, optional=request.optional)
    return request, notes


def _optional_kernels(best: Option, target: Target, matrix: Matrix, request: Request,
                      reporter: Reporter) -> tuple[Option, list[str]]:
    """Return ``best`` with each optional attention kernel that fits its torch, and a note per one left out."""
    notes: list[str] = []
    added: list[Companion] = []
    for name, spec in request.optional:
        if name in ("xformers", "flash-attn"):
            continue  # decided by _with_optional
        kernel, why = choose_kernel(name, spec, best.torch, target, matrix.attention, reporter,
                                    verified_only=request.verified_only, prefer_wheels=request.prefer_wheels)
        if kernel is None:
            notes.append(f"left out {name}{spec}: {why[0].text}")
        else:
            added.append(kernel)
    return dataclasses.replace(best, companions=best.companions + tuple(added)), notes


def _pins_refused(why: list[Refusal], target: Target, matrix: Matrix, request: Request) -> NoCompatibleStack:
    """The refusal of pass-through requirements that do not pin (``why``) and what would work. When each is a glibc
    one: a host with the glibc their wheels need, offered only when the whole request solves there; when the rest of
    the request does not solve on the target either, its reasons too, with those of its alternatives under which
    the pass-through requirements pin as well. Otherwise the index advice, unless each refusal is of an index that
    gave no answer (its text says what to do: the name may well exist)."""
    if not all(r.kind == "glibc" for r in why):
        index = request.index or {}
        unanswered = [r for r in why if (p := index.get(str(canonicalize_name(r.package)))) is not None and p.unreachable]
        return NoCompatibleStack(why, [] if len(unanswered) == len(why) else [
            advice("a plan names only packages that exist: check the spelling and the index (--index-url), or drop "
                   "the requirement")])

    def pins(change: Change) -> bool:
        t, r = apply(change, target, request)
        return r.index is not None and not pin_others(r.others, r.index, t)[2]

    glibc = max(Version(r.facts["glibc_needed"]) for r in why)
    host = Change(target={"glibc": str(glibc)})
    if pins(host) and solves(target, matrix, request, host):
        return NoCompatibleStack(why, [alternative("a host with glibc {glibc} or newer (pass its --glibc)", host,
                                                   glibc=glibc)])
    if feasible(target, matrix, request):
        return NoCompatibleStack(why, [])
    reasons, alternatives = explain_failure(target, matrix, request)
    return NoCompatibleStack([*why, *reasons], [a for a in alternatives if a.changes and all(map(pins, a.changes))])


def solve(target: Target, matrix: Matrix, request: Request, reporter: Reporter | None = None) -> Stack:
    """Return the best stack for ``target``, or raise ``NoCompatibleStack`` explaining each blocking fact."""
    rep = reporter or Reporter()
    if target.is_cpu:
        for name, spec in (("xformers", request.xformers), ("flash-attn", request.flash_attn), *request.kernels):
            if spec is not None:
                raise NoCompatibleStack(
                    [refusal(name, str(spec), "platform", "{name} needs an NVIDIA GPU; this is a CPU target", name=name)],
                    [advice("torch's scaled_dot_product_attention runs on the CPU (math and CPU flash kernels)"),
                     advice("plan for a GPU machine with --gpu NAME")],
                )
    jetson = integrated_gpus(target, matrix)
    if jetson:
        to_cpu = Change(target={"gpus": ""})
        # A CPU-only stack is offered only when the request has no GPU-only package and solves on the CPU target.
        cpu_ok = (request.xformers is None and request.flash_attn is None and not request.kernels
                  and solves(target, matrix, request, to_cpu))
        raise NoCompatibleStack(
            [refusal("torch", "", "platform", "{gpus} is an integrated (Jetson / Tegra) GPU: the CUDA wheels on PyPI and "
                     "the PyTorch index are built for discrete GPUs and Arm servers (SBSA), not for JetPack",
                     gpus=", ".join(dict.fromkeys(jetson)))],
            [advice("install torch from NVIDIA's Jetson wheels for your JetPack release (https://pypi.jetson-ai-lab.io: "
                    "jp6/cu126 for Orin on JetPack 6, sbsa/cu130 for Thor on JetPack 7; docs/matrix.md)")]
            + ([alternative("plan a CPU-only stack with --cpu", to_cpu)] if cpu_ok else []),
        )
    undriven = _driver_gpu_refusal(target, matrix, request)
    if undriven is not None:
        raise undriven
    blocked = _kernel_refusal(target, matrix, request)
    if blocked is not None:
        raise blocked
    pinned_notes: list[str] = []
    pinned: tuple[str, ...] | None = None
    if request.index is not None and request.others:
        pinned, pinned_notes, why = pin_others(request.others, request.index, target)
        if why:
            raise _pins_refused(why, target, matrix, request)
    # request.others stay as asked while options are weighed: the holds of each stack narrow them (_hold_problem)
    left_out: list[str] = []
    if request.optional and not target.is_cpu:
        request, left_out = _with_optional(target, matrix, request)
    kernel_why: list[Refusal] = []
    hold_why: list[Refusal] = []
    options = _options(target, matrix, request, rep, kernel_why, hold_why)
    if not options:
        if kernel_why and _options(target, matrix, dataclasses.replace(request, kernels=()), Reporter()):
            raise NoCompatibleStack(list(dict.fromkeys(kernel_why))[:6], _kernel_alternatives(target, matrix, request))
        if hold_why:  # a stack fits but for a hold: that is the reason, once per requirement and pin
            first = {(r.facts["asked"], r.facts["pin"], r.facts["when"]): r for r in reversed(hold_why)}
            raise NoCompatibleStack(list(reversed(first.values())), _hold_alternatives(target, matrix, request, hold_why))
        reasons, alternatives = explain_failure(target, matrix, request)
        raise NoCompatibleStack(reasons, alternatives)
    best = min(options, key=lambda o: o.key(request, target))
    if pinned is not None:  # pinned inside the holds of the chosen stack (numpy -> the newest numpy<2 for torch<2.3)
        narrowed = within(request.others, held_pins(best.versions, target.platform, matrix.pins))
        if narrowed != request.others and request.index is not None:
            pinned, pinned_notes, why = pin_others(narrowed, request.index, target)
            if why:  # not reached: _options asked the same of the index
                raise NoCompatibleStack(why, [])
        request = dataclasses.replace(request, others=pinned)
    notes: list[str] = []
    if request.optional and not target.is_cpu:
        best, more = _optional_kernels(best, target, matrix, request, rep)
        left_out += more
    elif request.optional:
        left_out += [f"left out {n}{s}: it needs an NVIDIA GPU; this is a CPU target" for n, s in request.optional]
    no_wheels_here = request.flash_attn is not None and not any(
        w.platform == target.platform for f in matrix.flash_attn for w in f.wheels
    )
    wheel_opts: list[Option] = []
    if best.source_builds and not request.prefer_wheels:
        wheel_request = dataclasses.replace(request, prefer_wheels=True)
        wheel_opts = [o for o in _options(target, matrix, wheel_request, Reporter()) if not o.source_builds and not o.ptx]
    built = ", ".join(f"{c.choice.name} {c.choice.version}" for c in best.companions if c.choice.method == "source")
    if best.source_builds and no_wheels_here and not wheel_opts:  # only when no torch has a wheel: then it is true
        notes.append(f"flash-attn publishes no {target.platform} wheels (no release in the matrix has one): {built} "
                     f"is built from source for torch {best.torch.version} + Python {target.python}")
    elif best.source_builds:
        if wheel_opts:
            alt = min(wheel_opts, key=lambda o: o.key(wheel_request, target))
            names = ", ".join(f"{c.choice.name} {c.choice.version}" for c in alt.companions)
            notes.append(
                f"{built} will be built from source; torch {alt.torch.version} has prebuilt wheels ({names}): "
                "add --prefer-wheels to choose that instead"
            )
    if request.keep_torch:
        if best.torch.is_installed(request.keep_torch):
            notes.append(f"keeps the installed torch {request.keep_torch} (pass --upgrade to move to the newest that fits)")
        else:
            notes.append(f"the installed torch {request.keep_torch} cannot serve this request on this target: "
                         f"replaced by {best.torch.version}")
    notes += [f"left out {line!r}: its environment marker is false on the target ({target.platform}, Python "
              f"{target.python})" for line in request.dropped]
    notes += left_out + pinned_notes
    rep.pinned("torch", best.torch.version)
    for c in best.companions:
        rep.pinned(c.choice.name, c.choice.version)
    return _stack(best, target, request, notes, matrix)
