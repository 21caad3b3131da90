"""Say whether moving an installed stack to new versions is safe: ``check_upgrade(current, proposed, matrix)``.

Pure: the caller reads the current set (a lock or the environment) and passes versions as data. Each finding is one
fact from the matrices: xformers pinned to another torch, a flash-attn binary built for another torch minor or ABI,
a GPU the new builds have no code for, a driver too old for the new CUDA. ``nearest_safe`` searches the matrices for
the closest set of versions that has no finding (docs/check-upgrade.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.errors import BadInput
from resolver import compat
from resolver.matrix_types import FlashRelease, Matrix, TorchRelease, TorchVariant
from resolver.models import Target, format_driver

__all__ = ["Installed", "Finding", "UpgradeReport", "proposed_versions", "check_upgrade", "nearest_safe"]

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


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason an upgrade is not safe."""

    package: str
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    """The verdict, one finding per problem, and the closest set of versions without any (``None``: none found)."""

    verdict: Verdict
    current: dict[str, str]
    proposed: dict[str, str]
    findings: tuple[Finding, ...]
    nearest: dict[str, str] | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the documented ``check-upgrade --json`` object."""
        return {
            "verdict": self.verdict,
            "current": self.current,
            "proposed": self.proposed,
            "findings": [{"package": f.package, "verdict": f.verdict, "reason": f.reason} for f in self.findings],
            "nearest_safe": self.nearest,
            "notes": list(self.notes),
        }


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


def _candidates(name: str, matrix: Matrix) -> list[Version]:
    """Return the final releases of ``name`` the matrices know, oldest first."""
    rows: Sequence[Any] = {"torch": matrix.torch, "xformers": matrix.xformers, "flash-attn": matrix.flash_attn}.get(name, ())
    return sorted(r.version for r in rows if not r.version.is_prerelease and not r.version.is_devrelease)


def proposed_versions(current: Installed, requirements: Sequence[str], matrix: Matrix) -> dict[str, str]:
    """Return the current versions with ``requirements`` applied: the newest matrix release each one admits (what
    pip would pick); a package the matrices do not know keeps an ``==`` pin as written. Raises ``BadInput``."""
    out = {str(canonicalize_name(k)): v for k, v in current.versions.items()}
    for req in _parse(requirements):
        name = str(canonicalize_name(req.name))
        local = next((s.version.split("+", 1)[1] for s in req.specifier if "+" in s.version), None)
        spec = type(req.specifier)(",".join(f"{s.operator}{s.version.split('+')[0]}" for s in req.specifier))
        known = [v for v in _candidates(name, matrix) if spec.contains(v, prereleases=True)]
        if known:
            out[name] = str(known[-1]) + (f"+{local}" if local else "")
        elif name in ("torch", "xformers", "flash-attn"):
            raise BadInput(f"{req} matches no {name} release in the matrices; check the version (gpustack matrix)")
        else:
            pin = next((s.version for s in req.specifier if s.operator in ("==", "===")), None)
            if pin:
                out[name] = pin
    return _torch_deps_follow(out, current.versions, requirements, matrix)


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


def _torch_variant(rel: TorchRelease, version: str, current_torch: str | None, target: Target,
                   matrix: Matrix) -> tuple[TorchVariant | None, list[Finding]]:
    """Return the CUDA build of torch the move would install and what is wrong with it for the target."""
    tag = version.split("+")[1] if "+" in version else None
    cur_tag = current_torch.split("+")[1] if current_torch and "+" in current_torch else None
    if tag == "cpu" or (target.is_cpu and tag is None):
        return None, []
    found: list[Finding] = []
    installable = compat.torch_release_problem(rel, target, matrix)  # the solver's rule (wheels.toml)
    if installable:
        found.append(Finding("torch", "unsafe", f"torch {rel.version}: {installable}"))

    def problems(v: TorchVariant) -> list[Finding]:
        arch = v.arch_aarch64 if target.platform == "linux_aarch64" and v.arch_aarch64 else v.arch
        out = [Finding("torch", "unsafe", f"torch {rel.version}+{v.tag} has no code for {g.name} ({g.compute_capability.sm}): "
                                          f"its builds cover {arch.to_torch_arch_list()}")
               for g in target.gpus if compat.covers(arch, g.compute_capability) is None]
        floor = compat.driver_floor(v.cuda, matrix, target.platform)
        if target.driver is not None and floor is not None and target.driver < floor:
            out.append(Finding("torch", "unsafe", f"driver {target.driver} is too old for CUDA {v.cuda} "
                                                  f"(torch {rel.version}+{v.tag} needs driver >= {floor})"))
        return out

    if tag is not None:
        chosen = rel.variant(tag)
        if chosen is None:
            return None, found + [Finding("torch", "unsafe", f"torch {rel.version} has no {tag} build")]
        return chosen, found + problems(chosen)
    default = rel.pypi_cuda.get(target.platform)
    order = sorted(rel.variants, key=lambda v: (v.tag != cur_tag, v.tag != default, -v.cuda.major, -v.cuda.minor))
    for v in order:
        if not problems(v):
            return v, found
    return order[0] if order else None, found + (problems(order[0]) if order else [])


def _flash_wheel(f: FlashRelease, torch: Version, cuda: Version, abi: bool | None, target: Target) -> bool:
    """Return whether setup.py finds a prebuilt wheel of ``f`` (the solver's rule: ``compat.flash_wheel``)."""
    return compat.flash_wheel_serves(f, torch, cuda, abi, target.python, target.platform, target.capabilities) is not None


def _floor_of(torch: str | None, matrix: Matrix, target: Target) -> Version | None:
    """Return the driver floor of an installed torch (``2.1.0+cu121``; without a tag: PyPI's build)."""
    if torch is None:
        return None
    rel = matrix.torch_release(_base(torch))
    if rel is None:
        return None
    tag = torch.split("+")[1] if "+" in torch else rel.pypi_cuda.get(target.platform)
    v = rel.variant(tag) if tag else None
    return compat.driver_floor(v.cuda, matrix, target.platform) if v is not None else None


def _driver_floor_moves(current: Installed, cur_torch: str | None, variant: TorchVariant | None,
                        matrix: Matrix) -> list[Finding]:
    """Return a finding when the new torch needs a newer driver than the current set and the target's driver is
    unknown: the move is only safe on a machine that has it."""
    target = current.target
    if variant is None or target.driver is not None:
        return []
    new = compat.driver_floor(variant.cuda, matrix, target.platform)
    old = current.floor or _floor_of(cur_torch, matrix, target)
    if new is None or old is None or new <= old:
        return []
    return [Finding("torch", "unsafe", f"CUDA {variant.cuda} needs driver >= {format_driver(new)}; the current set "
                                       f"needs >= {format_driver(old)} and the target's driver is unknown: pass "
                                       "--driver to check it, or update the driver first")]


def _findings(current: Installed, proposed: Mapping[str, str], matrix: Matrix) -> tuple[list[Finding], list[str]]:
    """Return every finding of moving ``current`` to ``proposed``, plus notes on what could not be checked."""
    target = current.target
    cur = {str(canonicalize_name(k)): v for k, v in current.versions.items()}
    found: list[Finding] = []
    notes: list[str] = []
    torch_v = proposed.get("torch")
    if torch_v is None:
        return found, ["no torch in the set: nothing to check"]
    new_torch = _base(torch_v)
    rel = matrix.torch_release(new_torch)
    if rel is None:
        return found, [f"torch {new_torch} is not in the matrices: its builds cannot be checked"]
    variant, torch_findings = _torch_variant(rel, torch_v, cur.get("torch"), target, matrix)
    found += torch_findings
    found += _driver_floor_moves(current, cur.get("torch"), variant, matrix)
    moved = cur.get("torch") is None or _base(cur["torch"]) != new_torch
    x_v = proposed.get("xformers")
    if x_v is not None:
        x = next((r for r in matrix.xformers if r.version == Version(x_v)), None)
        if x is None:
            notes.append(f"xformers {x_v} is not in the matrices: not checked")
        elif "xformers" in current.source_built and x_v == cur.get("xformers"):
            if moved:
                ok = x.source_torch is None or x.source_torch.contains(new_torch, prereleases=True)
                found.append(Finding("xformers", "needs-rebuild" if ok else "unsafe",
                                     f"xformers {x_v} was built from source against torch {cur.get('torch')}; "
                                     + ("rebuild it against the new torch" if ok else f"its source needs torch{x.source_torch}")))
        elif not x.torch.contains(new_torch, prereleases=True):
            found.append(Finding("xformers", "unsafe", f"xformers {x_v} pins torch{x.torch}; torch {new_torch} breaks "
                                                       "its compiled kernels (pip would replace torch or fail)"))
        else:
            for g in target.gpus:
                if x.arch.covers(g.compute_capability) is None:
                    found.append(Finding("xformers", "needs-rebuild", f"the xformers {x_v} wheel has no code for "
                                         f"{g.name} ({g.compute_capability.sm}): build it from source"))
    fa_v = proposed.get("flash-attn")
    if fa_v is not None and variant is not None:
        f = next((r for r in matrix.flash_attn if r.version == Version(fa_v)), None)
        if f is None:
            notes.append(f"flash-attn {fa_v} is not in the matrices: not checked")
        else:
            kept = fa_v == cur.get("flash-attn")
            built = Version(current.built_for_torch.get("flash-attn", str(_base(cur.get("torch", torch_v)))))
            old_rel = matrix.torch_release(_base(cur["torch"])) if "torch" in cur else None
            new_abi = compat.torch_cxx11_abi(rel, target.platform, matrix)
            old_abi = compat.torch_cxx11_abi(old_rel, target.platform, matrix) if old_rel is not None else None
            abi_change = old_rel is not None and old_abi != new_abi
            wheel = _flash_wheel(f, new_torch, variant.cuda, new_abi, target)
            newer = next((g.version for g in sorted(matrix.flash_attn, key=lambda r: r.version)
                          if g.version > f.version and _flash_wheel(g, new_torch, variant.cuda, new_abi, target)), None)
            move = f" or move to flash-attn {newer}, which has a wheel for torch {_minor(new_torch)}" if newer else ""
            if kept and (_minor(built) != _minor(new_torch) or (moved and abi_change)):
                how = (f"reinstall the flash-attn {fa_v} wheel built for torch {_minor(new_torch)}" if wheel
                       else "rebuild it from source (FLASH_ATTENTION_FORCE_BUILD=TRUE)" + move)
                abi = f", cxx11 ABI {'on' if new_abi else 'off'}" if abi_change else ""
                found.append(Finding("flash-attn", "needs-rebuild", f"the flash-attn {fa_v} binary was built for torch "
                                     f"{_minor(built)}; torch {_minor(new_torch)}{abi} breaks its ABI: {how}"))
            elif not kept and not wheel:
                found.append(Finding("flash-attn", "needs-rebuild", f"flash-attn {fa_v} has no wheel for torch "
                                     f"{_minor(new_torch)} + CUDA {variant.cuda.major}: it must be built from source{move}"))
    return found, notes


def check_upgrade(current: Installed, proposed: Mapping[str, str], matrix: Matrix, *,
                  requirements: Sequence[str] = (), needs: frozenset[str] = frozenset()) -> UpgradeReport:
    """Return the verdict of moving ``current`` to ``proposed`` (name -> version), with one finding per problem;
    when it is not safe and ``requirements`` are given, also the nearest safe set (``nearest_safe``) under them and
    the features ``needs`` (``xformers.components``): pass the original request (a lock's, a profile's) with the
    new requirements last."""
    prop = {str(canonicalize_name(k)): v for k, v in proposed.items()}
    found, notes = _findings(current, prop, matrix)
    verdict: Verdict = max((f.verdict for f in found), key=lambda v: _RANK[v], default="safe")
    nearest = nearest_safe(current, requirements, matrix, needs=needs) if verdict != "safe" and requirements else None
    if verdict != "safe" and requirements and nearest is None:
        notes.append("no set of versions in the matrices satisfies the requirements without a finding")
    cur = {str(canonicalize_name(k)): v for k, v in current.versions.items()}
    return UpgradeReport(verdict, cur, prop, tuple(found), nearest, tuple(notes))


def _closest(versions: Sequence[Version], anchor: Version | None) -> list[Version]:
    """Return ``versions`` ordered by distance from ``anchor``: unchanged, then newer ascending, then older."""
    if anchor is None:
        return sorted(versions)
    same = [v for v in versions if v == anchor]
    newer = sorted(v for v in versions if v > anchor)
    older = sorted((v for v in versions if v < anchor), reverse=True)
    return same + newer + older


def nearest_safe(current: Installed, requirements: Sequence[str], matrix: Matrix, *,
                 needs: frozenset[str] = frozenset()) -> dict[str, str] | None:
    """Return the set of versions closest to ``current`` that meets ``requirements`` with no finding, or ``None``.

    torch moves least first; xformers and flash-attn take the release closest to the current one that fits.
    """
    reqs = {str(canonicalize_name(r.name)): r for r in _parse(requirements)}
    cur = {str(canonicalize_name(k)): v for k, v in current.versions.items()}
    base = proposed_versions(current, requirements, matrix)

    def allowed(name: str) -> list[Version]:
        vs = _candidates(name, matrix)
        if name == "xformers" and "xformers.components" in needs:
            vs = [x.version for x in matrix.xformers if x.has_components and x.version in vs]
        r = reqs.get(name)
        if r is None:
            return vs
        spec = type(r.specifier)(",".join(f"{s.operator}{s.version.split('+')[0]}" for s in r.specifier))
        return [v for v in vs if spec.contains(v, prereleases=True)]

    def anchor(name: str) -> Version | None:
        return _base(cur[name]) if name in cur else None

    torch_local = base["torch"].split("+")[1] if "+" in base.get("torch", "") else None
    for t in _closest(allowed("torch"), anchor("torch")):
        trial = dict(base, torch=str(t) + (f"+{torch_local}" if torch_local else ""))
        for name in ("xformers", "flash-attn"):
            if name not in base:
                continue
            for v in _closest(allowed(name), anchor(name)):
                trial[name] = str(v)
                if not [f for f in _findings(current, trial, matrix)[0] if f.package == name]:
                    break
            else:
                trial[name] = base[name]
        if not _findings(current, trial, matrix)[0]:
            return trial
    return None
