"""Refusals as values: what the solver could not do, for which package and candidate, why (a ``kind`` from a fixed
set plus the facts involved), and what would work instead (an ``Alternative``: what it changes, as data, and its text).

Every stage that refuses builds these (solve, explain, companions, the attention kernels, compat's checks, the
Dockerfile's base image, a fleet's classes, the index look-ups of other requirements); text
(``resolver.render``, ``NoCompatibleStack.reasons``) and JSON (``plan --json``) are both rendered from them.
Nothing parses a refusal's text back: a caller that needs to know what blocked reads ``kind`` and ``facts``.

A refusal may hold ``causes``: the refusals it is made of, rendered where its template says ``{causes}`` (joined by
"; "). A companion that has no wheel and cannot be built either is one refusal of the build's kind whose causes are
"no wheel" and the build's blocker; a fleet class's refusal wraps the class's own root refusal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Union

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.models import parse_driver

if TYPE_CHECKING:
    from resolver.models import Target
    from resolver.request import Request

__all__ = ["KINDS", "Refusal", "refusal", "ordered", "folded", "joined", "Change", "Alternative", "alternative", "advice",
           "apply", "TARGET_FIELDS", "REQUEST_FIELDS"]

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
    "hold",                # a requirement contradicts a known-bad pin the stack holds (matrices/pins.toml)
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
    alternative: Alternative | None = None
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
                               "facts": dict(self.facts),
                               "alternative": self.alternative.to_dict() if self.alternative is not None else None,
                               "text": self.text}
        if self.causes:
            out["causes"] = [c.to_dict() for c in self.causes]
        return out


def refusal(package: str, candidate: str, kind: str, template: str, alternative: Alternative | None = None, /,
            **facts: object) -> Refusal:
    """Build a refusal; every fact is kept as its string form (a fact may be called ``package`` too)."""
    return Refusal(package, candidate, kind, {k: v if isinstance(v, str) else str(v) for k, v in facts.items()},
                   template, alternative)


def joined(first: Refusal, blocker: Refusal) -> Refusal:
    """Return ``first; blocker`` as one refusal of the blocker's kind and facts (the fact that finally blocks), both
    kept as causes: "no prebuilt wheel ...; nvcc 12.8 cannot build against torch 2.11.0+cu130 ..."."""
    return Refusal(blocker.package, blocker.candidate, blocker.kind, blocker.facts, "{causes}", blocker.alternative,
                   (first, blocker))


def _leaves(r: Refusal) -> list[Refusal]:
    """The facts a refusal is made of, in order: a ``joined`` refusal (its text is its causes) opened up."""
    if r.causes and r.template == "{causes}":
        return [leaf for c in r.causes for leaf in _leaves(c)]
    return [r]


def _builds(builds: Sequence[str]) -> str:
    """Name torch builds compactly, in the order given: ``2.14.1, 2.14.0, 2.12.0 (each +cu126), 2.11.0+cu128``."""
    by_tag: dict[str, list[str]] = {}
    for b in builds:
        version, _, tag = b.partition("+")
        by_tag.setdefault(tag, []).append(version)
    parts = []
    for tag, versions in by_tag.items():
        if not tag:
            parts.append(", ".join(versions))
        elif len(versions) == 1:
            parts.append(f"{versions[0]}+{tag}")
        else:
            parts.append(f"{', '.join(versions)} (each +{tag})")
    return ", ".join(parts)


def folded(refusals: Sequence[Refusal]) -> list[Refusal]:
    """Fold the rows of one companion release tried beside several torch builds (facts ``with_torch``, one cause)
    whose blocking fact (the last of its causes) is the same into one row that names the builds compactly (fact
    ``with_torch``; ``builds`` lists them all) and keeps every distinct cause once, the blocking one last: six
    "flash-attn 2.8.3.post2 with torch X: relies on an unverified fact ..." lines are one. Rows that differ in
    package, release, kind or blocking fact stay apart; other refusals are kept as they are. Idempotent."""
    groups: dict[tuple[str, ...], list[Refusal]] = {}
    order: list[tuple[str, ...] | Refusal] = []
    for r in refusals:
        if not r.facts.get("with_torch") or len(r.causes) != 1:
            order.append(r)
            continue
        key = (r.package, r.candidate, r.kind, r.template, _leaves(r.causes[0])[-1].text)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    out = []
    for item in order:
        if isinstance(item, Refusal):
            out.append(item)
            continue
        rows = groups[item]
        if len(rows) == 1:
            out.append(rows[0])
            continue
        leaves = [leaf for r in rows for leaf in _leaves(r.causes[0])]
        blocker = leaves[-1]
        kept = list({leaf.text: leaf for leaf in leaves if leaf.text != blocker.text}.values()) + [blocker]
        builds = [r.facts["with_torch"] for r in rows]
        out.append(dataclasses.replace(rows[0], facts={**rows[0].facts, "with_torch": _builds(builds),
                                                       "builds": ", ".join(builds)}, causes=tuple(kept)))
    return out


def ordered(refusals: Sequence[Refusal]) -> list[Refusal]:
    """Root blocking facts first (by kind, stable), each text once, the rows that share one cause over several torch
    builds folded into one (``folded``): every command that prints refusals gets them from ``NoCompatibleStack``,
    which orders them here."""
    seen: set[str] = set()
    out = []
    for r in sorted(folded(refusals), key=lambda r: r._rank):
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out


# --- alternatives ------------------------------------------------------------------------------------------------
# What an alternative may change. Target fields (all strings): ``python`` ("3.12"), ``glibc`` ("2.28": the host's
# C library, no longer assumed), ``driver`` ("580.65.06"), ``nvcc`` ("12.8": the toolkit a source build uses),
# ``gpus`` ("": plan for the CPU, no GPU). Request fields: ``torch`` / ``xformers`` / ``flash_attn`` (a specifier,
# "" for any release; ``None`` for xformers / flash-attn: not asked for), ``torch_variant`` ("cu128", or None),
# ``keep_torch`` (None: the installed torch is no longer kept), ``kernels`` (the attention kernels asked for, as
# requirements: ("flash-attn-3",)), ``others`` (the pass-through requirements, all of them: ("numpy<2",)). Each
# value replaces the request's; a bound a requested profile sets is narrowed, never lifted (``apply`` intersects the
# new bound with it: the profile's application needs it).
TARGET_FIELDS = ("python", "glibc", "driver", "nvcc", "gpus")
REQUEST_FIELDS = ("torch", "torch_variant", "xformers", "flash_attn", "keep_torch", "kernels", "others")
RequestValue = Union[str, None, tuple[str, ...]]


@dataclass(frozen=True)
class Change:
    """What one alternative changes: target fields and request bounds (``TARGET_FIELDS``, ``REQUEST_FIELDS``)."""

    target: Mapping[str, str] = field(default_factory=dict)
    request: Mapping[str, RequestValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [k for k in self.target if k not in TARGET_FIELDS] + [k for k in self.request if k not in REQUEST_FIELDS]
        if unknown:
            raise ValueError(f"unknown alternative field(s) {unknown}")
        object.__setattr__(self, "target", MappingProxyType(dict(self.target)))
        object.__setattr__(self, "request", MappingProxyType(dict(self.request)))

    def __hash__(self) -> int:
        return hash((tuple(self.target.items()), tuple(self.request.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"target": dict(self.target),
                "request": {k: list(v) if isinstance(v, tuple) else v for k, v in self.request.items()}}


@dataclass(frozen=True)
class Alternative:
    """What would work instead. ``changes``: each one, applied alone to the (target, request) refused, solves (the
    producer checked it; several for "use Python 3.10–3.12", one per Python); empty for advice that names no change
    (``pass --per-class``, ``add the image row to matrices/docker.toml``). ``inner``: the alternative of one fleet
    class that this one relays (its changes apply to that class's target, not to the fleet's). ``template`` is
    formatted with ``facts`` (and ``{inner}``) to give the text users read."""

    template: str
    facts: Mapping[str, str] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    inner: Alternative | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "facts", MappingProxyType(dict(self.facts)))

    @property
    def text(self) -> str:
        if self.inner is None:
            return self.template.format_map(self.facts)
        return self.template.format_map({**self.facts, "inner": self.inner.text})

    @property
    def change(self) -> Change | None:
        """The first (or only) change; None for advice."""
        return self.changes[0] if self.changes else None

    def __str__(self) -> str:
        return self.text

    def __hash__(self) -> int:
        return hash((self.text, self.changes))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "change": self.change.to_dict() if self.change else None}
        if len(self.changes) > 1:
            out["changes"] = [c.to_dict() for c in self.changes]
        if self.inner is not None:
            out["inner"] = self.inner.to_dict()
        return out


def alternative(template: str, /, *changes: Change, **facts: object) -> Alternative:
    """Build an alternative; every fact is kept as its string form."""
    return Alternative(template, {k: v if isinstance(v, str) else str(v) for k, v in facts.items()}, changes)


def advice(text: str) -> Alternative:
    """An alternative that names no change to solve (maintainer or user advice): its text is its template."""
    return Alternative(text.replace("{", "{{").replace("}", "}}"))


def apply(change: Change, target: Target, request: Request) -> tuple[Target, Request]:
    """Return (target, request) with ``change`` applied: the one reading of an alternative's change, used by the
    producers to check an alternative before printing it and by the tests to re-solve it. Pure."""
    t: dict[str, Any] = {}
    for name, value in change.target.items():
        if name == "python":
            t["python"] = value
        elif name == "glibc":
            t.update(glibc=Version(value), glibc_assumed=False)
        elif name == "driver":
            t["driver"] = parse_driver(value)
        elif name == "nvcc":
            t["nvcc"] = Version(value)
        elif name == "gpus":
            t["gpus"] = ()
    r: dict[str, Any] = {}
    profiles = dict(request.profile_bounds) if request.profile_bounds else {}
    for name, v in change.request.items():
        if name in ("torch", "xformers", "flash_attn"):
            if v is None:
                r[name] = None
            else:
                spec = SpecifierSet(str(v))
                pinned = profiles.get(name.replace("_", "-"))
                r[name] = spec & pinned if pinned is not None else spec
        elif name == "kernels":
            from packaging.requirements import Requirement  # kernels only: keeps the common path light

            reqs = [Requirement(x) for x in (v or ())]
            r[name] = tuple((q.name, q.specifier) for q in reqs)
        elif name == "others":
            r[name] = tuple(v or ())
        else:
            r[name] = v
    return (dataclasses.replace(target, **t) if t else target), (dataclasses.replace(request, **r) if r else request)
