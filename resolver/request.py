"""What the user asked for: PEP 508 requirements and profiles, turned into per-package bounds for the solver.

Pure: reading ``-r requirements.txt`` is the CLI's job; this module takes the lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.errors import BadInput
from resolver.inputs import MAX_REQUIREMENT_CHARS, check_requirements, check_text
from resolver.matrix_types import Matrix
from resolver.models import MARKER_VARIABLES, spec_allows
from resolver.passthrough import IndexProject

__all__ = ["Request", "parse_request", "parse_requirement", "strip_comment", "SOLVED"]

# Packages the solver decides; anything else passes through to the plan untouched.
SOLVED = ("torch", "xformers", "flash-attn")


class _Versioned(Protocol):
    @property
    def version(self) -> Version: ...


_Row = TypeVar("_Row", bound=_Versioned)


@dataclass(frozen=True, slots=True)
class Request:
    """Bounds per solved package (``None``: not requested), features needed, and pass-through requirements."""

    torch: SpecifierSet = field(default_factory=SpecifierSet)
    torch_variant: str | None = None  # "cu113" from "torch==1.12.1+cu113"
    xformers: SpecifierSet | None = None
    flash_attn: SpecifierSet | None = None
    needs: frozenset[str] = frozenset()
    others: tuple[str, ...] = ()
    verified_only: bool = False
    prefer_wheels: bool = False
    keep_torch: str | None = None  # the torch installed in the target ("2.11.0+cu130"): preferred while it fits
    lines: tuple[str, ...] = ()  # what the user wrote, then the profiles' requirements, for messages
    asked: tuple[str, ...] = ()  # what the user wrote (arguments, then -r files' lines), as a lock records it
    # attention kernels of matrices/attention.toml (flash-attn-3, flash-attn-4, sageattention; flash-attn 1.x when
    # the flash-attn bound admits no flash-attn 2 release): name -> bound
    kernels: tuple[tuple[str, SpecifierSet], ...] = ()
    # a profile's packages planned only where they fit the target (diffusers' backends): name -> bound
    optional: tuple[tuple[str, SpecifierSet], ...] = ()
    # what the index holds for each pass-through name, looked up before solving (None: not looked up, not checked)
    index: Mapping[str, IndexProject] | None = None
    index_url: str | None = None  # the user's PyPI mirror (None: pypi.org): the index is read there, steps name it
    # versions to stay closest to (check-upgrade's current set: name -> version, torch with its local tag): ranks a
    # candidate by its distance from them (the same version, then newer ascending, then older descending) instead of
    # by newness. Empty: the newest wins.
    near: tuple[tuple[str, str], ...] = ()
    # the bounds requested profiles set on solved packages (their application needs them): name -> bound. An
    # alternative may narrow these, never lift them.
    profile_bounds: tuple[tuple[str, SpecifierSet], ...] = ()
    # environment markers: whether a line has one (the request is then parsed again with the target's environment,
    # ``parse_request(marker_env=...)``), and the lines left out because their marker is false on the target
    marked: bool = False
    dropped: tuple[str, ...] = ()

    def near_version(self, name: str) -> str | None:
        """Return the version ``name`` should stay closest to, or ``None``."""
        return dict(self.near).get(name)

    def nearness(self, name: str, version: Version) -> tuple[object, ...]:
        """Return the sort key of ``version`` by distance from ``near`` (smaller is closer): newest first without one."""
        anchor = self.near_version(name)
        newest = tuple(-x for x in version.release)
        if anchor is None:
            return newest
        a = Version(anchor.split("+")[0])
        return (0,) if version == a else (1, version) if version > a else (2, newest)

    def order(self, name: str, rows: Sequence[_Row]) -> list[_Row]:
        """Return matrix ``rows`` (newest first) in the order the solver tries them: by ``nearness`` (stable)."""
        if self.near_version(name) is None:
            return list(rows)
        return sorted(rows, key=lambda r: self.nearness(name, r.version))

    def describe(self, name: str) -> str:
        """Return how the request bounds ``name``: ``"xformers<0.0.23"`` or ``"torch (any)"``."""
        spec = {"torch": self.torch, "xformers": self.xformers, "flash-attn": self.flash_attn,
                **dict(self.kernels)}.get(name)
        if spec is None or not str(spec):
            return f"{name} (any)"
        return f"{name}{spec}"


_COMMENT = re.compile(r"(?:^|\s)#.*")


def strip_comment(line: str) -> str:
    """Return ``line`` without its comment, as pip reads a requirements line: ``#`` starts one at the line's start or
    after white space only, so a URL's ``#sha256=`` fragment is kept (and then refused as a direct URL, by name)."""
    return _COMMENT.sub("", line, count=1).strip()


def _split_local(req: Requirement) -> tuple[SpecifierSet, str | None]:
    """``torch==1.12.1+cu113`` -> (``==1.12.1``, ``"cu113"``)."""
    local = None
    kept = []
    for spec in req.specifier:
        version = spec.version
        if "+" in version and spec.operator in ("==", "==="):
            version, local = version.split("+", 1)
        kept.append(f"{spec.operator}{version}")
    return SpecifierSet(",".join(kept)), local


def parse_requirement(text: str, *, shown: str | None = None) -> Requirement:
    """Return ``text`` as a PEP 508 requirement; ``BadInput`` quotes ``shown`` (the line as the user wrote it)."""
    check_text(text, "requirement", limit=MAX_REQUIREMENT_CHARS, hint="write it as PEP 508, e.g. 'xformers<0.0.23'")
    try:
        req = Requirement(text)  # the length cap above keeps int() below its 4,300-digit limit
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0].rstrip(".")
        raise BadInput(f"invalid requirement {shown or text!r}: {first}; write it as PEP 508, "
                       "e.g. 'xformers<0.0.23'") from None
    if req.url:
        raise BadInput(f"requirement {shown or text!r}: a direct URL is not supported (gpustack picks every file from "
                       f"an index, checked against the target); write {_pin_for(req)!r} instead, and for a local file "
                       "put it in a folder and pass --find-links DIR to install")
    if req.marker is not None:
        unknown = sorted(marker_names(req.marker) - set(MARKER_VARIABLES))
        if unknown:
            raise BadInput(f"requirement {shown or text!r}: its marker reads {', '.join(unknown)}, which a target does "
                           f"not determine; write the condition with {', '.join(MARKER_VARIABLES)}, or drop it")
    return req


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")  # PEP 508 strings have no escapes: a quote ends at the next one
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def marker_names(marker: Marker) -> set[str]:
    """Return the environment variables ``marker`` reads (``{"sys_platform", "python_version"}``), legacy spellings
    (``os.name``) as packaging normalizes them. packaging has no public accessor for them, so they are read from the
    marker's public PEP 508 form, ``str(marker)`` (normalized names, every value quoted): with the quoted values
    taken out, the words left are its variables and the operators ``and``, ``or``, ``in``, ``not``."""
    return set(_WORD.findall(_QUOTED.sub(" ", str(marker)))) - {"and", "or", "in", "not"}


def _pin_for(req: Requirement) -> str:
    """Return the ``name==version`` a direct-URL requirement stands for, read from its wheel or sdist file name
    (``name==VERSION`` when the URL names neither)."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    name = str(canonicalize_name(req.name))
    filename = (req.url or "").split("#", 1)[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    try:
        version: str = str(parse_wheel_filename(filename)[1] if filename.endswith(".whl")
                           else parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        version = "VERSION"
    if canonicalize_name(filename.split("-", 1)[0]) != name:
        version = "VERSION"
    return f"{name}=={version}"


def _parsed(line: str, *, profile: bool = False, constraint: bool = False) -> tuple[str, str, Requirement, bool, bool]:
    """Return (``line``, its text without a ``#`` comment, its requirement, ``profile``: a profile wrote it,
    ``constraint``: a profile's constraint). A tuple, not a class: building one would cost every command's start."""
    text = strip_comment(line)
    return line, text, parse_requirement(text, shown=line), profile, constraint


def parse_request(
    lines: Sequence[str],
    matrix: Matrix,
    *,
    profiles: Iterable[str] = (),
    verified_only: bool = False,
    prefer_wheels: bool = False,
    marker_env: Mapping[str, str] | None = None,
) -> Request:
    """Return the ``Request`` for requirement strings and profile names; ``BadInput`` names a bad line or profile.

    ``marker_env`` (``models.marker_environment(target)``): a line whose environment marker is false there is left
    out (``Request.dropped``). Without it every line counts, markers checked but not evaluated (the target is not
    known yet)."""
    specs: dict[str, SpecifierSet] = {}
    requested: set[str] = set()
    needs: set[str] = set()
    variant: str | None = None
    others: list[str] = []
    all_lines = check_requirements(list(lines))
    asked = tuple(all_lines)
    # Each line is parsed once (``_parsed``): the profiles' requirements and constraints (checked first: an unknown
    # profile is named before a bad line), then the user's lines ahead of them.
    profile_lines: list[tuple[str, str, Requirement, bool, bool]] = []
    constraints: list[tuple[str, str, Requirement, bool, bool]] = []
    optional_lines: list[str] = []
    kernel_names = {a.name for a in matrix.attention}
    profile_bounds: dict[str, SpecifierSet] = {}
    for name in profiles:
        profile = matrix.profile(name)
        if profile is None:
            known = ", ".join(p.name for p in matrix.profiles)
            raise BadInput(f"--profile: unknown profile {name!r}; known profiles: {known}")
        all_lines += list(profile.requirements)
        profile_lines += [_parsed(r, profile=True) for r in profile.requirements]
        constraints += [_parsed(r, profile=True, constraint=True) for r in profile.constraints]
        optional_lines += list(profile.optional)
        needs |= set(profile.needs)
        for need in profile.needs:
            requested.add(need.split(".")[0])
    user = [_parsed(line) for line in asked if strip_comment(line)]
    marked = False
    dropped: list[str] = []
    for line, text, req, from_profile, constraint in user + profile_lines + constraints:
        if req.marker is not None:
            marked = True
            if marker_env is not None and not req.marker.evaluate(dict(marker_env)):
                dropped.append(text)
                continue
        name = str(canonicalize_name(req.name))
        if req.extras and (name in SOLVED or name in kernel_names):
            extras = ",".join(sorted(req.extras))
            raise BadInput(f"requirement {line!r}: extras of {name} ([{extras}]) are not supported: gpustack plans "
                           f"{name} as one build and would drop them; drop [{extras}] and list the packages the extra "
                           "adds as requirements of their own")
        if name in kernel_names and name not in SOLVED:
            specs[name] = specs.get(name, SpecifierSet()) & req.specifier
            if not constraint:
                requested.add(name)
            continue
        if name not in SOLVED:
            if not constraint:
                others.append(text)
            continue
        spec, local = _split_local(req)
        if local is not None:
            if name != "torch":
                raise BadInput(f"invalid requirement {line!r}: only torch's CUDA build can be chosen with +cuXYZ")
            if variant is not None and variant != local:
                raise BadInput(f"conflicting torch builds requested: +{variant} and +{local}")
            variant = local
        specs[name] = specs.get(name, SpecifierSet()) & spec
        if from_profile:  # the bounds profiles set on solved packages: an alternative may narrow them, never lift them
            profile_bounds[name] = profile_bounds.get(name, SpecifierSet()) & spec
        if not constraint:
            requested.add(name)
    optional: dict[str, SpecifierSet] = {}
    for line in optional_lines:
        req = parse_requirement(line)
        if req.marker is not None and marker_env is not None and not req.marker.evaluate(dict(marker_env)):
            continue
        name = str(canonicalize_name(req.name))
        if name not in requested:
            optional[name] = optional.get(name, SpecifierSet()) & req.specifier & specs.get(name, SpecifierSet())
    flash = specs.get("flash-attn", SpecifierSet()) if "flash-attn" in requested else None
    kernels = [(n, specs[n]) for n in sorted(requested & kernel_names) if n not in SOLVED]
    if flash is not None and not any(spec_allows(flash, f.version) for f in matrix.flash_attn) and any(
        a.name == "flash-attn" and spec_allows(flash, a.version) for a in matrix.attention
    ):
        kernels.append(("flash-attn", flash))  # flash-attn 1.x (Turing): the attention rows decide it
        flash = None
    return Request(
        torch=specs.get("torch", SpecifierSet()),
        torch_variant=variant,
        xformers=specs.get("xformers", SpecifierSet()) if "xformers" in requested else None,
        flash_attn=flash,
        needs=frozenset(needs),
        others=tuple(others),
        verified_only=verified_only,
        prefer_wheels=prefer_wheels,
        lines=tuple(all_lines),
        asked=asked,
        kernels=tuple(kernels),
        optional=tuple(optional.items()),
        profile_bounds=tuple(profile_bounds.items()),
        marked=marked,
        dropped=tuple(dict.fromkeys(dropped)),
    )
