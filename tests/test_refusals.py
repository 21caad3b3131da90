"""Refusals are values: the solver emits them, text and JSON are rendered from them, nothing parses them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.errors import NoCompatibleStack
from resolver.refusal import KINDS, Refusal, ordered, refusal

ROOT = Path(__file__).resolve().parents[1]


def _refused(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["plan", "--json", *args])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    return data  # type: ignore[no-any-return]


def test_flash_attn_on_v100_is_a_compute_capability_refusal() -> None:
    data = _refused("--gpu", "V100", "--python", "3.11", "flash-attn")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["kind"] == "compute_capability"
    assert first["package"] == "flash-attn"
    assert first["facts"]["min_cc"] == "8.0"
    assert first["facts"]["compute_capability"] == "7.0"
    assert first["facts"]["gpu"] == "V100"
    # The text users read is the same string, rendered from those facts.
    assert first["text"] == data["reasons"][0] == "flash-attn needs compute capability 8.0; V100 is 7.0"  # type: ignore[index]
    assert first["alternative"] in data["alternatives"]  # type: ignore[operator]


def test_driver_floor_refusal_names_driver_and_floor() -> None:
    data = _refused("--gpu", "H100", "--driver", "440.33", "--python", "3.10")
    first = data["refusals"][0]  # type: ignore[index]
    assert first["kind"] == "driver"
    assert first["package"] == "torch"
    assert first["facts"]["driver"] == "440.33"
    assert first["facts"]["driver_floor"] == "450.80.02"
    assert first["facts"]["cuda"] == "11.8"
    assert first["alternative"] == "update the NVIDIA driver to >= 450.80.02 for CUDA 11.x builds"
    assert first["text"] == data["reasons"][0]  # type: ignore[index]


def test_human_refusal_is_rendered_from_the_same_values() -> None:
    result = CliRunner().invoke(main, ["plan", "--gpu", "V100", "--python", "3.11", "flash-attn"])
    assert result.exit_code == 1
    assert "  - flash-attn needs compute capability 8.0; V100 is 7.0" in result.stdout


def test_explain_and_solve_do_not_parse_messages() -> None:
    for name in ("explain.py", "solve.py"):
        source = (ROOT / "resolver" / name).read_text()
        assert "import re\n" not in source and "re.findall" not in source and "re.match" not in source, name


def test_kinds_are_a_fixed_set_and_root_facts_come_first() -> None:
    with pytest.raises(ValueError):
        Refusal("torch", "", "bogus", {}, "x")
    pin = refusal("xformers", "0.0.22", "torch_pin", "xformers pins torch{pins}", pins="==2.1.0")
    py = refusal("torch", "==2.1.0", "python", "torch{spec} has no wheels for Python {python}", spec="==2.1.0",
                 python="3.13")
    assert [r.kind for r in ordered([pin, py])] == ["python", "torch_pin"]
    assert "other" in KINDS
    exc = NoCompatibleStack([py], ["alt"])
    assert exc.reasons == ["torch==2.1.0 has no wheels for Python 3.13"]
    assert [r["kind"] for r in exc.to_dict()["refusals"]] == ["python"]
    with pytest.raises(TypeError):  # no module refuses with text any more: a string is a bug, not an ``other``
        NoCompatibleStack(["a plain reason"])  # type: ignore[list-item]
