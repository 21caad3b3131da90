"""flash-attn's GitHub wheels need the glibc of the Ubuntu their CI ran on (platforms.toml [[os]], with its
sources): below it the wheel is refused and the source build planned; real `gpustack` runs through CliRunner."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from _plans import package_of, plan_json
from resolver.cli import main
from resolver.matrix import load

H100 = ["--gpu", "H100", "--driver", "580.95.05", "--python", "3.11"]


def _flash(data: dict[str, Any]) -> dict[str, Any]:
    return package_of(data, "flash-attn")


def test_the_floor_is_the_build_os_glibc_of_each_release() -> None:
    floors = {str(f.version): {w.glibc for w in f.wheels} for f in load().flash_attn}
    assert {str(g) for g in floors["2.8.3.post1"]} == {"2.35"}  # ubuntu-22.04 (GLIBC_2.32 reports)
    assert {str(g) for g in floors["2.7.4.post1"]} == {"2.31"}  # ubuntu-20.04
    assert {str(g) for g in floors["2.0.0.post1"]} == {"2.27"}  # ubuntu-18.04


def test_an_old_glibc_gets_the_source_build_not_a_wheel_it_cannot_load() -> None:
    """Trial: --glibc 2.17 (and 2.27, or none: 2.28 assumed) planned flash_attn-2.8.3.post1+cu12torch2.6...whl."""
    for glibc in (["--glibc", "2.17"], ["--glibc", "2.27"], []):
        code, data = plan_json(*H100, *glibc, "torch==2.6.0", "flash-attn")
        assert code == 0 and _flash(data)["method"] == "source", (glibc, _flash(data))
        assert not any((s.get("url") or "").startswith("https://github.com/") for s in data["steps"]), data["steps"]
        needs = [n for n in data["notes"] if "needs glibc 2.35" in n]
        assert needs and ("(assumed; pass --glibc)" in needs[0]) == (not glibc), data["notes"]


def test_at_the_floor_the_wheel_is_planned() -> None:
    code, new = plan_json(*H100, "--glibc", "2.35", "torch==2.6.0", "flash-attn")
    assert code == 0 and _flash(new)["method"] == "wheel", _flash(new)
    # glibc 2.31 (Ubuntu 20.04): the 2.8 wheels are refused; the ubuntu-20.04 builds (2.7.x) still load there.
    code, focal = plan_json(*H100, "--glibc", "2.31", "--prefer-wheels", "flash-attn")
    assert code == 0 and _flash(focal)["method"] == "wheel" and _flash(focal)["version"].startswith("2.7."), focal


def test_when_the_source_build_cannot_run_either_the_refusal_names_glibc_and_a_solved_toolkit() -> None:
    code, data = plan_json(*H100, "--glibc", "2.31", "--nvcc", "11.8", "torch==2.6.0+cu124",
                       "flash-attn==2.8.3.post1")
    assert code == 1, data
    assert any("needs glibc 2.35" in r and "nvcc 11.8 cannot build" in r for r in data["reasons"]), data["reasons"]
    for alt in data["alternatives"]:
        nvcc = alt["change"]["target"]["nvcc"]
        code, fixed = plan_json(*H100, "--glibc", "2.31", "--nvcc", nvcc, "torch==2.6.0+cu124", "flash-attn==2.8.3.post1")
        assert code == 0 and _flash(fixed)["method"] == "source", fixed
    assert data["alternatives"], data


def test_a_build_os_without_a_glibc_is_a_matrix_error(tmp_path: Path) -> None:
    folder = tmp_path / "matrices"
    shutil.copytree(Path(__file__).resolve().parents[1] / "matrices", folder)
    toml = folder / "platforms.toml"
    row = ('[[os]]\nname = "ubuntu-18.04"\nglibc = "2.27"\n'
           'source = "https://packages.ubuntu.com/source/bionic/glibc (2.27)"\n')
    assert row in toml.read_text()
    toml.write_text(toml.read_text().replace(row, ""))
    result = CliRunner().invoke(main, ["matrix", "validate", "--matrix-dir", str(folder)])
    assert result.exit_code == 2, result.output
    assert "flash_attn.toml" in result.output and "wheel_matrix_os" in result.output, result.output
    assert "'ubuntu-18.04' has no [[os]] row in platforms.toml" in result.output, result.output


def test_a_dockerfile_plans_for_the_glibc_of_its_image() -> None:
    # Without --glibc the plan assumed glibc 2.28, so the image (Ubuntu 22.04: glibc 2.35) built flash-attn from
    # source in a devel stage (20+ minutes) where the GitHub wheel runs. The image's glibc is the target's now.
    out = CliRunner().invoke(main, ["dockerfile", "--gpu", "A100", "--python", "3.11", "torch==2.6.0", "flash-attn"])
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "# glibc 2.35: the image's (nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04); pass --glibc X.Y to plan for " \
           "another" in text.splitlines()
    assert " AS build" not in text and "'flash-attn @ https://github.com/Dao-AILab/flash-attention/releases/" in text
    # --glibc given is the user's: an older host's glibc still builds from source
    given = CliRunner().invoke(main, ["dockerfile", "--gpu", "A100", "--python", "3.11", "--glibc", "2.28",
                                      "torch==2.6.0", "flash-attn"])
    assert given.exit_code == 0 and " AS build" in given.stdout and "# glibc 2.35" not in given.stdout, given.output
