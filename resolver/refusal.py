"""Refusals as values: what the solver could not do, for which package and candidate, why (a ``kind`` from a fixed
set plus the facts involved), and what would work instead.

The solver builds these; text (``resolver.render``, ``NoCompatibleStack.reasons``) and JSON (``plan --json``) are
both rendered from them. Nothing parses a refusal's text back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["KINDS", "Refusal", "refusal", "ordered"]

# The fixed set of kinds, root facts first: an earlier kind blocks the later ones (no wheel for this Python makes
# a GPU or companion question moot).
KINDS: tuple[str, ...] = (
    "no_release",          # the request names no release gpustack knows
    "python",              # no wheel for this Python / platform
    "glibc",               # no wheel for this glibc
    "platform",            # not this platform / machine kind (CPU target, Jetson, Windows)
    "variant",             # no build of the asked variant (+cuNNN)
    "gpu_code",            # no build with code (SASS / PTX) for a GPU
    "compute_capability",  # the package's kernels need another compute capability
    "driver",              # the driver is below the build's CUDA floor
    "toolkit",             # nvcc / CUDA toolkit cannot build it
    "torch_pin",           # the package pins another torch
    "other",               # any other blocking fact, kept as text
)


@dataclass(frozen=True)
class Refusal:
    """One blocking fact. ``template`` is formatted with ``facts`` to give the text users read."""

    package: str
    candidate: str
    kind: str
    facts: Mapping[str, str]
    template: str
    alternative: str | None = None
    _rank: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown refusal kind {self.kind!r}")
        object.__setattr__(self, "facts", MappingProxyType(dict(self.facts)))
        object.__setattr__(self, "_rank", KINDS.index(self.kind))

    @property
    def text(self) -> str:
        return self.template.format_map(self.facts)

    def to_dict(self) -> dict[str, Any]:
        return {"package": self.package, "candidate": self.candidate, "kind": self.kind, "facts": dict(self.facts),
                "alternative": self.alternative, "text": self.text}


def refusal(package: str, candidate: str, kind: str, template: str, alternative: str | None = None,
            **facts: object) -> Refusal:
    """Build a refusal; every fact is kept as its string form."""
    return Refusal(package, candidate, kind, {k: str(v) for k, v in facts.items()}, template, alternative)


def ordered(refusals: Sequence[Refusal]) -> list[Refusal]:
    """Root blocking facts first (by kind, stable), each text once."""
    seen: set[str] = set()
    out = []
    for r in sorted(refusals, key=lambda r: r._rank):
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out


def as_refusal(item: str | Refusal) -> Refusal:
    """A plain string reason (from a module not yet emitting values) as an ``other`` refusal."""
    return item if isinstance(item, Refusal) else Refusal("", "", "other", {"text": item}, "{text}")
