"""The typed pipeline: checked options, a given target, and a plan, without click."""

from __future__ import annotations

import pytest
from packaging.version import Version

from resolver.errors import BadInput
from resolver.pipeline import PlanOptions, fresh_plan_for, load_matrix, plan_for, target_from


def test_from_cli_parses_and_checks() -> None:
    opts = PlanOptions.from_cli({"gpus": ["A100"], "driver": "535.104.05", "python_version": "3.11",
                                 "platform_tag": "linux_x86_64", "nvcc": "12.4", "cpu": False})
    assert opts.gpus == ("A100",) and opts.driver == Version("535.104.5") and opts.nvcc == Version("12.4")
    assert opts.target_given


@pytest.mark.parametrize("values, message", [
    ({"driver": "abc"}, "--driver 'abc'"),
    ({"python_version": "2.7"}, "--python '2.7'"),
    ({"nvcc": "twelve"}, "--nvcc 'twelve'"),
    ({"gpus": ("A100",), "cpu": True}, "--gpu and --cpu together"),
])
def test_from_cli_refuses_bad_values(values: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        PlanOptions.from_cli(values)


def test_given_target_reads_nothing_of_this_machine() -> None:
    opts = PlanOptions(gpus=("A100", "8.6"), driver=Version("535.104.05"), python_version="3.10",
                       platform_tag="linux_aarch64")
    target, lines, installed = target_from(opts, load_matrix(opts))
    assert [str(g.compute_capability) for g in target.gpus] == ["8.0", "8.6"]
    assert (target.python, target.platform, target.source) == ("3.10", "linux_aarch64", "given")
    assert target.cpu_count is None and lines == [] and installed == {}


def test_plan_and_fresh_plan_agree_for_a_given_target() -> None:
    opts = PlanOptions(gpus=("H100",), driver=Version("580.65.06"), python_version="3.11", platform_tag="linux_x86_64")
    plan, ctx = plan_for(["xformers"], opts)
    fresh, _ = fresh_plan_for(["xformers"], opts)
    assert ctx.target.source == "given"
    assert [(p.name, p.version) for p in plan.stack.packages] == [(p.name, p.version) for p in fresh.stack.packages]
    assert {p.name for p in plan.stack.packages} >= {"torch", "xformers"}
