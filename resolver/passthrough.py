"""Pass-through requirements (anything gpustack does not solve itself: numpy, diffusers, ...) checked against what
their index really holds, and pinned to one version, or refused with the reason.

Pure: ``pin_others(others, projects, target)`` takes the index's answer as data (``IndexProject``, read before
solving by ``resolver.index_lookup``) and returns the pinned requirements, notes, and the reasons for a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.models import Target, spec_allows
from resolver.refusal import Refusal, refusal

__all__ = ["IndexFile", "IndexProject", "pin_others", "checked_names", "UNCHECKED"]

# Built per CUDA variant beside torch and served from torch's own index (plan.TORCH_FAMILY): not looked up on the
# pass-through index, and held to torch's build by the plan instead.
UNCHECKED = frozenset({"torchvision", "torchaudio", "torchtext", "torchdata", "torchcodec", "torchao"})


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One file of a project on an index: its version, whether it is yanked, its Requires-Python and wheel tags
    (``None`` for an sdist)."""

    filename: str
    version: Version
    yanked: bool = False
    requires_python: str | None = None
    tags: frozenset[tags.Tag] | None = None


@dataclass(frozen=True, slots=True)
class IndexProject:
    """What an index answered for one name: its files, or why there is no answer (``error``)."""

    name: str
    index_url: str
    files: tuple[IndexFile, ...] = ()
    error: str | None = None
    unreachable: bool = False  # the index gave no answer at all (not the name's fault: exit 1, as plan refuses it)


def checked_names(others: tuple[str, ...]) -> list[str]:
    """Return the canonical names of ``others`` that are looked up on the index."""
    names = [str(canonicalize_name(Requirement(r).name)) for r in others]
    return [n for n in dict.fromkeys(names) if n not in UNCHECKED]


def _python_fits(f: IndexFile, python: str) -> bool:
    if f.requires_python:
        try:
            return spec_allows_text(f.requires_python, python)
        except ValueError:
            pass  # a malformed Requires-Python does not decide anything (pip ignores it too)
    return True


def _glibc_needed(f: IndexFile, target: Target, accepted: set[tags.Tag]) -> Version | None:
    """Return the glibc a wheel that the target does not accept would need to install there (it is built for the
    target's Python and platform, for a newer glibc), else ``None``."""
    from resolver.refresh import glibc_of

    arch = target.platform.removeprefix("linux_")
    floors = [g for t in (f.tags or ()) if (g := glibc_of(t.platform)) and t.platform.endswith("_" + arch)
              and tags.Tag(t.interpreter, t.abi, target.platform) in accepted]
    return Version("{}.{}".format(*min(floors))) if floors else None


def spec_allows_text(spec: str, python: str) -> bool:
    """Return whether Requires-Python ``spec`` admits Python ``python`` (``3.12``)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(spec).contains(python + ".0", prereleases=True)
    except InvalidSpecifier:
        raise ValueError(spec) from None


def _pin(req: Requirement, project: IndexProject, target: Target,
         accepted: set[tags.Tag]) -> tuple[str, str] | Refusal:
    """Return (the pinned requirement, a note) or why no file of the project serves the request."""
    where = project.index_url
    spec = str(req.specifier)

    def refused(kind: str, template: str, **facts: object) -> Refusal:
        return refusal(req.name, spec, kind, template, name=req.name, index=where, spec=spec, **facts)

    if project.error:
        return refused("index", "{error}", error=project.error)
    if not project.files:
        return refused("no_release", "{name} on {index} has no files at all")
    live = [f for f in project.files if not f.yanked]
    if not live:
        versions = ", ".join(sorted({str(f.version) for f in project.files}, key=Version))
        return refused("no_release", "{name} on {index} has only yanked files ({versions}): a placeholder, not a release",
                       versions=versions)
    in_spec = [f for f in live if spec_allows(req.specifier, f.version)]
    if not in_spec:
        return refused("no_release", "no release of {name} on {index} matches {spec} (newest: {newest})",
                       newest=max(f.version for f in live))
    python_ok = [f for f in in_spec if _python_fits(f, target.python)]
    wheels = [f for f in python_ok if f.tags is not None and f.tags & accepted]
    needs = {f: g for f in python_ok if f.tags is not None and not f.tags & accepted
             and (g := _glibc_needed(f, target, accepted)) is not None}
    # A release built for this platform only for a newer glibc: its sdist would compile a binary package on a
    # machine its authors do not build for, so it does not count (pip on the target would try it, and fail).
    too_new = {f.version for f in needs} - {f.version for f in wheels}
    fitting = wheels + [f for f in python_ok if f.tags is None and f.version not in too_new]
    if not fitting and needs:
        from resolver.hashes import GLIBC_MAX  # what accepted_tags assumes of a Linux target whose glibc is unknown

        floor = min(needs.values())
        assumed = " (assumed; pass --glibc)" if target.glibc_assumed or target.glibc is None else ""
        return refused("glibc", "{name}{spec} on {index} has no {platform} wheel for glibc {glibc}{assumed} and Python "
                       "{python}: its wheels need glibc {glibc_needed} or newer (newest such release: {newest})",
                       platform=target.platform, glibc=target.glibc or ".".join(map(str, GLIBC_MAX)),
                       assumed=assumed, python=target.python, glibc_needed=floor, newest=max(f.version for f in needs))
    if not fitting:
        return refused("python", "no file of {name}{spec} on {index} installs on Python {python} {platform} "
                       "(newest release asked for: {newest})", python=target.python, platform=target.platform,
                       newest=max(f.version for f in in_spec))
    best = max(f.version for f in fitting)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    glibc = f", glibc {target.glibc}" if target.glibc is not None else ""
    return (f"{canonicalize_name(req.name)}{extras}=={best}{marker}",
            f"{req} pinned to {best}, the newest on {where} that installs on the target (Python {target.python}, "
            f"{target.platform}{glibc})")


def pin_others(
    others: tuple[str, ...], projects: Mapping[str, IndexProject], target: Target
) -> tuple[tuple[str, ...], list[str], list[Refusal]]:
    """Return (``others`` pinned to one version each, notes, refusals) from the index's answers."""
    from resolver.hashes import accepted_tags

    accepted = set(accepted_tags(target))
    pinned: list[str] = []
    notes: list[str] = []
    reasons: list[Refusal] = []
    for text in others:
        req = Requirement(text)
        name = str(canonicalize_name(req.name))
        if name in UNCHECKED:
            pinned.append(text)
            continue
        project = projects.get(name)
        if project is None:
            reasons.append(refusal(req.name, str(req.specifier), "index", "{name} was not looked up on an index",
                                   name=req.name))
            continue
        got = _pin(req, project, target, accepted)
        if isinstance(got, Refusal):
            reasons.append(got)
        else:
            pin, why = got
            pinned.append(pin)
            if pin != text:
                notes.append(why)
    return tuple(pinned), notes, reasons
