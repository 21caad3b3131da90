"""Reading TOML fast: tomli's compiled build where it is installed, else the standard library's tomllib.

tomllib *is* tomli (vendored into Python 3.11); tomli's wheels are compiled with mypyc, which parses the ~400 KB of
matrices in ~18 ms instead of ~57 ms. That parse is on the path of every run without a matrix cache (a first or a
cold run). Same grammar, same errors (both raise a ``ValueError`` subclass), so callers cannot tell them apart.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["loads", "TOMLDecodeError"]

try:
    _parser: Any = importlib.import_module("tomli")
except ImportError:  # an environment without the dependency: the same parser, uncompiled
    _parser = importlib.import_module("tomllib")

TOMLDecodeError: type[ValueError] = _parser.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    """Return the table of TOML ``text``; ``TOMLDecodeError`` when it is not valid TOML."""
    data: dict[str, Any] = _parser.loads(text)
    return data
