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


def checked_names(others: tuple[str, ...]) -> list[str]:
    """Return the canonical names of ``others`` that are looked up on the index."""
    names = [str(canonicalize_name(Requirement(r).name)) for r in others]
    return [n for n in dict.fromkeys(names) if n not in UNCHECKED]


def _fits(f: IndexFile, python: str, accepted: set[tags.Tag]) -> bool:
    if f.requires_python:
        try:
            if not spec_allows_text(f.requires_python, python):
                return False
        except ValueError:
            pass  # a malformed Requires-Python does not decide anything (pip ignores it too)
    return f.tags is None or bool(f.tags & accepted)


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
    fitting = [f for f in in_spec if _fits(f, target.python, accepted)]
    if not fitting:
        return refused("python", "no file of {name}{spec} on {index} installs on Python {python} {platform} "
                       "(newest release asked for: {newest})", python=target.python, platform=target.platform,
                       newest=max(f.version for f in in_spec))
    best = max(f.version for f in fitting)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{canonicalize_name(req.name)}{extras}=={best}{marker}", f"{req} pinned to {best}, the newest on {where} that installs here"


_LEGACY = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def _glibc_allows(platform_tag: str, glibc: Version | None) -> bool:
    """Return whether a wheel platform tag runs on the target's glibc (unknown glibc: every tag)."""
    if glibc is None or not platform_tag.startswith("manylinux"):
        return True
    head = platform_tag.split("_x86_64")[0].split("_aarch64")[0]
    if head in _LEGACY:
        return _LEGACY[head] <= glibc.minor if glibc.major == 2 else True
    parts = head.split("_")  # manylinux_2_28
    try:
        return Version(f"{parts[1]}.{parts[2]}") <= glibc
    except (IndexError, ValueError):
        return True


def pin_others(
    others: tuple[str, ...], projects: Mapping[str, IndexProject], target: Target
) -> tuple[tuple[str, ...], list[str], list[Refusal]]:
    """Return (``others`` pinned to one version each, notes, refusals) from the index's answers."""
    from resolver.hashes import target_tags

    accepted = {t for t in target_tags(target.python, target.platform) if _glibc_allows(t.platform, target.glibc)}
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
