"""A source build is judged by the nvcc that runs it (the target's, when given or detected), and a refusal about it
names the real reason with alternatives that solve: real `gpustack plan` runs through click's CliRunner."""

from __future__ import annotations

from typing import Any

from _plans import package_of, plan_json

A100_R470 = ["--gpu", "A100", "--driver", "470.82.01", "--python", "3.11", "--glibc", "2.35"]
K80 = ["--gpu", "K80", "--driver", "470.82.01", "--python", "3.10"]


def _flash(data: dict[str, Any]) -> dict[str, Any]:
    return package_of(data, "flash-attn")


def test_flash_attn_is_not_built_by_an_nvcc_its_setup_refuses() -> None:
    """flash-attn's setup.py refuses nvcc < 11.7 (setup_min_cuda_for_build): with --nvcc 11.4 the plan takes a
    prebuilt wheel instead of a source build that would fail; with --nvcc 11.8 the source build is planned."""
    code, old = plan_json(*A100_R470, "--nvcc", "11.4", "flash-attn")
    assert code == 0 and _flash(old)["method"] == "wheel", old
    assert not any(s["action"] == "build" for s in old["steps"]), old
    code, new = plan_json(*A100_R470, "--nvcc", "11.8", "flash-attn")
    assert code == 0 and _flash(new)["method"] == "source", new


def test_a_build_that_only_nvcc_blocks_is_refused_naming_it_and_the_toolkit_that_solves() -> None:
    code, data = plan_json(*A100_R470, "--nvcc", "11.4", "torch==2.5.1", "flash-attn==2.8.3.post2")
    assert code == 1 and data["ok"] is False, data
    assert {r["kind"] for r in data["refusals"]} == {"toolkit"}, data["refusals"]
    facts = data["refusals"][0]["facts"]
    assert (facts["min_cuda"], facts["nvcc"], facts["cuda"]) == ("11.7", "11.4", "11.8"), facts
    assert "the target's nvcc is 11.4" in data["reasons"][0], data["reasons"]
    [alt] = data["alternatives"]
    assert alt["change"] == {"target": {"nvcc": "11.8"}, "request": {}}, alt
    code, fixed = plan_json(*A100_R470, "--nvcc", "11.8", "torch==2.5.1", "flash-attn==2.8.3.post2")
    assert code == 0 and _flash(fixed)["method"] == "source", fixed


def test_an_old_driver_does_not_leave_the_refusal_without_a_reason() -> None:
    """The newest torch builds need a newer driver than 470; explain used to look only at those six and said
    'no combination of the requested packages fits this target' (kind other)."""
    code, data = plan_json(*A100_R470, "--nvcc", "11.4", "flash-attn==2.8.3.post2")
    assert code == 1 and "other" not in {r["kind"] for r in data["refusals"]}, data
    assert any("nvcc >= 11.7" in r for r in data["reasons"]), data["reasons"]
    assert [a["change"]["target"] for a in data["alternatives"]] == [{"nvcc": "11.8"}], data["alternatives"]


def test_k80_with_a_cuda_12_nvcc_says_so_and_the_toolkit_alternative_solves() -> None:
    """xformers<0.0.23 pins torch 2.1.0 and older; every such xformers is a source build on sm_37, which nvcc 12.0
    cannot build against a CUDA 11 torch (the only CUDA a 470 driver runs)."""
    code, data = plan_json(*K80, "--nvcc", "12.0", "xformers<0.0.23")
    assert code == 1 and "other" not in {r["kind"] for r in data["refusals"]}, data
    assert any(r["kind"] == "toolkit" and r["facts"].get("nvcc") == "12.0" for r in data["refusals"]), data["refusals"]
    [alt] = data["alternatives"]
    nvcc = alt["change"]["target"]["nvcc"]
    assert nvcc.startswith("11."), alt
    code, fixed = plan_json(*K80, "--nvcc", nvcc, "xformers<0.0.23")
    assert code == 0 and fixed["packages"][1]["name"] == "xformers", fixed
