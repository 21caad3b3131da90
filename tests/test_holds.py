"""A request that contradicts a known-bad pin (matrices/pins.toml) is refused, by plan, lock and check-upgrade alike,
with the pin and its source named and only alternatives that solve; an unbounded requirement is pinned inside it.

The index is a file:// folder of (empty) wheels laid out like a find-links folder; no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from packaging.specifiers import SpecifierSet

from _plans import plan_json
from resolver.cli import main
from resolver.holds import contradicts, held_pins, within
from resolver.matrix import load
from resolver.matrix_types import Pin

V100 = ["--gpu", "V100", "--driver", "535.104.05", "--python", "3.10"]
NUMPY_HOLD = Pin("numpy", "numpy<2", "torch<2.3", "torch 2.2 is built against NumPy 1.x", "test")


def _index(tmp_path: Path) -> str:
    index = tmp_path / "index"
    index.mkdir()
    for v in ("1.26.4", "2.0.0", "2.2.6"):
        (index / f"numpy-{v}-cp310-cp310-manylinux_2_17_x86_64.whl").write_bytes(b"")
    return index.as_uri()


def _plan(*args: str) -> tuple[int, dict[str, Any]]:
    return plan_json(*V100, *args)


def test_plan_refuses_numpy_2_beside_torch_2_1_naming_the_pin_and_each_alternative_solves(tmp_path: Path) -> None:
    index = _index(tmp_path)
    code, data = _plan("torch==2.1.0", "numpy==2.0", "--index-url", index)
    assert code == 1 and data["ok"] is False, data
    [why] = data["refusals"]  # type: ignore[misc]
    assert why["kind"] == "hold" and why["package"] == "numpy", why
    assert why["facts"]["pin"] == "numpy<2" and why["facts"]["when"] == "torch<2.3", why
    assert "pytorch/pytorch#107302" in why["facts"]["source"] and "matrices/pins.toml" in why["text"], why
    alts = data["alternatives"]
    assert [a["change"]["request"] for a in alts] == [  # type: ignore[index]
        {"others": ["numpy<2"]}, {"torch": "==2.3.0", "torch_variant": "cu121", "keep_torch": None}], alts
    # Each alternative, asked as printed, plans: numpy inside the hold, or the nearest torch that takes numpy 2.0.
    code, inside = _plan("torch==2.1.0", "numpy<2", "--index-url", index)
    assert code == 0 and inside["other_requirements"] == ["numpy==1.26.4"], inside
    code, newer = _plan("torch==2.3.0+cu121", "numpy==2.0", "--index-url", index)
    assert code == 0 and newer["other_requirements"] == ["numpy==2.0.0"], newer


def test_an_unbounded_requirement_is_pinned_inside_the_hold(tmp_path: Path) -> None:
    """`numpy` beside torch 2.1.0 was pinned to the index's newest (2.2.6) while every step held numpy<2."""
    code, data = _plan("torch==2.1.0", "numpy", "--index-url", _index(tmp_path))
    assert code == 0 and data["other_requirements"] == ["numpy==1.26.4"], data
    step = next(s for s in data["steps"] if s["package"] == "numpy")  # type: ignore[attr-defined]
    assert "numpy<2" in step["constraints"], step


def test_a_torch_range_moves_to_a_torch_that_takes_the_requirement(tmp_path: Path) -> None:
    code, data = _plan("torch<2.5", "numpy==2.0", "--index-url", _index(tmp_path))
    assert code == 0 and data["packages"][0]["version"].startswith("2.4.1"), data  # type: ignore[index]
    assert data["other_requirements"] == ["numpy==2.0.0"], data
    assert not any("numpy<2" in s["constraints"] for s in data["steps"]), data  # type: ignore[attr-defined]


def test_lock_refuses_it_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "pylock.np.toml"
    result = CliRunner().invoke(main, ["lock", *V100, "torch==2.1.0", "numpy==2.0", "--no-deps", "-o", str(out),
                                       "--index-url", _index(tmp_path)])
    assert result.exit_code == 1 and "numpy==2.0 contradicts numpy<2" in result.output, result.output
    assert not out.exists()


def test_check_upgrade_calls_it_unsafe(tmp_path: Path) -> None:
    from resolver.lock import LockedFile, dumps
    from resolver.models import PYPI_SIMPLE, ComputeCapability, Gpu, PackageChoice, Plan, Stack, Step, Target

    target = Target(gpus=(Gpu("V100", ComputeCapability(7, 0)),), python="3.10", platform="linux_x86_64")
    torch = PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=PYPI_SIMPLE, cuda="12.1")
    plan = Plan(Stack(target, (torch,)), (Step("install", "torch", "torch==2.1.0", index_url=PYPI_SIMPLE),))
    name = "torch-2.1.0-cp310-cp310-manylinux1_x86_64.whl"
    lock = tmp_path / "pylock.toml"
    lock.write_text(dumps(plan, {"torch": LockedFile("torch", "2.1.0", name, f"https://files.example/{name}", "a" * 64)},
                          matrix=load(), request=("torch==2.1.0",)))
    result = CliRunner().invoke(main, ["check-upgrade", "numpy==2.0", "--lock", str(lock), "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["verdict"] == "unsafe", data
    assert [f["kind"] for f in data["findings"]] == ["hold"] and "numpy<2" in data["findings"][0]["reason"], data
    fine = CliRunner().invoke(main, ["check-upgrade", "numpy<1.27", "--lock", str(lock), "--json"])
    assert fine.exit_code == 0 and json.loads(fine.stdout)["verdict"] == "safe", fine.output


@pytest.mark.parametrize("asked, clash", [
    ("numpy==2.0", True), ("numpy>=2", True), ("numpy==2.*", True), ("numpy>2.0,<3", True),
    ("numpy", False), ("numpy>=1.20", False), ("numpy~=1.26", False), ("numpy>1.26.4,<1.26.5", False),
    ("numpy!=1.26.4", False), ("numpy<=2.0", False), ("scipy>=2", False),
])
def test_contradiction_from_the_specifiers_alone(asked: str, clash: bool) -> None:
    """Without the index's answer (check-upgrade): no version satisfies both only when the bounds exclude each other."""
    assert contradicts(asked, [NUMPY_HOLD]) is clash


@pytest.mark.parametrize("hold, asked, clash", [
    ("numpy<2.1.0", "numpy>2", False),  # 2.0.1 satisfies both: the old hand-written check only tried the bounds
    ("numpy<2.0.0rc1", "numpy==2.*", False),  # 2.0.0b1 satisfies both (pre-releases count)
    ("numpy<2.1.0", "numpy>=2.1", True), ("numpy>=1.26,<1.27", "numpy~=1.25.0", True),
])
def test_contradiction_is_interval_arithmetic(hold: str, asked: str, clash: bool) -> None:
    """Between the bounds of a requirement and a hold: an overlap no bound names is still an overlap."""
    assert contradicts(asked, [Pin("numpy", hold, "torch<2.3", "test hold", "test")]) is clash


def test_held_pins_read_when_and_platforms_as_the_plan_notes_them() -> None:
    pins = load().pins
    assert [p.requirement for p in held_pins({"torch": "2.1.0+cu121"}, "linux_x86_64", pins)] == ["numpy<2"]
    assert held_pins({"torch": "2.3.0"}, "linux_x86_64", pins) == []
    assert [p.when for p in held_pins({"torch": "2.4.0"}, "win_amd64", pins)] == ["torch<2.4.1"]
    assert within(("numpy[dev]>=1.20; python_version>'3'", "scipy"), [NUMPY_HOLD]) == \
        ('numpy[dev]<2,>=1.20; python_version > "3"', "scipy")
    assert SpecifierSet("<2,>=1.20") == SpecifierSet(within(("numpy>=1.20",), [NUMPY_HOLD])[0][len("numpy"):])
