"""A Windows target's driver is judged by NVIDIA's Windows column (cuda.toml ``min_driver_windows``: 452.39 for
CUDA 11.x, 528.33 for 12.x), never by the Linux numbers: the two differ for the same CUDA minimum."""

from __future__ import annotations

from pathlib import Path

from _plans import package_of, plan_json

GPU = ("--gpu", "RTX 4090", "--python", "3.11")


def test_a_windows_driver_between_the_linux_and_windows_12x_floors_gets_a_11x_build() -> None:
    # 527.41 clears Linux's 525.60.13 for CUDA 12.x but not Windows' 528.33.
    code, linux = plan_json(*GPU, "--driver", "527.41", "--platform", "linux_x86_64")
    assert code == 0 and package_of(linux, "torch")["cuda"].startswith("12.")
    code, windows = plan_json(*GPU, "--driver", "527.41", "--platform", "win_amd64")
    assert code == 0, windows
    assert package_of(windows, "torch")["cuda"].startswith("11.")
    code, windows = plan_json(*GPU, "--driver", "528.33", "--platform", "win_amd64")
    assert code == 0 and package_of(windows, "torch")["cuda"].startswith("12.")


def test_a_windows_driver_below_the_windows_11x_floor_is_refused_with_the_windows_number() -> None:
    code, linux = plan_json(*GPU, "--driver", "451.82", "--platform", "linux_x86_64")  # >= 450.80.02
    assert code == 0, linux
    code, windows = plan_json(*GPU, "--driver", "451.82", "--platform", "win_amd64")
    assert code == 1
    [why] = windows["refusals"]
    assert why["kind"] == "driver" and why["facts"]["driver_floor"] == "452.39"
    assert "450.80.02" not in why["text"]
    [alt] = windows["alternatives"]
    assert alt["change"]["target"] == {"driver": "452.39"}
    code, again = plan_json(*GPU, "--driver", "452.39", "--platform", "win_amd64")  # the alternative, as printed
    assert code == 0, again


def test_matrix_show_cuda_prints_both_of_nvidias_columns_as_nvidia_writes_them() -> None:
    import json

    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["matrix", "show", "cuda", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["CUDA"]: (r["toolkit driver (Linux)"], r["toolkit driver (Windows)"]) for r in json.loads(result.stdout)}
    assert rows["12.0"] == ("525.60.13", "527.41")
    assert rows["11.0"] == ("450.51.05", "451.48")  # not 450.51.5: NVIDIA's zero padding kept
    assert rows["13.0"] == ("580.65.06", "N/A")  # NVIDIA lists no Windows driver from 13.0 on


# --- a Windows driver against a GPU's driver branches (gpus.toml [[driver_support]]) --------------------------------
# A Windows driver's major is not its branch (474.44 is R470, 520.06 R520, 572.83 R570): its branch is at least the
# one of the newest CUDA toolkit whose Windows GA driver it reaches (cuda.toml's pairs) and at most its major.


def _driver_refusal(data: dict[str, object]) -> dict[str, object]:
    [why] = data["refusals"]  # type: ignore[misc]
    assert why["kind"] == "driver", why
    return why  # type: ignore[no-any-return]


def test_a_windows_driver_newer_than_keplers_last_branch_is_refused_and_the_alternative_plans() -> None:
    k80 = ("--gpu", "Tesla K80", "--python", "3.10", "--platform", "win_amd64", "torch")
    for driver, lowest in (("552.22", "550"), ("496.13", "495")):
        code, data = plan_json(*k80, "--driver", driver)
        assert code == 1, data
        why = _driver_refusal(data)
        assert why["text"] == (f"driver {driver} (Windows, R{lowest} or newer) cannot drive Tesla K80 (Kepler, sm_37): "
                               "NVIDIA drives it with R470 or older drivers"), why["text"]
        assert why["facts"]["branch"] == lowest and why["facts"]["suggested"] == "471.11"
        [alt] = data["alternatives"]
        assert alt["change"]["target"] == {"driver": "471.11"}  # CUDA 11.4's Windows driver, R470
    for driver in ("471.11", "474.44"):  # R470 Windows drivers: a major above 470 is still R470
        code, data = plan_json(*k80, "--driver", driver)
        assert code == 0, (driver, data)


def test_a_windows_driver_older_than_a_gpus_first_branch_is_refused_by_its_major() -> None:
    code, data = plan_json("--gpu", "H100", "--python", "3.11", "--platform", "win_amd64", "--driver", "517.40", "torch")
    assert code == 1 and _driver_refusal(data)["facts"]["driver_range"] == "R520 or newer", data
    [alt] = data["alternatives"]
    assert alt["change"]["target"] == {"driver": "520.06"}  # CUDA 11.8's Windows GA driver (R520)
    code, data = plan_json("--gpu", "H100", "--python", "3.11", "--platform", "win_amd64", "--driver", "520.06", "torch")
    assert code == 0, data
    code, data = plan_json("--gpu", "RTX 5090", "--python", "3.11", "--platform", "win_amd64", "--driver", "566.36",
                           "torch")  # R565: Blackwell needs R570
    assert code == 1 and _driver_refusal(data)["facts"]["driver_range"] == "R570 or newer", data
    code, data = plan_json("--gpu", "RTX 5090", "--python", "3.11", "--platform", "win_amd64", "--driver", "572.83",
                           "torch")  # R570, though its major is 572
    assert code == 0, data


def test_a_windows_file_version_is_refused_naming_the_driver_version_to_pass() -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["plan", "--gpu", "RTX 4090", "--python", "3.11", "--platform", "win_amd64",
                                       "--driver", "31.0.15.5222", "torch"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "gpustack: --driver '31.0.15.5222': a Windows driver file version (as Device Manager shows it), not the driver "
        "version; NVIDIA's is 552.22 (what nvidia-smi prints): pass --driver 552.22"], result.output
    code, data = plan_json("--gpu", "RTX 4090", "--python", "3.11", "--platform", "win_amd64", "--driver", "552.22",
                           "torch")  # the next step, as printed
    assert code == 0, data


def test_the_file_version_rule_is_checked_against_the_matrix_examples(tmp_path: Path) -> None:
    import shutil

    from click.testing import CliRunner

    from resolver.cli import main
    from resolver.matrix import matrix_dir
    from resolver.models import windows_file_driver

    assert windows_file_driver("31.0.15.5222") == "552.22" and windows_file_driver("30.0.14.7111") == "471.11"
    assert windows_file_driver("535.104.05") is None and windows_file_driver("31.0.15.522") is None
    folder = tmp_path / "m"
    shutil.copytree(matrix_dir(), folder, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    toml = folder / "platforms.toml"
    toml.write_text(toml.read_text().replace('"31.0.15.5222" = "552.22"', '"31.0.15.5222" = "522.22"'))
    result = CliRunner().invoke(main, ["matrix", "validate", "--matrix-dir", str(folder)])
    assert result.exit_code == 2 and "platforms.toml: [windows_driver]: file_version_examples: 31.0.15.5222 reads as " \
                                     "552.22 by gpustack's rule, not '522.22'" in result.output, result.output
