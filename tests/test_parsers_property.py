"""Hypothesis over every parser of outside input (issue 12): any text or JSON/TOML value either parses or raises
``GpuStackError`` with a one-line message; never another exception, never a hang."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from resolver import matrix  # noqa: E402
from resolver.errors import GpuStackError  # noqa: E402
from resolver.gpus import lookup_gpu  # noqa: E402
from resolver.inputs import ascii_number, check_argument, check_index_url, positive_seconds  # noqa: E402
from resolver.lock import loads  # noqa: E402
from resolver.models import ArchList, ComputeCapability, Plan, parse_driver  # noqa: E402
from resolver.pipeline import PlanOptions  # noqa: E402
from resolver.redact import redact  # noqa: E402
from resolver.request import parse_request  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOLDEN = tomllib.loads((Path(__file__).parent / "golden" / "lock_gpu_source.toml").read_text())
MATRIX = matrix.load()

# Text that looks like what users type, plus everything Unicode has (digits of other scripts, controls, huge runs).
_near = st.sampled_from(["535.104.05", "8.6", "sm_90", "9.0a", "8.0+PTX", "torch==2.1.0", "A100", "3.11", "120",
                         "--", "\n", "\x00", "٥", "５", "1" * 4400, "", " ", "nan", "inf", "-1", ";", "+", "."])
TEXT = st.one_of(st.text(max_size=40), st.lists(_near, max_size=6).map("".join),
                 st.text(alphabet="0123456789.;+_smcpPTXa ", max_size=30))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=20)


def _clean(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except GpuStackError as exc:
        assert "\n" not in str(exc), str(exc)


@SETTINGS
@given(TEXT)
def test_text_parsers(text: str) -> None:
    _clean(lambda: parse_driver(text))
    _clean(lambda: ComputeCapability.parse(text))
    _clean(lambda: ArchList.parse(text))
    _clean(lambda: lookup_gpu(text, MATRIX))
    _clean(lambda: ascii_number(text, "--x", hint="h"))
    _clean(lambda: positive_seconds(text, "--timeout"))
    _clean(lambda: check_argument(text, "requirement"))
    _clean(lambda: check_index_url(text, "index"))


@SETTINGS
@given(st.text(alphabet="abcXYZ0189-._~%!$&()*+,;=:", min_size=1, max_size=30), TEXT)
def test_redact_masks_any_password(password: str, around: str) -> None:
    user, _, secret = f"u:{password}".partition(":")
    shown = redact(f"{around} https://{user}:{secret}@host.example/simple {around}")
    assert f"{user}:****@host.example/simple" in shown


@SETTINGS
@given(st.lists(TEXT, max_size=5))
def test_requirement_lines(lines: list[str]) -> None:
    _clean(lambda: parse_request(lines, MATRIX))


@SETTINGS
@given(st.fixed_dictionaries({}, optional={"driver": TEXT, "python_version": TEXT, "nvcc": TEXT, "glibc": TEXT,
                                           "gpus": st.lists(TEXT, max_size=2)}))
def test_target_options(values: dict[str, Any]) -> None:
    _clean(lambda: PlanOptions.from_cli(values))


@SETTINGS
@given(JSON)
def test_plan_json_of_any_shape(data: Any) -> None:
    _clean(lambda: Plan.from_dict(data, what="--plan p.json"))


def _steps(step: Any) -> dict[str, Any]:
    return {"steps": [step]}


@SETTINGS
@given(st.dictionaries(st.sampled_from(["action", "package", "requirement", "index_url", "url", "extra_index_urls",
                                        "no_deps", "constraints", "env", "build_isolation", "description"]),
                       JSON, max_size=6))
def test_plan_steps_of_any_field_values(step: dict[str, Any]) -> None:
    def run() -> None:
        plan = Plan.from_dict(_steps({"action": "install", "package": "x", "requirement": "x", **step}))
        for s in plan.steps:  # what got through is safe to put on a command line
            for value in (s.requirement, s.url or "", s.index_url or "", *s.extra_index_urls, *s.constraints):
                assert not value.startswith("-") and "\n" not in value
    _clean(run)


def _paths(d: Any, p: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append(p + (k,))
            out += _paths(v, p + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.append(p + (i,))
            out += _paths(v, p + (i,))
    return out


_LOCK_PATHS = _paths(GOLDEN)
_TOML_VALUE = st.recursive(st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1) | TEXT,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                           max_leaves=8)


@SETTINGS
@given(st.sampled_from(_LOCK_PATHS), _TOML_VALUE)
def test_lock_with_any_field_replaced(path: tuple[Any, ...], value: Any) -> None:
    import copy

    import tomli_w

    data = copy.deepcopy(GOLDEN)
    cur: Any = data
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return
    _clean(lambda: loads(text))


@SETTINGS
@given(st.text(max_size=200))
def test_lock_of_any_text(text: str) -> None:
    _clean(lambda: loads(text))


@SETTINGS
@given(st.text(max_size=200))
def test_plan_of_any_json_text(text: str) -> None:
    def run() -> None:
        try:
            data = json.loads(text)
        except ValueError:
            return
        Plan.from_dict(data)
    _clean(run)
