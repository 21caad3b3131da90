"""Say whether moving an installed stack to new versions is safe: the solver with the proposed set pinned, plus a diff.

Pure: the caller reads the current set (a lock or the environment) and passes versions as data, with the index's
answer for pass-through names. ``proposed_versions`` asks the rules plan uses: the solve for torch / xformers /
flash-attn on the set's target, ``resolver.passthrough`` for the others.
``check_upgrade(current, proposed, matrix, original=..., profiles=..., requirements=...)`` solves the target with the
proposed torch (with its local tag), xformers and flash-attn pinned, under the original request (a lock's
``[tool.gpustack]`` request and profile); the solver's refusals (``resolver.refusal``) are the ``unsafe`` findings.
On top of the solve sits what only an upgrade knows (docs/check-upgrade.md):

* a compiled package kept while torch moves must be rebuilt or reinstalled when its binary was built for the old
  torch (a source build; a direct-URL wheel such as flash-attn's, one per torch minor and C++ ABI): ``needs-rebuild``;
* a package the solved set builds from source that was not built here for this torch: ``needs-rebuild``;
* with the driver unknown, a set that needs a newer driver than the current one: ``unsafe``, naming the driver.

The nearest safe set is one solve under the original request and the new requirements with ``Request.near`` set to
the current versions (the solver ranks the closest first), then checked like any proposal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from resolver import compat
from resolver.candidates import torch_options
from resolver.holds import contradicts, held_pins, within
from resolver.errors import BadInput, NoCompatibleStack
from resolver.matrix_types import Matrix
from resolver.passthrough import IndexProject, pin_others
from resolver.refusal import Refusal, refusal
from resolver.models import PackageChoice, Stack, Target, format_driver, marker_environment
from resolver.request import SOLVED, Request, parse_request
from resolver.solve import solve

__all__ = ["Installed", "Finding", "UpgradeReport", "proposed_versions", "upgrade_request", "check_upgrade"]

Verdict = Literal["safe", "needs-rebuild", "unsafe"]
_RANK = {"safe": 0, "needs-rebuild": 1, "unsafe": 2}


@dataclass(frozen=True, slots=True)
class Installed:
    """What is there now. ``versions`` maps a package to its version (torch with its local tag, ``2.1.0+cu121``).

    ``built_for_torch`` maps a compiled package to the torch version its binary was built against (a flash-attn
    wheel for torch 2.6 says ``"2.6"``); unknown means "the torch installed now". ``source_built`` names packages
    compiled on the machine.
    """

    target: Target
    versions: Mapping[str, str]
    built_for_torch: Mapping[str, str] = field(default_factory=dict)
    source_built: frozenset[str] = frozenset()
    floor: Version | None = None  # the driver the current set needs (a lock's min_driver), when known
    # each installed package's declared requirements (its Requires-Dist lines), when read (an environment; a lock
    # records none): a pass-through move is checked against them
    requires: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # the request options the set was made with (a lock's --verified-only / --prefer-wheels: cmd_lock.replayed_options);
    # every solve of the check keeps them, as a re-lock does
    verified_only: bool = False
    prefer_wheels: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason an upgrade is not safe. ``kind``: the solver's refusal kind (``resolver.refusal.KINDS``), or
    ``rebuild`` / ``driver_floor`` for what the upgrade diff adds."""

    package: str
    verdict: Verdict
    reason: str
    kind: str = "other"


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    """The verdict, one finding per problem, the set the solver checked, and the closest set of versions without
    any finding (``None``: none found)."""

    verdict: Verdict
    current: dict[str, str]
    proposed: dict[str, str]
    findings: tuple[Finding, ...]
    nearest: dict[str, str] | None = None
    notes: tuple[str, ...] = ()
    checked: dict[str, str] | None = None  # the solved set: torch with its build (``2.2.0+cu121``), how each comes
    # when no safe set is near: the nearest set that works once a compiled package is rebuilt (its findings, all
    # ``needs-rebuild``), solved and checked as the nearest safe set is; None when a safe one is, or none is
    rebuild: dict[str, str] | None = None
    rebuild_findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the documented ``check-upgrade --json`` object."""
        return {
            "verdict": self.verdict,
            "current": self.current,
            "proposed": self.proposed,
            "checked": self.checked,
            "findings": [{"package": f.package, "verdict": f.verdict, "kind": f.kind, "reason": f.reason}
                         for f in self.findings],
            "nearest_safe": self.nearest,
            "nearest_rebuild": None if self.rebuild is None else {
                "versions": self.rebuild,
                "findings": [{"package": f.package, "verdict": f.verdict, "kind": f.kind, "reason": f.reason}
                             for f in self.rebuild_findings]},
            "notes": list(self.notes),
        }


def _canon(versions: Mapping[str, str]) -> dict[str, str]:
    return {str(canonicalize_name(k)): v for k, v in versions.items()}


def _base(version: str) -> Version:
    return Version(version.split("+")[0])


def _minor(v: Version) -> str:
    return f"{v.major}.{v.minor}"


def _parse(requirements: Iterable[str]) -> list[Requirement]:
    out = []
    for line in requirements:
        try:
            out.append(Requirement(line))
        except InvalidRequirement as exc:
            raise BadInput(f"invalid requirement {line!r}: {exc}; write it as e.g. torch==2.2.0") from None
    return out


def _rows(name: str, matrix: Matrix) -> Sequence[Any]:
    return {"torch": matrix.torch, "xformers": matrix.xformers, "flash-attn": matrix.flash_attn}.get(name, ())


def _known(name: str, version: str, matrix: Matrix) -> bool:
    try:
        v = _base(version)
    except InvalidVersion:
        return False
    return any(r.version == v for r in _rows(name, matrix))


def _named(requirements: Sequence[str], target: Target) -> list[Requirement]:
    """Return the requirements whose environment marker is true on ``target`` (the set's, not this machine's)."""
    env = marker_environment(target)
    return [r for r in _parse(requirements) if r.marker is None or r.marker.evaluate(env)]


def _plan_solve(current: Installed, requirements: Sequence[str], matrix: Matrix) -> Stack | None:
    """Return what ``gpustack plan REQ...`` solves on the set's target when REQ names torch, xformers or flash-attn
    (the solved packages the requirements do not name staying as close to their current versions as the solve
    allows: an xformers that pins another torch moves torch, as pip would), else ``None``; ``None`` too when the
    solver refuses (the verdict then says why)."""
    named = {str(canonicalize_name(r.name)) for r in _named(requirements, current.target)}
    if not named & set(SOLVED):
        return None
    request = parse_request(requirements, matrix, marker_env=marker_environment(current.target),
                            verified_only=current.verified_only, prefer_wheels=current.prefer_wheels)
    keep = tuple((k, v) for k, v in _canon(current.versions).items()
                 if k in SOLVED and k not in named and _known(k, v, matrix))
    try:
        return solve(current.target, matrix, dataclasses.replace(request, near=keep))
    except NoCompatibleStack:
        return None


def _pass_through(req: Requirement, index: Mapping[str, IndexProject], target: Target) -> str | None:
    """Return the version the pass-through rule (``resolver.passthrough``, as plan pins) gives ``req`` on
    ``target`` from the index's answer; ``None`` when it was not looked up. Raises ``NoCompatibleStack`` (the
    index's refusal) when no release on the index serves it there, as plan refuses it."""
    name = str(canonicalize_name(req.name))
    if name not in index:
        return None
    pinned, _, why = pin_others((str(req),), index, target)
    if why and index[name].unreachable:  # not the input's fault: exit 1 (README), as plan's refusal of it
        from resolver.installers import SourceUnreachable

        raise SourceUnreachable(f"{req}: {why[0].text}")
    if why:  # a well-formed requirement nothing on the index serves: refused, exit 1, as plan refuses it (README)
        raise NoCompatibleStack(why[:1])
    return str(next(iter(Requirement(pinned[0]).specifier)).version)


def proposed_versions(current: Installed, requirements: Sequence[str], matrix: Matrix,
                      index: Mapping[str, IndexProject] | None = None) -> dict[str, str]:
    """Return the current versions with ``requirements`` applied, as they would install on the set's target:
    torch, xformers and flash-attn as ``gpustack plan REQ...`` solves them for that target (``_plan_solve``; when it
    refuses, the newest matrix release each admits); a pass-through package as plan pins it from ``index`` (the
    index's answer for it, ``resolver.index_lookup``); without one, an ``==`` pin as written. A requirement whose
    marker is false on the target changes nothing. Raises ``NoCompatibleStack`` (kind ``no_release``) for a
    requirement no release meets, as plan refuses it (exit 1), and ``BadInput`` for one that is not a requirement."""
    out = _canon(current.versions)
    stack = _plan_solve(current, requirements, matrix)
    for req in _named(requirements, current.target):
        name = str(canonicalize_name(req.name))
        local = next((s.version.split("+", 1)[1] for s in req.specifier if "+" in s.version), None)
        spec = SpecifierSet(",".join(f"{s.operator}{s.version.split('+')[0]}" for s in req.specifier))
        known = sorted(r.version for r in _rows(name, matrix) if not r.version.is_prerelease
                       and not r.version.is_devrelease and spec.contains(r.version, prereleases=True))
        solved = stack.get(name) if stack is not None else None
        if solved is not None and spec.contains(_base(solved.version), prereleases=True):
            out[name] = str(_base(solved.version)) + (f"+{local}" if local else "")
        elif known:
            out[name] = str(known[-1]) + (f"+{local}" if local else "")
        elif name in SOLVED:
            raise NoCompatibleStack([refusal(name, str(req.specifier), "no_release", "{req} matches no {name} release "
                                             "gpustack knows; see `gpustack matrix {name}`", req=req, name=name)])
        elif index is not None and (version := _pass_through(req, index, current.target)) is not None:
            out[name] = version
        else:
            pin = next((s.version for s in req.specifier if s.operator in ("==", "===")), None)
            if pin:
                out[name] = pin
    named = {str(canonicalize_name(r.name)) for r in _named(requirements, current.target)}
    if "torch" in out and "torch" not in named:  # torch moved by the xformers asked for, as pip moves it
        if stack is not None and _base(stack.torch.version) != _base(out["torch"]):
            out.update(_spelled(stack, {"torch"}))
        elif stack is None and "xformers" in named:
            out = _xformers_torch(out, matrix)
    return _torch_deps_follow(out, current.versions, requirements, matrix)


def _xformers_torch(out: dict[str, str], matrix: Matrix) -> dict[str, str]:
    """Return ``out`` with torch at the newest release the proposed xformers' Requires-Dist on torch admits, when
    the current one is outside it: what pip installs with that xformers, judged by the verdict (the solve refused)."""
    rel = next((x for x in matrix.xformers if _known("xformers", out["xformers"], matrix)
                and x.version == _base(out["xformers"])), None)
    if rel is None or _known("torch", out["torch"], matrix) and rel.torch.contains(_base(out["torch"]), prereleases=True):
        return out
    fits = [r.version for r in matrix.torch if not r.version.is_prerelease and rel.torch.contains(r.version)]
    return out | {"torch": str(max(fits))} if fits else out


def _torch_deps_follow(out: dict[str, str], current: Mapping[str, str], requirements: Sequence[str],
                       matrix: Matrix) -> dict[str, str]:
    """Return ``out`` with torch's own pinned dependencies (triton) moved with torch, unless the user pinned them."""
    asked = {str(canonicalize_name(r.name)) for r in _parse(requirements)}
    torch_v = out.get("torch")
    if "triton" not in out or "triton" in asked or torch_v is None or torch_v == current.get("torch"):
        return out
    rel = matrix.torch_release(_base(torch_v))
    if rel is None or rel.triton is None:
        return out
    spec = Requirement(rel.triton).specifier
    if not spec.contains(out["triton"], prereleases=True):
        pin = next((s.version for s in spec if s.operator in ("==", "~=", ">=")), None)
        if pin is not None:
            out["triton"] = pin
    return out


def upgrade_request(current: Installed, matrix: Matrix, *, original: Sequence[str] = (), profiles: Sequence[str] = (),
                    requirements: Sequence[str] = ()) -> Request:
    """Return what the set must satisfy: the original request (a lock's request and profiles) with each new
    requirement in place of the original bound of the package it names, and every solved package of the current set
    the matrices know (any version when neither names it). Optional profile packages are left out: an upgrade
    checks the set that is there."""
    env = marker_environment(current.target)  # markers read the set's target, not this machine
    req = parse_request(original, matrix, profiles=profiles, marker_env=env, verified_only=current.verified_only,
                        prefer_wheels=current.prefer_wheels)
    new = parse_request(requirements, matrix, marker_env=env)
    named = {str(canonicalize_name(r.name)) for r in _parse(requirements) if r.marker is None or r.marker.evaluate(env)}
    changes: dict[str, Any] = {"optional": (), "lines": (*req.lines, *requirements)}
    if "torch" in named:
        changes.update(torch=new.torch, torch_variant=new.torch_variant)
    if "xformers" in named:
        changes["xformers"] = new.xformers
    if "flash-attn" in named:
        changes["flash_attn"] = new.flash_attn
    changes["kernels"] = tuple(k for k in req.kernels if k[0] not in named) + new.kernels
    changes["others"] = tuple(o for o in req.others if str(canonicalize_name(Requirement(o).name)) not in named) \
        + new.others
    cur = _canon(current.versions)
    for name, attr in (("xformers", "xformers"), ("flash-attn", "flash_attn")):
        if changes.get(attr, getattr(req, attr)) is None and name in cur and _known(name, cur[name], matrix):
            changes[attr] = SpecifierSet()
    return dataclasses.replace(req, **changes)


def _held(proposed: Mapping[str, str], matrix: Matrix) -> tuple[str, ...]:
    """Return the packages of ``proposed`` that a hold of ``matrices/pins.toml`` bounds (numpy, beside torch<2.3),
    pinned as proposed (``numpy==2.4.6``): kept or moved, the solver asks its hold check (``holds``) of them, as it
    asks it of plan's ``numpy==2.4.6``."""
    bound = {str(canonicalize_name(p.package)) for p in matrix.pins}
    out = []
    for name, version in sorted(proposed.items()):
        if name in bound and name not in SOLVED:
            try:
                out.append(str(Requirement(f"{name}=={Version(version)}")))
            except (InvalidVersion, InvalidRequirement):
                continue
    return tuple(out)


def _with_others(request: Request, pins: Sequence[str]) -> Request:
    """Return ``request`` with ``pins`` in place of the requirements on the packages they name."""
    names = {str(canonicalize_name(Requirement(p).name)) for p in pins}
    others = tuple(o for o in request.others if str(canonicalize_name(Requirement(o).name)) not in names)
    return dataclasses.replace(request, others=(*others, *pins))


def _pinned(request: Request, proposed: Mapping[str, str], matrix: Matrix) -> tuple[Request, list[str]]:
    """Return ``request`` with the proposed torch / xformers / flash-attn pinned, and the packages a hold bounds
    (``_held``), and a note per version the matrices do not know (left unchecked)."""
    notes: list[str] = []
    request = _with_others(request, _held(proposed, matrix))
    changes: dict[str, Any] = {}
    for name, attr in (("torch", "torch"), ("xformers", "xformers"), ("flash-attn", "flash_attn")):
        version = proposed.get(name)
        if version is None:
            continue
        if not _known(name, version, matrix):  # (an unknown torch is never pinned: _verdict stops before)
            notes.append(f"{name} {version} is not in the matrices: not checked")
            changes[attr] = None
            continue
        bound = getattr(request, attr) or SpecifierSet()
        pin = SpecifierSet(f"=={_base(version)}")  # with the bound when it excludes the pin: the solver says so
        changes[attr] = pin if bound.contains(_base(version), prereleases=True) else bound & pin
        if name == "torch" and "+" in version:
            changes["torch_variant"] = version.split("+", 1)[1]
    return dataclasses.replace(request, **changes), notes


def _solve(target: Target, matrix: Matrix, request: Request) -> Stack | NoCompatibleStack:
    try:
        return solve(target, matrix, request)
    except NoCompatibleStack as exc:
        return exc


def _torch_floor(choice: PackageChoice, matrix: Matrix, target: Target) -> Version | None:
    """Return the driver a solved torch build needs on ``target`` (its toolkit's own driver when it runs via PTX)."""
    return compat.driver_floor(choice.cuda, matrix, target.platform, jit=choice.ptx_fallback)


def _current_floor(current: Installed, matrix: Matrix) -> Version | None:
    """Return the driver the current set needs: the lock's ``min_driver``, else its torch build's (``2.1.0+cu121``;
    without a tag, PyPI's build), with the toolkit's own driver where it runs a GPU through PTX."""
    if current.floor is not None:
        return current.floor
    torch = _canon(current.versions).get("torch")
    rel = matrix.torch_release(_base(torch)) if torch and _known("torch", torch, matrix) else None
    if torch is None or rel is None:
        return None
    target = current.target
    for opt in torch_options(rel, target, matrix):
        if opt.is_installed(torch) and opt.cuda is not None:
            ptx = compat.coverage(opt.arch, target.capabilities)[1]
            return compat.driver_floor(opt.cuda, matrix, target.platform, jit=bool(ptx))
    return None


def _solve_for(current: Installed, matrix: Matrix,
               request: Request) -> tuple[Stack | NoCompatibleStack, list[Finding], list[str]]:
    """Solve ``request`` on the current target. With its driver unknown, first for the driver the current set needs
    (a set that solves there needs no newer driver); when only a newer one runs it, say so as a finding."""
    target = current.target
    floor = _current_floor(current, matrix) if target.driver is None and not target.is_cpu else None
    if floor is None:
        return _solve(target, matrix, request), [], []
    result = _solve(dataclasses.replace(target, driver=floor), matrix, request)
    if isinstance(result, Stack):
        return result, [], [f"the target's driver is unknown: checked for the driver the current set needs "
                            f"(>= {format_driver(floor)})"]
    if not any(r.kind == "driver" for r in result.refusals):
        return result, [], []  # refused whatever the driver
    result = _solve(target, matrix, request)
    if not isinstance(result, Stack):
        return result, [], []
    torch = result.torch
    need = _torch_floor(torch, matrix, target)
    if need is None or need <= floor:
        return result, [], []
    return result, [Finding("torch", "unsafe", f"torch {torch.version} (CUDA {torch.cuda}) needs driver >= "
                            f"{format_driver(need)}; the current set needs >= {format_driver(floor)} and the target's "
                            "driver is unknown: pass --driver to check it, or update the driver first", "driver_floor")], []


def _rebuilds(current: Installed, stack: Stack, matrix: Matrix) -> list[Finding]:
    """Return what the move asks to rebuild or reinstall: the diff of the current set against the solved one."""
    cur = _canon(current.versions)
    torch = stack.torch
    new = _base(torch.version)
    old = _base(cur["torch"]) if "torch" in cur and _known("torch", cur["torch"], matrix) else None
    old_rel = matrix.torch_release(old) if old is not None else None
    moved = old is not None and old != new
    abi_change = moved and old_rel is not None and \
        compat.torch_cxx11_abi(old_rel, current.target.platform, matrix) != stack.torch_cxx11_abi
    abi = f", cxx11 ABI {'on' if stack.torch_cxx11_abi else 'off'}" if abi_change else ""
    found = []
    for p in stack.packages:
        if p.name == "torch":
            continue
        kept = p.name in cur and cur[p.name] == p.version
        here = p.name in current.source_built
        per_torch = p.url is not None or p.method == "source"  # one file or build per torch (flash-attn's wheels)
        built = current.built_for_torch.get(p.name, _minor(old) if old is not None else None)
        how = (f"rebuild it from source ({', '.join(f'{k}={v}' for k, v in p.build_env.items())})"
               if p.method == "source" else f"reinstall the {p.name} {p.version} wheel built for torch {_minor(new)}")
        if kept and here and moved:
            found.append(Finding(p.name, "needs-rebuild", f"{p.name} {p.version} was built from source against torch "
                                 f"{cur['torch']}; torch {new}{abi} needs it again: {how}", "rebuild"))
        elif kept and per_torch and built is not None and (built != _minor(new) or abi_change):
            found.append(Finding(p.name, "needs-rebuild", f"the {p.name} {p.version} binary was built for torch {built}; "
                                 f"torch {_minor(new)}{abi} breaks its ABI: {how}", "rebuild"))
        elif p.method == "source" and not (kept and here):
            found.append(Finding(p.name, "needs-rebuild", f"{p.name} {p.version} has no prebuilt wheel for torch "
                                 f"{torch.version} on this target: it is built from source "
                                 f"({', '.join(f'{k}={v}' for k, v in p.build_env.items())})", "rebuild"))
    return found


def _finding(r: Refusal, implied: str | None) -> Finding:
    """Return the solver's refusal ``r`` as an unsafe finding. An xformers that pins the old torch against a torch
    the requirements did not name says what moved torch (``implied``), not "torch==2.2.0 was asked"."""
    if implied is not None and r.kind == "torch_pin" and {"spec", "pins", "version"} <= set(r.facts):
        return Finding(r.package, "unsafe", f"xformers{r.facts['spec']} pins torch{r.facts['pins']} (xformers "
                                            f"{r.facts['version']}); {implied}", r.kind)
    return Finding(r.package, "unsafe", r.text, r.kind)


def _verdict(current: Installed, proposed: Mapping[str, str], matrix: Matrix, request: Request,
             implied: str | None = None) -> tuple[list[Finding], list[str], Stack | None]:
    """Return the findings of moving ``current`` to ``proposed`` under ``request``, notes, and the solved set;
    ``implied``: why torch moves when no requirement named it (``_why_torch_moves``)."""
    if "torch" not in proposed:
        return [], ["no torch in the set: nothing to check"], None
    if not _known("torch", proposed["torch"], matrix):
        return [], [f"torch {proposed['torch']} is not in the matrices: its builds cannot be checked"], None
    pinned, notes = _pinned(request, proposed, matrix)
    result, found, assumed = _solve_for(current, matrix, pinned)
    if not isinstance(result, Stack):
        return [_finding(r, implied) for r in result.refusals], notes, None  # ordered by NoCompatibleStack
    return found + _rebuilds(current, result, matrix), notes + assumed, result


def _broken_requirements(current: Installed, proposed: Mapping[str, str],
                         requirements: Sequence[str]) -> tuple[list[Finding], list[str]]:
    """Return an ``unsafe`` finding per declared requirement of a package the set keeps (``Installed.requires``)
    that a proposed version of a pass-through package ``requirements`` name breaks (torch 2.13 needs sympy>=1.13: sympy 1.12 breaks it), and a note
    when the set's requirements are not known (a lock records none). torch, xformers and flash-attn are the
    solver's: their moves are judged there."""
    cur = _canon(current.versions)
    asked = {str(canonicalize_name(r.name)) for r in _named(requirements, current.target)} - set(SOLVED)
    moved = {k: v for k, v in proposed.items() if cur.get(k) != v and k in asked}
    if not moved:
        return [], []
    if not current.requires:
        return [], [f"{', '.join(sorted(moved))}: the installed packages' own requirements are not known here "
                    "(a lock records none): not checked against them"]
    env = marker_environment(current.target)
    found = []
    for owner, lines in sorted((str(canonicalize_name(k)), v) for k, v in current.requires.items()):
        if owner in proposed and proposed[owner] != cur.get(owner):
            continue  # moving too: its new requirements are not known here
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            name = str(canonicalize_name(req.name))
            if name not in moved or (req.marker is not None and ("extra" in str(req.marker)
                                                                  or not req.marker.evaluate(env))):
                continue
            try:
                ok = req.specifier.contains(Version(moved[name]), prereleases=True)
            except InvalidVersion:
                continue
            if not ok:
                found.append(Finding(name, "unsafe", f"{owner} {cur.get(owner, '')} requires {req.name}"
                                     f"{req.specifier}: {name} {moved[name]} breaks it; keep {name}{req.specifier}",
                                     "requirement"))
    return found, []


def _spelled(stack: Stack, names: Iterable[str]) -> dict[str, str]:
    """Return the versions of ``stack`` for ``names``, torch as its pin spells it (a tag only off PyPI)."""
    out = {}
    for p in stack.packages:
        if p.name in names:
            out[p.name] = compat.torch_pin(p.version, p.index_url)[len("torch=="):] if p.name == "torch" else p.version
    return out


def _within_holds(versions: dict[str, str], stack: Stack, matrix: Matrix,
                  index: Callable[[list[str]], Mapping[str, IndexProject]] | None) -> tuple[dict[str, str], list[str]]:
    """Return ``versions`` with each package a hold of ``stack`` contradicts (numpy 2.4.6 beside torch 2.1.0) moved
    to the version plan pins inside the hold (``holds.within``, then ``passthrough.pin_others``: the newest release
    on the index that installs on the target), and a note per package that could not be moved (no index answer)."""
    target = stack.target
    held = held_pins({p.name: p.version for p in stack.packages}, target.platform, matrix.pins)
    bad = [t for t in _held(versions, matrix) if contradicts(t, held)]
    if not bad:
        return versions, []
    names = [str(canonicalize_name(Requirement(t).name)) for t in bad]
    narrowed = within(tuple(names), held)
    answer = index(names) if index is not None else None
    if answer is None:
        return versions, [f"{t} contradicts {n}, which matrices/pins.toml holds for this torch: no version inside it "
                          "was looked up (pass --index-url)" for t, n in zip(bad, narrowed)]
    pinned, _, why = pin_others(narrowed, answer, target)
    if why:
        return versions, [f"{n} (held for this torch by matrices/pins.toml): {r.text}" for n, r in zip(narrowed, why)]
    moved = {str(canonicalize_name(Requirement(p).name)): str(next(iter(Requirement(p).specifier)).version)
             for p in pinned}
    return versions | moved, []


def _why_torch_moves(current: Installed, proposed: Mapping[str, str], matrix: Matrix, original: Sequence[str],
                     profiles: Sequence[str], requirements: Sequence[str]) -> str:
    """Return why the requirements (none naming torch) move torch: "flash-attn==2.8.3 moves torch to 2.2.0" and the
    solver's refusal of the requirements with the current torch kept, when it refuses."""
    cur, new = _canon(current.versions)["torch"], _base(proposed["torch"])
    text = f"{', '.join(requirements)} moves torch to {new}"
    if not _known("torch", cur, matrix):
        return text
    kept = upgrade_request(current, matrix, original=original, profiles=profiles,
                           requirements=(*requirements, f"torch=={_base(cur)}"))
    result = _solve(current.target, matrix, kept)
    why = [r.text for r in result.refusals if r.package != "xformers"] if not isinstance(result, Stack) else []
    return f"{text} ({why[0]})" if why else text


def check_upgrade(current: Installed, proposed: Mapping[str, str], matrix: Matrix, *, original: Sequence[str] = (),
                  profiles: Sequence[str] = (), requirements: Sequence[str] = (), nearest: bool = True,
                  index: Callable[[list[str]], Mapping[str, IndexProject]] | None = None) -> UpgradeReport:
    """Return the verdict of moving ``current`` to ``proposed`` (name -> version) under the original request
    (``original`` lines and ``profiles``) and the new ``requirements``, one finding per problem; when it is not
    safe (and ``nearest``), also the nearest safe set: the solve of that request closest to the current versions,
    with a package a hold of it contradicts moved inside the hold, pinned from ``index`` (names -> the index's
    answer, asked only then)."""
    prop = _canon(proposed)
    cur = _canon(current.versions)
    named = {str(canonicalize_name(r.name)) for r in _named(requirements, current.target)}
    if requirements and "torch" not in named and "torch" in cur and "torch" in prop and \
            _base(prop["torch"]) != _base(cur["torch"]):
        implied = _why_torch_moves(current, prop, matrix, original, profiles, requirements)
        requirements = (*requirements, "torch")  # moved by what was asked (xformers' pin): the original bound goes
    else:
        implied = None
    request = upgrade_request(current, matrix, original=original, profiles=profiles, requirements=requirements)
    found, notes, stack = _verdict(current, prop, matrix, request, implied)
    solver_found = bool(found)  # a move of torch, xformers or flash-attn can answer only these
    broken, unknown = _broken_requirements(current, prop, requirements)
    found, notes = found + broken, notes + unknown
    verdict: Verdict = max((f.verdict for f in found), key=lambda v: _RANK[v], default="safe")
    checked = {p.name: p.version for p in stack.packages} if stack is not None else None
    near_set, unmoved = None, False
    rebuild: tuple[dict[str, str], tuple[Finding, ...]] | None = None
    if nearest and solver_found and "torch" in prop:
        near = dataclasses.replace(request, prefer_wheels=True,
                                   near=tuple((k, v) for k, v in cur.items() if k in SOLVED and _known(k, v, matrix)))
        result, _, _ = _solve_for(current, matrix, near)
        if isinstance(result, Stack):
            names = set(prop) | {p.name for p in result.packages if p.name in SOLVED}
            trial = _torch_deps_follow(prop | _spelled(result, names), current.versions, requirements, matrix)
            trial, why = _within_holds(trial, result, matrix, index)
            notes.extend(why)
            unmoved = bool(why)
            near_found = _verdict(current, trial, matrix, request)[0] if not why else []
            if not why and not _broken_requirements(current, trial, requirements)[0]:
                if not near_found:
                    near_set = trial
                elif all(f.verdict == "needs-rebuild" for f in near_found):
                    # no safe set is this close (every flash-attn move is a source build on glibc 2.28): the
                    # nearest set that works once rebuilt, solved and checked like any proposal
                    rebuild = (trial, tuple(near_found))
        if near_set is None and not unmoved:
            notes.append("no set of versions in the matrices satisfies the request without a finding" +
                         ("; the nearest that works once rebuilt is below" if rebuild is not None else ""))
    return UpgradeReport(verdict, cur, prop, tuple(found), near_set, tuple(notes), checked,
                         rebuild[0] if rebuild else None, rebuild[1] if rebuild else ())
