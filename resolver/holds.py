"""The matrix's known-bad transitive pins (``matrices/pins.toml``, ``Pin``): which ones a stack holds, and which
requirement of a request contradicts one. Pure.

A pin such as ``numpy<2`` when ``torch<2.3`` is held by every step of a plan and lock (``plan.make_plan``), so a
request for ``numpy==2.0`` beside torch 2.1.0 has no installable answer: the solver refuses that torch for it
(``conflicts``, kind ``hold``) and pins the pass-through requirements inside the holds (``within``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.matrix_types import Pin
from resolver.refusal import Refusal, refusal

__all__ = ["held_pins", "within", "contradicts", "hold_refusal"]


def held_pins(versions: Mapping[str, str], platform: str, pins: Sequence[Pin]) -> list[Pin]:
    """Return the pins that apply to a stack of ``versions`` (stack package -> version, a local tag allowed: torch
    2.1.0+cu121 is 2.1.0) on ``platform``: the one reading of ``pins.toml``'s ``when`` and ``platforms``."""
    out = []
    for pin in pins:
        when = Requirement(pin.when)
        version = versions.get(str(canonicalize_name(when.name)))
        if version is None or (pin.platforms and platform not in pin.platforms):
            continue
        if when.specifier.contains(Version(version).public, prereleases=True):
            out.append(pin)
    return out


def _bound(text: str, held: Sequence[Pin]) -> tuple[Requirement, SpecifierSet] | None:
    """Return the requirement and the holds' bound on its package, or None when no hold bounds it (or it is a URL)."""
    req = Requirement(text)
    name = canonicalize_name(req.name)
    specs = [Requirement(p.requirement).specifier for p in held if canonicalize_name(p.package) == name]
    if not specs or req.url:
        return None
    bound = SpecifierSet()
    for s in specs:
        bound &= s
    return req, bound


def within(others: Sequence[str], held: Sequence[Pin]) -> tuple[str, ...]:
    """Return ``others`` with each requirement narrowed to the holds on its package (``numpy`` -> ``numpy<2``), so
    that it is pinned to a version the plan's constraints admit."""
    out = []
    for text in others:
        got = _bound(text, held)
        if got is None:
            out.append(text)
            continue
        req, bound = got
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        out.append(f"{req.name}{extras}{req.specifier & bound}{marker}")
    return tuple(out)


def contradicts(text: str, held: Sequence[Pin]) -> bool:
    """Return whether no version satisfies both the requirement ``text`` and the holds on its package (judged from
    the specifiers alone, by packaging's ``SpecifierSet.is_unsatisfiable``). A caller that has the index's
    answer asks the index instead (``passthrough.pin_others`` of ``within``)."""
    got = _bound(text, held)
    if got is None:
        return False
    req, bound = got
    return (req.specifier & bound).is_unsatisfiable()  # packaging's interval arithmetic (26.1); pre-releases count


def hold_refusal(text: str, held: Sequence[Pin], versions: Mapping[str, str]) -> Refusal:
    """Return the refusal of a stack of ``versions`` (as ``held_pins`` reads them) for the asked requirement
    ``text``: a hold it needs contradicts it. Names the pin, the stack package that needs it, why, and its source."""
    req = Requirement(text)
    name = canonicalize_name(req.name)
    pin = next(p for p in held if canonicalize_name(p.package) == name)
    by = str(canonicalize_name(Requirement(pin.when).name))
    return refusal(str(name), str(req.specifier), "hold",
                   "{asked} contradicts {pin}, which matrices/pins.toml holds for {when} ({by} {version}): {reason} "
                   "(source: {source})", asked=text, pin=pin.requirement, when=pin.when, by=by,
                   version=versions.get(by, ""), reason=pin.reason, source=pin.source)
