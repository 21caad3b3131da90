"""Solver stories as data: tests/cases/*.toml, one [[case]] per target + request -> expected stack or refusal.

Each case runs the real solver and planner over the shipped matrices; nothing is stubbed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from resolver import matrix
from resolver.errors import NoCompatibleStack
from resolver.gpus import lookup_gpu
from resolver.models import Plan, Target, parse_driver
from resolver.plan import make_plan
from resolver.request import parse_request
from resolver.solve import solve

CASES_DIR = Path(__file__).parent / "cases"
PACKAGES = ("torch", "xformers", "flash-attn")


def _cases() -> list[Any]:
    out = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        for case in tomllib.loads(path.read_text())["case"]:
            out.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return out


def _target(spec: dict[str, Any], resources: dict[str, Any]) -> Target:
    m = matrix.load()
    gpus = () if spec.get("cpu") else tuple(lookup_gpu(g, m) for g in spec["gpus"])
    return Target(
        gpus=gpus,
        python=spec["python"],
        platform=spec.get("platform", "linux_x86_64"),
        driver=parse_driver(spec["driver"]) if "driver" in spec else None,
        nvcc=Version(spec["nvcc"]) if "nvcc" in spec else None,
        cpu_count=resources.get("cpu_count", 8),
        memory_gib=resources.get("memory_gib", 64.0),
        source="given",
    )


def _contains_all(haystack: list[str], needles: list[str], what: str) -> None:
    for needle in needles:
        assert any(needle in h for h in haystack), f"{what} lack {needle!r}: {haystack}"


def _check_package(plan: Plan, name: str, expect: dict[str, Any]) -> None:
    choice = plan.stack.get(name)
    assert choice is not None, f"{name} missing from the stack"
    for key in ("version", "method", "index_url"):
        if key in expect:
            assert getattr(choice, key) == expect[key], f"{name}.{key}: {getattr(choice, key)!r} != {expect[key]!r}"
    if "version_min" in expect:
        assert Version(choice.version) >= Version(expect["version_min"])
    if "url_contains" in expect:
        assert choice.url and expect["url_contains"] in choice.url, choice.url
    for k, v in expect.get("env", {}).items():
        assert choice.build_env.get(k) == v, f"{name} env {k}: {dict(choice.build_env)}"


def _check_step(plan: Plan, name: str, expect: dict[str, Any]) -> None:
    step = next(s for s in plan.steps if s.package == name)
    for key in ("action", "build_isolation", "no_deps", "index_url"):
        if key in expect:
            assert getattr(step, key) == expect[key], f"step {name}.{key}: {getattr(step, key)!r}"
    if "constraints" in expect:
        assert list(step.constraints) == expect["constraints"]
    for k, v in expect.get("env", {}).items():
        assert step.env.get(k) == v, f"step {name} env {k}: {dict(step.env)}"


@pytest.mark.parametrize("case", _cases())
def test_case(case: dict[str, Any]) -> None:
    m = matrix.load()
    target = _target(case["target"], case.get("resources", {}))
    request = parse_request(
        case.get("requirements", []),
        m,
        profiles=case.get("profiles", []),
        verified_only=case.get("verified_only", False),
        prefer_wheels=case.get("prefer_wheels", False),
    )
    if "installed_torch" in case["target"]:
        request = dataclasses.replace(request, keep_torch=case["target"]["installed_torch"])
    expect = case["expect"]
    if not expect.get("ok", True):
        with pytest.raises(NoCompatibleStack) as info:
            solve(target, m, request)
        _contains_all(info.value.reasons, expect.get("reasons_contain", []), "reasons")
        alternatives = [a.text for a in info.value.alternatives]
        _contains_all(alternatives, expect.get("alternatives_contain", []), "alternatives")
        for needle in expect.get("alternatives_lack", []):
            assert not any(needle in a for a in alternatives), alternatives
        return
    plan = make_plan(solve(target, m, request))
    torch = plan.stack.torch
    if "torch" in expect:
        assert torch.version == expect["torch"]
    if "torch_index" in expect:
        assert torch.index_url == expect["torch_index"]
    notes = list(plan.stack.notes) + list(plan.notes)
    _contains_all(notes, expect.get("notes_contain", []), "notes")
    for absent in expect.get("notes_absent", []):
        assert not any(absent in n for n in notes), f"notes contain {absent!r}: {notes}"
    for name in PACKAGES[1:]:
        if name in expect:
            _check_package(plan, name, expect[name])
    for name, step_expect in expect.get("step", {}).items():
        _check_step(plan, name, step_expect)
    # Invariants of every plan: torch first; everything after it holds torch's exact build.
    assert plan.steps[0].package == "torch"
    pin = plan.steps[0].requirement
    for step in plan.steps[1:]:
        assert pin in step.constraints


def test_at_least_forty_cases() -> None:
    assert len(_cases()) >= 40
