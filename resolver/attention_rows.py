"""Rows of ``matrices/attention.toml``: ``parse_rows(data) -> tuple[AttentionRelease, ...]``, pure, with an
``InvalidMatrix`` naming ``attention.toml: release[i]: field`` for the first bad value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.errors import InvalidMatrix
from resolver.matrix_types import AttentionRelease, git_ref, is_commit
from resolver.models import ComputeCapability

__all__ = ["ATTENTION_KEYS", "parse_rows"]

# Every key a ``[[release]]`` row may hold (``matrix_rows.check_keys`` refuses any other). The values of the maps
# ``build_env``, ``arch_min_cuda`` and ``extras`` have free keys.
ATTENTION_KEYS = frozenset({
    "arch_env", "arch_min_cuda", "backend", "build_archs", "build_env", "commit", "cuda_majors", "deps",
    "deps_cuda12", "deps_cuda13", "diffusers", "extras", "family", "generation", "index", "max_cc_major",
    "method", "min_cc", "min_cuda", "min_torch", "module", "name", "note", "platforms", "pypi",
    "requirement_name", "requires_python", "source", "title", "unverified", "url", "version"})


def _fail(i: int, field: str, what: str) -> InvalidMatrix:
    return InvalidMatrix(what, f"attention.toml: release[{i}]: {field}")


def _str_list(r: Mapping[str, Any], key: str, i: int) -> tuple[str, ...]:
    value = r.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _fail(i, key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _str_map(r: Mapping[str, Any], key: str, i: int) -> dict[str, str]:
    value = r.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(i, key, f"expected a table of strings, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _row(r: Mapping[str, Any], i: int) -> AttentionRelease:
    from packaging.requirements import InvalidRequirement, Requirement

    def text(key: str, default: str | None = None) -> str:
        value = r.get(key, default)
        if not isinstance(value, str):
            raise _fail(i, key, "missing" if value is None else f"expected a string, got {value!r}")
        return value

    def version(key: str) -> Version | None:
        return Version(text(key)) if key in r else None

    def cc(value: str, key: str) -> ComputeCapability:
        try:
            return ComputeCapability.parse(value)
        except Exception:
            raise _fail(i, key, f"invalid compute capability {value!r}") from None

    try:
        method = text("method")
        if method not in ("wheel", "source"):
            raise _fail(i, "method", f"expected 'wheel' or 'source', got {method!r}")
        deps = _str_list(r, "deps", i)
        deps_cuda = {int(k.removeprefix("deps_cuda")): _str_list(r, k, i) for k in r if k.startswith("deps_cuda")}
        for dep in deps + tuple(d for ds in deps_cuda.values() for d in ds):
            try:
                Requirement(dep)
            except InvalidRequirement as exc:
                raise _fail(i, "deps", f"{dep!r}: {exc}") from None
        majors = r.get("cuda_majors", [])
        if not isinstance(majors, list) or not all(isinstance(m, int) for m in majors):
            raise _fail(i, "cuda_majors", f"expected a list of integers, got {majors!r}")
        max_major = r.get("max_cc_major")
        if max_major is not None and not isinstance(max_major, int):
            raise _fail(i, "max_cc_major", f"expected an integer, got {max_major!r}")
        generation = r.get("generation")
        if not isinstance(generation, int):
            raise _fail(i, "generation", f"expected an integer, got {generation!r}")
        from resolver.schema import BUILD_VARIABLES

        unknown = sorted(set(_str_map(r, "build_env", i)) - BUILD_VARIABLES)
        if unknown:
            raise _fail(i, "build_env", f"{unknown[0]} is not a build variable plans may set (resolver/schema.py)")
        if method == "source" and "url" not in r and "index" not in r:
            raise _fail(i, "url", "a source release needs a url or an index holding its sdist")
        commit = r.get("commit")
        url = r.get("url")
        if commit is not None and not is_commit(commit):
            raise _fail(i, "commit", f"expected a full commit hash (40 hex digits), got {commit!r}")
        if isinstance(url, str) and url.startswith("git+"):
            ref = git_ref(url)
            if ref is None or (not is_commit(ref) and commit is None):
                raise _fail(i, "commit", "a git url needs the full commit hash its ref names (git rev-parse "
                                         "REF^{commit}), with its source: a lock records it (PEP 751 commit-id)")
            commit = commit or ref
        return AttentionRelease(
            name=str(canonicalize_name(text("name"))), version=Version(text("version")), title=text("title"),
            family=text("family"), generation=generation, module=text("module"), backend=text("backend"),
            method=method, min_cc=cc(text("min_cc"), "min_cc"), requires_python=SpecifierSet(text("requires_python")),
            platforms=_str_list(r, "platforms", i), source=text("source"),
            index=r.get("index"), url=url, requirement_name=r.get("requirement_name"), commit=commit,
            max_cc_major=max_major, build_archs=tuple(cc(a, "build_archs") for a in _str_list(r, "build_archs", i)),
            arch_min_cuda={k: Version(v) for k, v in _str_map(r, "arch_min_cuda", i).items()},
            min_cuda=version("min_cuda"), cuda_majors=tuple(majors), min_torch=version("min_torch"),
            extras={int(k): v for k, v in _str_map(r, "extras", i).items()}, deps=deps, deps_cuda=deps_cuda,
            build_env=_str_map(r, "build_env", i), arch_env=r.get("arch_env"),
            diffusers=_str_list(r, "diffusers", i), pypi=text("pypi", ""),
            unverified=bool(r.get("unverified", False)), note=text("note", ""),
        )
    except InvalidMatrix:
        raise
    except Exception as exc:  # a bad version or specifier string
        raise _fail(i, "?", str(exc)) from None


def parse_rows(data: Mapping[str, Any]) -> tuple[AttentionRelease, ...]:
    """Return the rows of a parsed ``attention.toml``, newest first per name; ``InvalidMatrix`` names a bad field."""
    rows = data.get("release", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidMatrix("expected an array of tables [[release]]", "attention.toml: release")
    out = [_row(r, i) for i, r in enumerate(rows)]
    return tuple(sorted(out, key=lambda a: (a.name, a.version), reverse=True))
