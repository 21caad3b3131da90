"""A described target whose driver cannot drive one of its GPUs is refused (gpus.toml [[driver_support]]), by every
command through the one solver, with only the driver alternative that re-plans as printed (s7 trial finding #15)."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.errors import InvalidMatrix
from resolver.matrix_rows import from_dicts

ROOT = Path(__file__).resolve().parents[1]

CASES = [  # (gpu, driver, architecture, range, the matrix's driver offered)
    ("K80", "580.95.05", "Kepler", "R470 or older", "470.42.01"),
    ("RTX 5090", "535.104.05", "Blackwell", "R570 or newer", "570.26"),
    ("H100", "450.80.02", "Hopper", "R520 or newer", "520.61.05"),
]


@pytest.mark.parametrize(("gpu", "driver", "arch", "driver_range", "offered"), CASES)
def test_a_driver_that_cannot_drive_the_gpu_is_refused(gpu: str, driver: str, arch: str, driver_range: str,
                                                        offered: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["plan", "--json", "--gpu", gpu, "--driver", driver, "--python", "3.11"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    [why] = data["refusals"]
    assert why["kind"] == "driver"
    assert why["facts"]["architecture"] == arch
    assert why["facts"]["driver"] == driver
    assert why["facts"]["driver_range"] == driver_range
    assert gpu.split()[-1] in why["facts"]["gpu"]
    assert why["text"] == data["reasons"][0]
    assert f"cannot drive {why['facts']['gpu']} ({arch}, {why['facts']['sm']})" in why["text"]
    # The only alternative: the matrix's own driver inside the range, and it re-plans as printed.
    [alt] = data["alternatives"]
    assert alt["change"] == {"target": {"driver": offered}, "request": {}}
    assert f"--driver {offered}" in alt["text"]
    again = runner.invoke(main, ["plan", "--json", "--gpu", gpu, "--driver", offered, "--python", "3.11"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["ok"] is True
    # Human output: one line per reason.
    human = runner.invoke(main, ["plan", "--gpu", gpu, "--driver", driver, "--python", "3.11"])
    assert human.exit_code == 1
    assert sum(1 for line in human.output.splitlines() if "cannot drive" in line) == 1


def test_dockerfile_and_lock_ask_the_same_question(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pylock.toml"
    lock = runner.invoke(main, ["lock", "--gpu", "K80", "--driver", "580.95.05", "--no-deps", "-o", str(out)])
    docker = runner.invoke(main, ["dockerfile", "--gpu", "K80", "--driver", "580.95.05", "-o", str(tmp_path / "D")])
    for result in (lock, docker):
        assert result.exit_code == 1, result.output
        assert "driver 580.95.05 (R580) cannot drive Tesla K80 (Kepler, sm_37)" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_fleet_names_each_gpu_the_driver_cannot_drive() -> None:
    result = CliRunner().invoke(main, ["plan", "--json", "--gpu", "K80", "--gpu", "H100", "--driver", "450.80.02"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert [r["facts"]["architecture"] for r in data["refusals"]] == ["Hopper"]  # R450 drives the K80
    # No driver drives both (the H100 needs R520 or newer, the K80 R470 or older): nothing unsolved is offered.
    assert data["alternatives"] == []


def test_drivers_inside_the_range_still_plan() -> None:
    for gpu, driver in (("K80", "470.42.01"), ("H100", "580.95.05"), ("RTX 5090", "580.95.05"), ("A100", "450.80.02")):
        result = CliRunner().invoke(main, ["plan", "--json", "--gpu", gpu, "--driver", driver, "--python", "3.11"])
        assert result.exit_code == 0, (gpu, driver, result.output)


def _data() -> dict[str, dict[str, object]]:
    return {p.stem: tomllib.loads(p.read_text()) for p in (ROOT / "matrices").glob("*.toml")}


@pytest.mark.parametrize("bound", ["first_driver_branch", "last_driver_branch"])
def test_a_bound_without_its_source_is_an_error(bound: str) -> None:
    data = _data()
    from_dicts(data)  # the shipped matrix loads
    broken = copy.deepcopy(data)
    rows = broken["gpus"]["driver_support"]
    row = next(r for r in rows if bound in r)  # type: ignore[union-attr]
    del row[f"{bound}_source"]
    with pytest.raises(InvalidMatrix, match=f"{bound}_source"):
        from_dicts(broken)
    row[f"{bound}_source"] = "  "
    with pytest.raises(InvalidMatrix, match=f"{bound}_source"):
        from_dicts(broken)


def test_a_row_without_a_bound_or_with_a_capability_twice_is_an_error() -> None:
    data = copy.deepcopy(_data())
    rows = data["gpus"]["driver_support"]
    rows.append({"architecture": "X", "compute_capabilities": ["8.0"], "source": "s"})  # type: ignore[union-attr]
    with pytest.raises(InvalidMatrix, match="first_driver_branch"):
        from_dicts(data)
    rows[-1] = {"architecture": "X", "compute_capabilities": ["3.7"], "source": "s",  # type: ignore[index]
                "first_driver_branch": 400, "first_driver_branch_source": "s"}
    with pytest.raises(InvalidMatrix, match="bounded twice"):
        from_dicts(data)


def test_only_a_described_target_is_checked() -> None:
    """A detected machine's driver lists its GPUs: that beats a conservative bound (an R515 that drives an H100)."""
    from resolver import matrix
    from resolver.errors import NoCompatibleStack
    from resolver.models import ComputeCapability, Gpu, Target
    from resolver.request import Request
    from resolver.solve import solve
    from packaging.version import Version

    m = matrix.load()
    h100 = (Gpu("H100", ComputeCapability(9, 0)),)
    given = Target(gpus=h100, python="3.11", platform="linux_x86_64", driver=Version("515.65.01"), source="given")
    with pytest.raises(NoCompatibleStack, match="cannot drive H100"):
        solve(given, m, Request())
    detected = Target(gpus=h100, python="3.11", platform="linux_x86_64", driver=Version("515.65.01"))
    assert solve(detected, m, Request()).packages[0].name == "torch"


# --- a driver described over a detected machine (plan --driver X on a machine whose GPUs were read) ---------------

ENV_HERE = {"python": "3.11", "platform": "linux_x86_64", "glibc": "2.36", "torch": "2.5.1+cu118",
            "torch_cuda": "11.8", "torch_arch_list": None, "torch_cxx11_abi": False, "xformers": None,
            "flash_attn": None, "packages": {"torch": "2.5.1"}, "notes": []}


@pytest.fixture
def k80_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine, as detection reads it: NVML answers one Tesla K80 on its R470 driver, the interpreter probe a
    Python 3.11 with torch 2.5.1+cu118; every other probe is absent (tests/test_detect.py's ``bare``)."""
    import sys

    from packaging.version import Version

    from resolver import detect
    from resolver.models import ComputeCapability

    for name in ("_read_nvml", "_read_nvidia_smi_csv", "_read_nvidia_smi", "_read_sys_module_version",
                 "_read_proc_driver_version", "_read_nvcc_version", "_read_meminfo"):
        monkeypatch.setattr(detect, name, lambda: None)
    gpu = detect.DetectedGpu(0, "Tesla K80", ComputeCapability(3, 7), 11441)
    monkeypatch.setattr(detect, "_read_nvml",
                        lambda: detect._NvmlReading((gpu,), Version("470.256.02"), Version("11.4")))
    monkeypatch.setattr(detect, "_read_env_json", lambda exe: json.dumps({**ENV_HERE, "python_exe": sys.executable}))


K80_REFUSAL = "driver 580.95.05 (R580) cannot drive Tesla K80 (Kepler, sm_37): NVIDIA drives it with R470 or older"


@pytest.mark.usefixtures("k80_machine")
def test_a_driver_given_over_a_detected_machine_is_checked_by_every_command(tmp_path: Path) -> None:
    runner = CliRunner()
    # The machine's own reading is not checked (its driver lists its GPUs): it plans.
    read = runner.invoke(main, ["plan", "--json"])
    assert read.exit_code == 0, read.output
    assert json.loads(read.stdout)["target"]["driver"] == "470.256.02"
    # --driver over it is a description: refused as `plan --gpu K80 --driver 580.95.05` is.
    given = runner.invoke(main, ["plan", "--json", "--driver", "580.95.05"])
    assert given.exit_code == 1, given.output
    data = json.loads(given.stdout)
    [why] = data["refusals"]
    assert why["kind"] == "driver" and why["text"].startswith(K80_REFUSAL)
    [alt] = data["alternatives"]
    assert alt["change"] == {"target": {"driver": "470.42.01"}, "request": {}}
    again = runner.invoke(main, ["plan", "--json", "--driver", "470.42.01"])  # the alternative plans, as printed
    assert again.exit_code == 0, again.output
    out = tmp_path / "out"
    out.mkdir()
    for args in (["lock", "--no-deps", "-o", str(out / "pylock.toml")], ["dockerfile", "-o", str(out / "Dockerfile")],
                 ["install", "--dry-run"], ["check-upgrade", "torch==2.4.1"]):
        result = runner.invoke(main, [*args, "--driver", "580.95.05"])
        assert result.exit_code == 1, (args, result.output)
        assert K80_REFUSAL in result.output, (args, result.output)
    assert list(out.iterdir()) == []  # nothing written
    assert runner.invoke(main, ["check-upgrade", "torch==2.4.1"]).exit_code == 0  # the machine's own driver


@pytest.mark.usefixtures("k80_machine")
def test_check_upgrade_gpus_given_over_a_detected_driver_are_checked() -> None:
    """``check-upgrade --gpu H100`` keeps this machine's R470 driver, now the driver of a described H100 machine."""
    result = CliRunner().invoke(main, ["check-upgrade", "--json", "torch==2.4.1", "--gpu", "H100"])
    assert result.exit_code == 1, result.output
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["kind"] == "driver"
    assert "driver 470.256.02 (R470) cannot drive" in finding["reason"] and "R520 or newer" in finding["reason"]
