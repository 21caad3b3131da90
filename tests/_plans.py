"""The plan JSON of the real CLI, for tests of plan (imported as ``from _plans import plan_json``, as ``_hadolint``)."""

from __future__ import annotations

from typing import Any


def plan_json(*args: str) -> tuple[int, dict[str, Any]]:
    """Return the exit code and the JSON document of `gpustack plan ARGS --json` (the real CLI, through CliRunner)."""
    import json

    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["plan", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def package_of(plan: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the package ``name`` of a plan's JSON document."""
    return next(p for p in plan["packages"] if p["name"] == name)
