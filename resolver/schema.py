"""Located reading of untrusted JSON/TOML data (plans, locks): every error names the field, the value and the form
expected, e.g. ``--plan p.json: steps[3].requirement: '--target=/x' is not a PEP 508 requirement``.

``Loc`` carries where a value sits; the ``get_*`` helpers read one field of a table and raise ``BadInput`` (exit 2)
through ``Loc.fail``. The checks that decide what may reach a command line (requirements, URLs, build variables) live
here too, so plans and locks apply the same rules (docs/input.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from resolver.errors import BadInput

__all__ = ["Loc", "table", "get_str", "get_opt_str", "get_bool", "get_list", "get_str_list", "get_int",
           "BUILD_VARIABLES", "check_build_env", "check_url", "check_requirement"]

T = TypeVar("T")

# The only variables a plan or lock may set for a source build: what changes the binary or the build's parallelism.
# Anything else (PYTHONPATH, LD_PRELOAD, CC, NVCC_APPEND_FLAGS, PIP_*, ...) could run planted code in the build.
BUILD_VARIABLES = frozenset({
    "TORCH_CUDA_ARCH_LIST",
    "FLASH_ATTN_CUDA_ARCHS",
    "FORCE_CUDA",
    "FLASH_ATTENTION_FORCE_BUILD",
    "FLASH_ATTENTION_FORCE_CXX11_ABI",
    "FLASH_ATTENTION_DISABLE_BACKWARD",
    "FLASH_ATTENTION_SKIP_CUDA_BUILD",
    # FlashAttention-3 (hopper/setup.py): kernels left out to cut the build (matrices/attention.toml)
    "FLASH_ATTENTION_DISABLE_SM80",
    "FLASH_ATTENTION_DISABLE_FP8",
    "FLASH_ATTENTION_DISABLE_HDIMDIFF64",
    "FLASH_ATTENTION_DISABLE_HDIMDIFF192",
    "EXT_PARALLEL",  # SageAttention 2's setup.py: extensions built at once
    "XFORMERS_DISABLE_FLASH_ATTN",
    "_GLIBCXX_USE_CXX11_ABI",
    "MAX_JOBS",
    "NVCC_THREADS",
})
_BUILD_VALUE = re.compile(r"[A-Za-z0-9_.;:+, -]{0,200}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")


class Loc:
    """Where a value sits: the input (``--plan FILE``) and the path inside it (``steps[3].requirement``)."""

    def __init__(self, what: str, path: str = "", hint: str = "") -> None:
        self.what = what
        self.path = path
        self.hint = hint

    def at(self, key: str | int) -> Loc:
        if isinstance(key, int):
            return Loc(self.what, f"{self.path}[{key}]", self.hint)
        if not key.isprintable() or not key:  # a key with a newline must not split the one-line error
            return Loc(self.what, f"{self.path}[{key!r}]", self.hint)
        return Loc(self.what, f"{self.path}.{key}" if self.path else key, self.hint)

    def missing(self, expected: str) -> NoReturn:
        tail = f"; {self.hint}" if self.hint else ""
        raise BadInput(f"{self.what}: {self.path}: missing (expected {expected}){tail}")

    def fail(self, value: Any, expected: str) -> NoReturn:
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        if len(shown) > 80:
            shown = shown[:77] + "..."
        where = f"{self.what}: {self.path}" if self.path else self.what
        tail = f"; {self.hint}" if self.hint else ""
        raise BadInput(f"{where}: {shown} is not {expected}{tail}")


def table(value: Any, loc: Loc) -> Mapping[str, Any]:
    """Return ``value`` when it is a table (JSON object)."""
    if not isinstance(value, Mapping):
        loc.fail(value, "a table (JSON object)")
    return value


def _field(d: Mapping[str, Any], key: str, loc: Loc, kind: type[T], expected: str, default: Any) -> Any:
    value = d.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        loc.at(key).fail(value, expected)
    return value


def get_str(d: Mapping[str, Any], key: str, loc: Loc, *, limit: int = 1000) -> str:
    """Return the required string ``d[key]`` (one line, at most ``limit`` characters)."""
    if key not in d:
        loc.at(key).missing("a string")
    value = _field(d, key, loc, str, "a string", "")
    _one_line(value, loc.at(key), limit)
    return str(value)


def get_opt_str(d: Mapping[str, Any], key: str, loc: Loc, *, limit: int = 1000) -> str | None:
    """Return the string ``d[key]``, or ``None`` when it is absent or null."""
    value = _field(d, key, loc, str, "a string or null", None)
    if value is not None:
        _one_line(value, loc.at(key), limit)
    return value  # type: ignore[no-any-return]


def get_bool(d: Mapping[str, Any], key: str, loc: Loc, default: bool) -> bool:
    return bool(_field(d, key, loc, bool, "true or false", default))


def get_int(d: Mapping[str, Any], key: str, loc: Loc, default: int | None = None) -> int | None:
    value = _field(d, key, loc, int, "an integer", default)
    if value is not None and not 0 <= value < 2**53:
        loc.at(key).fail(value, "a non-negative integer")
    return value  # type: ignore[no-any-return]


def get_list(d: Mapping[str, Any], key: str, loc: Loc, *, limit: int = 10000) -> list[Any]:
    """Return the list ``d[key]`` (``[]`` when absent), at most ``limit`` items."""
    value = _field(d, key, loc, list, "a list", [])
    if len(value) > limit:
        loc.at(key).fail(f"{len(value)} items", f"at most {limit} items")
    return list(value)


def get_str_list(d: Mapping[str, Any], key: str, loc: Loc, *, limit: int = 1000) -> list[str]:
    """Return the list of strings ``d[key]`` (``[]`` when absent)."""
    out = []
    for i, item in enumerate(get_list(d, key, loc)):
        if not isinstance(item, str):
            loc.at(key).at(i).fail(item, "a string")
        _one_line(item, loc.at(key).at(i), limit)
        out.append(item)
    return out


def _one_line(value: str, loc: Loc, limit: int) -> None:
    if len(value) > limit:
        loc.fail(value, f"at most {limit} characters")
    if any(ch in value for ch in "\r\n\x00") or re.search(r"[\x01-\x08\x0b-\x1f\x7f\u2028\u2029]", value):
        loc.fail(value, "one line without control characters")


def check_requirement(value: str, loc: Loc) -> str:
    """Return ``value`` when it is a PEP 508 requirement (so it cannot be a pip option or hold a newline)."""
    from packaging.requirements import InvalidRequirement, Requirement

    if value.startswith("-") or re.search(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]", value):
        loc.fail(value, "a PEP 508 requirement")
    try:
        Requirement(value)
    except InvalidRequirement:
        loc.fail(value, "a PEP 508 requirement")
    return value


def check_url(value: str, loc: Loc, *, schemes: tuple[str, ...] = ("https", "http", "file")) -> str:
    """Return ``value`` when it is an absolute URL of ``schemes`` with no whitespace or control character."""
    parts = urlsplit(value) if not _CONTROL.search(value) else None
    if parts is None or parts.scheme not in schemes or (parts.scheme != "file" and not parts.netloc):
        loc.fail(value, f"a URL ({', '.join(s + '://' for s in schemes)}) without spaces")
    return value


def check_build_env(value: Any, loc: Loc) -> dict[str, str]:
    """Return ``value`` as build variables when every name is in ``BUILD_VARIABLES`` and every value is plain."""
    env = table(value, loc)
    out: dict[str, str] = {}
    for k, v in env.items():
        if k not in BUILD_VARIABLES:
            loc.at(k).fail(k, f"a build variable gpustack sets ({', '.join(sorted(BUILD_VARIABLES))})")
        if not isinstance(v, str) or not _BUILD_VALUE.fullmatch(v):
            loc.at(k).fail(v, "a plain string value (letters, digits, '.;:+,_- ')")
        out[k] = v
    return out
