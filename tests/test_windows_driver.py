"""A Windows target's driver is judged by NVIDIA's Windows column (cuda.toml ``min_driver_windows``: 452.39 for
CUDA 11.x, 528.33 for 12.x), never by the Linux numbers: the two differ for the same CUDA minimum."""

from __future__ import annotations

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
