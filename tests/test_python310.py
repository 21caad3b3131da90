"""pyproject says ``requires-python = ">=3.10"``: no module imports what Python 3.10's standard library lacks.
``tomllib`` is 3.11's; gpustack reads TOML through ``resolver.toml_read`` (tomli, a dependency). Six modules
imported tomllib directly, and on 3.10 `gpustack lock` (and everything that reads a lock) failed to import."""

from __future__ import annotations

import ast
from pathlib import Path

RESOLVER = Path(__file__).resolve().parents[1] / "resolver"
NOT_IN_310 = {"tomllib"}


def test_no_module_imports_what_python_3_10_lacks() -> None:
    found = []
    for path in sorted(RESOLVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in NOT_IN_310 for n in names) and path.name != "toml_read.py":
                found.append(f"{path.relative_to(RESOLVER.parent)}:{node.lineno}")
    assert found == []
