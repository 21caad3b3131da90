"""Per-platform wheel facts (matrices/wheels.toml): a plan never names a wheel the target's Python, platform or
glibc cannot install, and says why when nothing fits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from resolver import matrix as matrix_mod
from resolver.cli import main
from resolver.errors import InvalidMatrix


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def plan(*args: str) -> dict[str, Any]:
    code, out, err = run("plan", "--json", *args)
    assert code in (0, 1), err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def _torch(data: dict[str, Any]) -> str:
    return str(next(p["version"] for p in data["packages"] if p["name"] == "torch"))


def test_python_tags_are_per_platform() -> None:
    # torch 1.13.x has cp311 wheels on x86_64 only; 2.5.x has cp313 on x86_64 only (PyPI's file list).
    assert plan("--cpu", "--python", "3.11", "--platform", "linux_x86_64", "torch==1.13.1")["ok"]
    for plat, py, spec in (("linux_aarch64", "3.11", "torch==1.13.1"), ("win_amd64", "3.11", "torch==1.13.1"),
                           ("linux_aarch64", "3.13", "torch==2.5.1"), ("win_amd64", "3.13", "torch==2.5.1")):
        data = plan("--cpu", "--python", py, "--platform", plat, spec)
        assert data["ok"] is False
        assert any(f"no wheels for Python {py} on {plat}" in r for r in data["reasons"]), data["reasons"]


def test_glibc_floor_refuses_manylinux_2_28_wheels() -> None:
    data = plan("--gpu", "H100", "--driver", "550.54.15", "--glibc", "2.17", "torch")
    assert data["ok"] and _torch(data).startswith("2.6.0")  # the newest x86_64 torch below manylinux_2_28
    data = plan("--gpu", "H100", "--glibc", "2.17", "torch>=2.7")
    assert data["ok"] is False
    assert any("manylinux_2_28_x86_64" in r and "glibc 2.28" in r for r in data["reasons"])
    assert any("torch==2.6.0" in a["text"] for a in data["alternatives"])
    # aarch64 moved to manylinux_2_28 already at 2.6
    data = plan("--cpu", "--platform", "linux_aarch64", "--glibc", "2.17", "torch")
    assert data["ok"] and _torch(data).startswith("2.5.1")


def test_described_target_states_its_assumed_glibc() -> None:
    data = plan("--gpu", "H100", "torch")
    assert data["target"]["glibc"] == "2.28"
    assert any(n.startswith("glibc not given: assumed 2.28") for n in data["notes"])
    data = plan("--gpu", "H100", "--glibc", "2.35", "torch")
    assert data["target"]["glibc"] == "2.35" and not any("glibc not given" in n for n in data["notes"])
    data = plan("--cpu", "--platform", "win_amd64", "torch")
    assert data["target"]["glibc"] is None and not any("glibc" in n for n in data["notes"])


@pytest.mark.parametrize("args", [("--glibc", "2.x"), ("--glibc", "glibc 2.28"), ("--glibc", "2.28\nx"),
                                  ("--glibc", "2.28", "--platform", "win_amd64")])
def test_bad_glibc_is_one_line_exit_2(args: tuple[str, ...]) -> None:
    code, out, err = run("plan", "--gpu", "H100", *args, "torch")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--glibc" in err


def test_xformers_wheel_needs_its_glibc() -> None:
    data = plan("--gpu", "H100", "--glibc", "2.17", "torch==2.6.0", "xformers")
    xf = next(p for p in data["packages"] if p["name"] == "xformers")
    assert xf["method"] == "source"  # its manylinux_2_28 wheel does not install on glibc 2.17
    assert any("manylinux_2_28_x86_64: they need glibc 2.28" in n for n in data["notes"])
    data = plan("--gpu", "H100", "--glibc", "2.28", "torch==2.6.0", "xformers")
    assert next(p for p in data["packages"] if p["name"] == "xformers")["method"] == "wheel"


def test_wheel_rows_reject_unknown_keys_and_bad_values() -> None:
    data = matrix_mod.read_files(matrix_mod.matrix_dir())
    row = dict(next(r for r in data["wheels"]["wheel"] if r["platform"] == "linux_x86_64"))
    for bad, field in (({"pythons_x": ["3.11"]}, "pythons_x"), ({"glibc": None}, "glibc"), ({"pythons": ["cp311"]}, "pythons"),
                       ({"platform": "macos_arm64"}, "platform")):
        broken = dict(row, **bad)
        if bad.get("glibc", 0) is None:
            del broken["glibc"]
        with pytest.raises(InvalidMatrix, match=rf"wheels.toml: wheel\[0\] .*: {field}"):
            matrix_mod.from_dicts({**data, "wheels": {"wheel": [broken]}})


def test_every_torch_release_has_wheel_facts_for_each_platform() -> None:
    m = matrix_mod.load()
    for rel in m.torch:
        for plat in ("linux_x86_64", "linux_aarch64", "win_amd64"):
            facts = m.wheel_facts("torch", rel.version, plat)
            assert facts is not None, f"torch {rel.version} {plat}"
            if plat == "linux_x86_64":
                assert set(facts.pythons) == set(rel.pythons), rel.version


@pytest.mark.parametrize("gpu", ["Jetson AGX Orin", "Jetson Orin Nano", "8.7", "NVIDIA Thor", "Jetson Xavier NX"])
def test_jetson_is_refused_with_the_jetpack_route(gpu: str) -> None:
    data = plan("--gpu", gpu, "--platform", "linux_aarch64", "torch")
    assert data["ok"] is False
    assert any("integrated (Jetson / Tegra) GPU" in r for r in data["reasons"])
    assert any("pypi.jetson-ai-lab.io" in a["text"] for a in data["alternatives"])


def test_discrete_gpus_of_other_capabilities_are_not_jetson() -> None:
    assert plan("--gpu", "8.6", "torch")["ok"] and plan("--gpu", "GH200", "--platform", "linux_aarch64", "torch")["ok"]


@pytest.mark.parametrize("name,cc", [("H20", "9.0"), ("L20", "8.9"), ("A800", "8.0"), ("H200 NVL", "9.0"), ("B100", "10.0"),
                                     ("RTX 3050", "8.6"), ("RTX 5050", "12.0"), ("RTX 4090 D", "8.9"),
                                     ("RTX PRO 4500 Blackwell", "12.0"), ("RTX PRO 6000 Blackwell", "12.0")])
def test_common_gpu_names_are_known(name: str, cc: str) -> None:
    from resolver.gpus import lookup_gpu

    assert str(lookup_gpu(name, matrix_mod.load()).compute_capability) == cc


def test_flash_attn_post2_has_recorded_wheels_and_no_false_claim() -> None:
    # 2.8.3.post2's row is unverified (docs/matrix.md): its wheel is taken over a verified release's source build only
    # with --prefer-wheels, and the plan says it relies on an unverified fact; else the verified 2.8.3.post1 is built
    data = plan("--gpu", "H100", "--driver", "580.65.06", "--glibc", "2.35", "torch==2.10.0", "flash-attn",
                "--prefer-wheels")
    assert data["ok"]
    fa = next(p for p in data["packages"] if p["name"] == "flash-attn")
    assert fa["method"] == "wheel" and "v2.8.3.post2" in fa["url"]
    assert not any("publishes no linux_x86_64 wheels" in n for n in data["notes"])
    assert any(n.startswith("relies on an unverified fact: flash-attn 2.8.3.post2") for n in data["notes"]), data
    built = plan("--gpu", "H100", "--driver", "580.65.06", "--glibc", "2.35", "torch==2.10.0", "flash-attn")
    fa = next(p for p in built["packages"] if p["name"] == "flash-attn")
    assert (fa["version"], fa["method"]) == ("2.8.3.post1", "source"), fa
