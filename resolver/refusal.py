"""Refusals as values: what the solver could not do, for which package and candidate, why (a ``kind`` from a fixed
set plus the facts involved), and what would work instead.

Every stage that refuses builds these (solve, explain, companions, the attention kernels, compat's checks, the
Dockerfile's base image, a fleet's classes, the index look-ups of other requirements); text
(``resolver.render``, ``NoCompatibleStack.reasons``) and JSON (``plan --json``) are both rendered from them.
Nothing parses a refusal's text back: a caller that needs to know what blocked reads ``kind`` and ``facts``.

A refusal may hold ``causes``: the refusals it is made of, rendered where its template says ``{causes}`` (joined by
"; "). A companion that has no wheel and cannot be built either is one refusal of the build's kind whose causes are
"no wheel" and the build's blocker; a fleet class's refusal wraps the class's own root refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["KINDS", "Refusal", "refusal", "ordered", "joined"]

# The fixed set of kinds, root facts first: an earlier kind blocks the later ones (no wheel for this Python makes
# a GPU or companion question moot). docs/solver.md lists them with their facts.
KINDS: tuple[str, ...] = (
    "no_release",          # the request names no release gpustack knows (or the index has none that matches)
    "index",               # an index did not answer for a requirement
    "python",              # no wheel for this Python / platform
    "glibc",               # no wheel for this glibc
    "platform",            # not this platform / machine kind (CPU target, Jetson, Windows, a fleet's mixed platforms)
    "variant",             # no build of the needed CUDA variant (+cuNNN, a CUDA major, a CUDA build of torch)
    "gpu_code",            # no build with code (SASS / PTX) for a GPU
    "compute_capability",  # the package's kernels need another compute capability
    "driver",              # the driver is below the build's CUDA floor
    "toolkit",             # nvcc / CUDA toolkit cannot build it
    "torch_pin",           # the package pins (or needs) another torch
    "needs",               # the release lacks what the request (its profile) needs, e.g. xformers.components
    "unverified",          # only unverified facts would serve it, and --verified-only was asked
    "image",               # no container base image for the stack's CUDA (dockerfile)
    "fleet",               # classes of a fleet that no one stack serves together
    "other",               # nothing more specific was found (explain's last resort)
)


@dataclass(frozen=True)
class Refusal:
    """One blocking fact. ``template`` is formatted with ``facts`` (and ``{causes}``) to give the text users read."""

    package: str
    candidate: str
    kind: str
    facts: Mapping[str, str]
    template: str
    alternative: str | None = None
    causes: tuple[Refusal, ...] = ()
    _rank: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown refusal kind {self.kind!r}")
        object.__setattr__(self, "facts", MappingProxyType(dict(self.facts)))
        object.__setattr__(self, "_rank", KINDS.index(self.kind))

    @property
    def text(self) -> str:
        if not self.causes:
            return self.template.format_map(self.facts)
        return self.template.format_map({**self.facts, "causes": "; ".join(c.text for c in self.causes)})

    def __str__(self) -> str:
        return self.text

    def __hash__(self) -> int:  # facts is a read-only mapping, not hashable itself; equal refusals render alike
        return hash((self.package, self.candidate, self.kind, self.text))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"package": self.package, "candidate": self.candidate, "kind": self.kind,
                               "facts": dict(self.facts), "alternative": self.alternative, "text": self.text}
        if self.causes:
            out["causes"] = [c.to_dict() for c in self.causes]
        return out


def refusal(package: str, candidate: str, kind: str, template: str, alternative: str | None = None, /,
            **facts: object) -> Refusal:
    """Build a refusal; every fact is kept as its string form (a fact may be called ``package`` too)."""
    return Refusal(package, candidate, kind, {k: v if isinstance(v, str) else str(v) for k, v in facts.items()},
                   template, alternative)


def joined(first: Refusal, blocker: Refusal) -> Refusal:
    """Return ``first; blocker`` as one refusal of the blocker's kind and facts (the fact that finally blocks), both
    kept as causes: "no prebuilt wheel ...; nvcc 12.8 cannot build against torch 2.11.0+cu130 ..."."""
    return Refusal(blocker.package, blocker.candidate, blocker.kind, blocker.facts, "{causes}", blocker.alternative,
                   (first, blocker))


def ordered(refusals: Sequence[Refusal]) -> list[Refusal]:
    """Root blocking facts first (by kind, stable), each text once."""
    seen: set[str] = set()
    out = []
    for r in sorted(refusals, key=lambda r: r._rank):
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out
