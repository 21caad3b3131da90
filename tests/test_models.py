from __future__ import annotations

import pytest

from resolver.errors import BadInput
from resolver.models import ArchList, ComputeCapability, cuda_tag, format_driver, parse_driver

CC = ComputeCapability.parse


@pytest.mark.parametrize("text", ["8.6", "86", "sm_86", "compute_86", " 8.6 "])
def test_compute_capability_spellings(text: str) -> None:
    assert CC(text) == ComputeCapability(8, 6)


def test_compute_capability_two_digit_major() -> None:
    assert CC("12.0") == ComputeCapability(12, 0)
    assert CC("sm_120") == ComputeCapability(12, 0)
    assert CC("sm_100").sm == "sm_100"


@pytest.mark.parametrize("text", ["", "8", "eight", "8.66"])
def test_compute_capability_rejects(text: str) -> None:
    with pytest.raises(BadInput, match="invalid compute capability"):
        CC(text)


def test_sass_runs_on_same_major_equal_or_higher_minor() -> None:
    arch = ArchList.parse("5.0;6.0;7.0;7.5;8.0;8.6;9.0")
    assert arch.covers(CC("6.1")) == "sass"  # sm_60 cubin runs on 6.1
    assert arch.covers(CC("8.9")) == "sass"  # sm_86 cubin runs on 8.9
    assert arch.covers(CC("3.7")) is None
    assert arch.covers(CC("12.0")) is None  # no PTX: nothing for Blackwell


def test_ptx_is_a_fallback_for_newer_gpus_only() -> None:
    arch = ArchList.parse("7.5;8.0;12.0+PTX")
    assert arch.covers(CC("12.1")) == "sass"
    arch = ArchList.parse("7.5 8.0+PTX 9.0a")
    assert arch.covers(CC("9.0")) == "sass"  # arch-specific sm_90a runs on 9.0
    assert arch.covers(CC("8.9")) == "sass"
    assert arch.covers(CC("12.0")) == "ptx"  # compute_80 PTX JIT-compiles for newer GPUs
    assert arch.covers(CC("7.0")) is None  # PTX never runs on an older GPU


def test_arch_specific_targets_do_not_carry_forward() -> None:
    arch = ArchList.parse("9.0a 10.0a")
    assert arch.covers(CC("10.3")) is None
    assert arch.covers(CC("10.0")) == "sass"


def test_sm_list_spelling_and_round_trip() -> None:
    arch = ArchList.parse(["sm_37", "sm_50", "sm_60"])
    assert arch.to_torch_arch_list() == "3.7;5.0;6.0"
    assert ArchList.parse("7.0;8.0+PTX").to_torch_arch_list() == "7.0;8.0+PTX"


def test_driver_versions() -> None:
    assert parse_driver("470.82.01") < parse_driver("525.60.13") < parse_driver("580")
    assert format_driver(parse_driver("470.82.01")) == "470.82.01"
    assert format_driver(parse_driver("580.159.04")) == "580.159.04"
    for bad in ("5x5", "", "latest", "470.82.01.7"):
        with pytest.raises(BadInput, match="invalid driver version"):
            parse_driver(bad)


def test_cuda_tag() -> None:
    assert cuda_tag("12.1") == "cu121"
    assert cuda_tag("13.0") == "cu130"
    assert cuda_tag(None) == "cpu"


@pytest.mark.parametrize("data, said", [
    ({}, "--plan p.json: target: missing (expected a table (JSON object))"),
    ({"ok": True}, "--plan p.json: target: missing (expected a table (JSON object))"),
    ({"ok": True, "target": {}}, "--plan p.json: steps: missing (expected a list)"),
    ({"ok": False, "reasons": ["flash-attn needs sm_80 or newer"], "alternatives": []},
     "--plan p.json: a refusal (ok: false), not a plan ('flash-attn needs sm_80 or newer'): nothing in it can be "
     "installed; change the request until `gpustack plan --json` gives a plan"),
    ({"ok": True, "fleet": {}, "classes": []}, "--plan p.json: a fleet's plans (one per class), not one plan"),
])
def test_a_plan_file_that_is_no_plan_is_refused(data: object, said: str) -> None:
    # a refusal, {} and {"ok": true} all installed "nothing changed" with exit 0
    from resolver.models import Plan

    with pytest.raises(BadInput) as err:
        Plan.from_dict(data, what="--plan p.json")
    assert str(err.value).startswith(said)


def test_a_written_plan_still_reads_back() -> None:
    from resolver.models import PackageChoice, Plan, Stack, Step, Target

    plan = Plan(Stack(Target(gpus=(), python="3.11", platform="linux_x86_64"),
                      (PackageChoice("torch", "2.13.0+cpu", "wheel"),)),
                (Step("install", "torch", "torch==2.13.0+cpu"),))
    assert Plan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()
