"""resolver.upgrade: every case of ``tests/upgrade_cases/*.toml`` (current set + requirements -> verdict, findings,
nearest safe set) against the shipped matrices, plus the ``check-upgrade`` command on a lock file. No network."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.errors import BadInput, NoCompatibleStack
from resolver.matrix import load
from resolver.models import ComputeCapability, Gpu, Target, parse_driver
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.upgrade import Installed, check_upgrade, proposed_versions

CASES = sorted((Path(__file__).parent / "upgrade_cases").glob("*.toml"))


def installed(case: dict[str, Any]) -> Installed:
    t = case["target"]
    gpus = tuple(Gpu(g["name"], ComputeCapability.parse(g["compute_capability"])) for g in t.get("gpus", []))
    target = Target(gpus=gpus, python=t["python"], platform=t.get("platform", "linux_x86_64"),
                    driver=parse_driver(t["driver"]) if t.get("driver") else None,
                    glibc=Version(t["glibc"]) if t.get("glibc") else None)
    return Installed(target, dict(case["current"]), dict(case.get("built_for_torch", {})),
                     frozenset(case.get("source_built", [])))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_upgrade_case(path: Path) -> None:
    case = tomllib.loads(path.read_text())
    matrix = load()
    current = installed(case)
    proposed = proposed_versions(current, case["requirements"], matrix)
    report = check_upgrade(current, proposed, matrix, original=case.get("original", []),
                           profiles=case.get("profiles", []), requirements=case["requirements"])
    expect = case["expect"]
    reasons = [f.reason for f in report.findings]
    assert report.verdict == expect["verdict"], reasons
    for text in expect["findings"]:
        assert any(text in r for r in reasons), f"{text!r} not in {reasons}"
    if expect["verdict"] == "safe":
        assert reasons == []
    nearest = expect.get("nearest")
    if nearest is False:
        assert report.nearest is None
    elif nearest is not None:
        assert report.nearest is not None
        assert {k: report.nearest[k] for k in nearest} == nearest
        again = check_upgrade(current, report.nearest, matrix)
        assert again.verdict == "safe", [f.reason for f in again.findings]
    rebuild = expect.get("nearest_rebuild")  # the nearest set that works once rebuilt, where no safe set is
    if rebuild is None:
        assert report.rebuild is None
    else:
        assert report.nearest is None and report.rebuild is not None
        assert {k: report.rebuild[k] for k in rebuild} == rebuild, report.rebuild
        again = check_upgrade(current, report.rebuild, matrix, original=case.get("original", []),
                              profiles=case.get("profiles", []), requirements=case["requirements"])
        assert again.verdict == "needs-rebuild", [f.reason for f in again.findings]
        assert {f.reason for f in again.findings} == {f.reason for f in report.rebuild_findings}


def test_there_are_upgrade_cases() -> None:
    assert {"audiocraft_torch22", "gtx1080_torch215", "flash_attn_torch26_to_27"} <= {p.stem for p in CASES}


def test_proposed_versions_take_the_newest_release_a_requirement_admits() -> None:
    current = installed(tomllib.loads(CASES[0].read_text()))
    assert proposed_versions(current, ["torch>=2.2,<2.3"], load())["torch"] == "2.2.2"
    assert proposed_versions(current, ["torch==2.4.0+cu118"], load())["torch"] == "2.4.0+cu118"
    assert proposed_versions(current, ["numpy==1.26.4"], load())["numpy"] == "1.26.4"
    with pytest.raises(NoCompatibleStack, match="torch==9.9"):  # refused as plan refuses it (exit 1), not bad input
        proposed_versions(current, ["torch==9.9"], load())
    with pytest.raises(BadInput, match="invalid requirement"):
        proposed_versions(current, ["torch=>2"], load())


def test_report_json_shape() -> None:
    case = tomllib.loads((Path(__file__).parent / "upgrade_cases" / "audiocraft_torch22.toml").read_text())
    current = installed(case)
    report = check_upgrade(current, proposed_versions(current, case["requirements"], load()), load(),
                           requirements=case["requirements"])
    data = report.to_dict()
    assert data["verdict"] == "unsafe" and data["nearest_safe"]["xformers"] == "0.0.24"
    assert data["findings"][0]["package"] == "xformers"


def _lock_file(tmp_path: Path, **made_for: Any) -> Path:
    """A lock of torch 2.1.0 + xformers 0.0.22.post7 for an RTX 3090 (hashes are placeholders); ``made_for``: what
    ``dumps`` records in ``[tool.gpustack]`` (request, profile, driver)."""
    from resolver.lock import LockedFile, dumps
    from resolver.models import PYPI_SIMPLE, PackageChoice, Plan, Stack, Step

    target = Target(gpus=(Gpu("NVIDIA GeForce RTX 3090", ComputeCapability(8, 6)),), python="3.10", platform="linux_x86_64")
    choices = (PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=PYPI_SIMPLE, cuda="12.1"),
               PackageChoice("xformers", "0.0.22.post7", "wheel", index_url=PYPI_SIMPLE))
    plan = Plan(Stack(target, choices), tuple(Step("install", c.name, c.requirement, index_url=PYPI_SIMPLE) for c in choices))
    files = {
        "torch": LockedFile("torch", "2.1.0", "torch-2.1.0-cp310-cp310-manylinux1_x86_64.whl",
                            "https://files.example/torch-2.1.0-cp310-cp310-manylinux1_x86_64.whl", "a" * 64),
        "xformers": LockedFile("xformers", "0.0.22.post7", "xformers-0.0.22.post7-cp310-cp310-manylinux2014_x86_64.whl",
                               "https://files.example/xformers-0.0.22.post7-cp310-cp310-manylinux2014_x86_64.whl", "b" * 64),
    }
    path = tmp_path / "pylock.toml"
    path.write_text(dumps(plan, files, matrix=load(), **made_for))
    return path


def test_cli_against_a_lock_exit_codes_and_json(tmp_path: Path) -> None:
    lock = _lock_file(tmp_path)
    runner = CliRunner()
    bad = runner.invoke(main, ["check-upgrade", "torch==2.2.*", "--lock", str(lock), "--json"])
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.output)
    assert data["verdict"] == "unsafe" and data["nearest_safe"]["torch"] == "2.2.0"
    ok = runner.invoke(main, ["check-upgrade", "torch==2.1.0", "--lock", str(lock)])
    assert ok.exit_code == 0 and ok.output.startswith("safe"), ok.output
    text = runner.invoke(main, ["check-upgrade", "torch==2.2.0", "--lock", str(lock)])
    assert "unsafe: torch 2.1.0 -> 2.2.0" in text.output and "nearest safe set: torch==2.2.0, xformers==0.0.24" in text.output
    missing = runner.invoke(main, ["check-upgrade", "torch==2.2.0", "--lock", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "cannot read it" in missing.output
    garbage = runner.invoke(main, ["check-upgrade", "torch==2.2.0", "--lock", str(lock), "--driver", "abc"])
    assert garbage.exit_code == 2


def test_cli_bad_requirement_is_bad_input_before_reading_the_environment() -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["check-upgrade", "torch=="])
    assert result.exit_code == 2
    assert result.stderr.startswith("gpustack: invalid requirement 'torch=='") and result.stderr.count("\n") == 1


def _rtx3090(driver: str | None = None) -> Target:
    return Target(gpus=(Gpu("NVIDIA GeForce RTX 3090", ComputeCapability(8, 6)),), python="3.10",
                  platform="linux_x86_64", driver=parse_driver(driver) if driver else None)


def test_a_move_that_raises_the_driver_floor_is_not_safe_without_a_driver() -> None:
    m = load()
    current = Installed(_rtx3090(), {"torch": "2.1.0+cu121"})
    report = check_upgrade(current, proposed_versions(current, ["torch==2.9.1+cu130"], m), m)
    assert report.verdict == "unsafe"
    assert any("needs driver >= 580" in f.reason and "525.60.13" in f.reason for f in report.findings), report.findings
    known = Installed(_rtx3090("580.65.06"), {"torch": "2.1.0+cu121"})
    assert check_upgrade(known, proposed_versions(known, ["torch==2.9.1+cu130"], m), m).verdict == "safe"


def test_torchs_own_triton_pin_moves_with_torch() -> None:
    m = load()
    current = Installed(_rtx3090("535.104.05"), {"torch": "2.1.0", "triton": "2.1.0"})
    assert proposed_versions(current, ["torch==2.2.0"], m)["triton"] == "2.2.0"
    assert proposed_versions(current, ["torch==2.2.0", "triton==2.1.0"], m)["triton"] == "2.1.0"  # asked for


def test_nearest_safe_set_keeps_the_original_request() -> None:
    # AudioCraft asked xformers<0.0.23: the nearest safe set may not be xformers 0.0.24.
    m = load()
    current = Installed(_rtx3090("535.104.05"), {"torch": "2.1.0", "xformers": "0.0.22.post7"})
    report = check_upgrade(current, proposed_versions(current, ["torch==2.2.*"], m), m,
                           original=["torch==2.1.0", "xformers<0.0.23"], requirements=["torch==2.2.*"])
    assert report.verdict == "unsafe"
    assert report.nearest is None or Version(report.nearest["xformers"]) < Version("0.0.23")


def test_nearest_safe_set_honours_profile_needs() -> None:
    m = load()
    current = Installed(_rtx3090("580.65.06"), {"torch": "2.9.1", "xformers": "0.0.33.post2"})
    report = check_upgrade(current, proposed_versions(current, ["torch==2.10.0"], m), m,
                           profiles=["fairseq"], requirements=["torch==2.10.0"])
    assert report.verdict != "safe"
    assert report.nearest is None or report.nearest["xformers"] != "0.0.34"


def test_check_upgrade_for_a_described_gpu_and_profile(tmp_path: Path) -> None:
    bad = CliRunner().invoke(main, ["check-upgrade", "--gpu", "8.6", "--profile", "nope", "torch==2.2.0"])
    assert bad.exit_code == 2 and "nope" in bad.output
    lock = _lock_file(tmp_path)
    run = CliRunner().invoke
    # --gpu and --driver describe another machine: on the lock's RTX 3090 torch 2.14.1 has a safe set with an
    # xformers wheel; on a GTX 1080 (sm_61) every xformers for it is a source build, so none is safe.
    own = json.loads(run(main, ["check-upgrade", "torch==2.14.1", "--lock", str(lock), "--driver", "580.95.05",
                                "--json"]).output)
    assert own["nearest_safe"] is not None and own["nearest_safe"]["torch"].startswith("2.14.1"), own
    old = run(main, ["check-upgrade", "torch==2.14.1", "--lock", str(lock), "--gpu", "6.1", "--driver", "580.95.05",
                     "--json"])
    data = json.loads(old.output)
    assert old.exit_code == 1 and data["findings"][0]["kind"] == "torch_pin" and data["nearest_safe"] is None, data
    # --profile fairseq joins the request: its nearest set keeps xformers.components (never 0.0.34).
    fairseq = run(main, ["check-upgrade", "torch==2.4.0", "--lock", str(lock), "--profile", "fairseq", "--json"])
    near = json.loads(fairseq.output)["nearest_safe"]
    assert fairseq.exit_code == 1 and near is not None and near["torch"] == "2.4.0"
    assert next(x for x in load().xformers if str(x.version) == near["xformers"]).has_components


def test_a_locks_request_bounds_the_nearest_set_and_its_driver_is_used(tmp_path: Path) -> None:
    # Made for AudioCraft (xformers<0.0.23): no torch 2.2 set keeps that bound, so no nearest set, never 0.0.24.
    lock = _lock_file(tmp_path, request=["torch==2.1.0", "xformers<0.0.23"])
    data = json.loads(CliRunner().invoke(main, ["check-upgrade", "torch==2.2.0", "--lock", str(lock), "--json"]).output)
    assert data["verdict"] == "unsafe" and data["nearest_safe"] is None, data
    # The lock recorded driver 470: torch 2.1.0's CUDA 12.1 build does not run there, its cu118 build does.
    old = _lock_file(tmp_path, driver="470.82.01")
    move = CliRunner().invoke(main, ["check-upgrade", "torch==2.1.0+cu121", "--lock", str(old), "--json"])
    assert json.loads(move.output)["findings"][0]["kind"] == "driver", move.output
    stay = CliRunner().invoke(main, ["check-upgrade", "torch==2.1.0", "--lock", str(old), "--json"])
    assert stay.exit_code == 0 and json.loads(stay.output)["checked"]["torch"] == "2.1.0+cu118", stay.output


def test_a_locks_profiles_and_glibc_are_part_of_the_check(tmp_path: Path) -> None:
    run = CliRunner().invoke
    fairseq = _lock_file(tmp_path, profile="fairseq")
    near = json.loads(run(main, ["check-upgrade", "torch==2.4.0", "--lock", str(fairseq), "--json"]).output)
    assert near["nearest_safe"] is not None
    assert next(x for x in load().xformers if str(x.version) == near["nearest_safe"]["xformers"]).has_components
    both = _lock_file(tmp_path, profile="fairseq,audiocraft")  # what `lock --profile a --profile b` records
    assert run(main, ["check-upgrade", "torch==2.1.0", "--lock", str(both)]).exit_code in (0, 1)
    old_host = _lock_file(tmp_path, glibc="2.17", driver="580.65.06")
    data = json.loads(run(main, ["check-upgrade", "torch==2.9.1", "--lock", str(old_host), "--json"]).output)
    assert "glibc" in [f["kind"] for f in data["findings"]], data


def test_the_solver_prefers_versions_near_the_current_set() -> None:
    import dataclasses

    from resolver.request import parse_request
    from resolver.solve import solve

    m = load()
    req = parse_request(["xformers"], m)
    newest = solve(_rtx3090("535.104.05"), m, req)
    near = solve(_rtx3090("535.104.05"), m, dataclasses.replace(
        req, near=(("torch", "2.1.0+cu121"), ("xformers", "0.0.22.post7"))))
    assert Version(newest.torch.version.split("+")[0]) > Version("2.5")
    assert near.torch.version == "2.1.0+cu121" and near.get("xformers").version == "0.0.22.post7"  # type: ignore[union-attr]
    newer = solve(_rtx3090("535.104.05"), m, dataclasses.replace(
        req, torch=req.torch & SpecifierSet(">2.1.0"), near=(("torch", "2.1.0+cu121"), ("xformers", "0.0.22.post7"))))
    assert newer.torch.version.startswith("2.1.1") or newer.torch.version.startswith("2.1.2"), newer.torch.version


def test_a_proposed_version_whose_checked_build_is_the_installed_one_is_no_move(
        capsys: pytest.CaptureFixture[str]) -> None:
    # check-upgrade 'torch>=2.13,<2.14' over torch 2.13.0+cpu printed "safe: torch 2.13.0+cpu -> 2.13.0" (s9 trial #11)
    from resolver.matrix import load
    from resolver.render import console, print_upgrade
    from resolver.upgrade import check_upgrade

    current = Installed(Target(gpus=(), python="3.11", platform="linux_x86_64"), {"torch": "2.13.0+cpu"})
    report = check_upgrade(current, {"torch": "2.13.0"}, load())
    assert report.checked is not None and report.checked["torch"] == "2.13.0+cpu"
    print_upgrade(console(), report, current.versions)
    assert capsys.readouterr().out.splitlines()[0] == "safe: no change"


def test_the_verdict_line_names_the_build_it_checked(capsys: pytest.CaptureFixture[str]) -> None:
    # "safe: torch 2.13.0+cpu -> 2.14.1" when it checked 2.14.1+cpu (plain 2.14.1 is the CUDA build on PyPI)
    from resolver.matrix import load
    from resolver.render import console, print_upgrade
    from resolver.upgrade import check_upgrade

    current = Installed(Target(gpus=(), python="3.11", platform="linux_x86_64"), {"torch": "2.13.0+cpu"})
    report = check_upgrade(current, {"torch": "2.14.1"}, load())
    assert report.checked is not None and report.checked["torch"] == "2.14.1+cpu"
    print_upgrade(console(), report, current.versions)
    assert capsys.readouterr().out.splitlines()[0] == "safe: torch 2.13.0+cpu -> 2.14.1 (checked as 2.14.1+cpu)"
