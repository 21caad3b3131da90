"""resolver.compat answers from the shipped matrices: one answer per question, whoever asks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from packaging.version import Version

from resolver import compat
from resolver.cli import main
from resolver.errors import BadInput
from resolver.matrix import load
from resolver.models import ComputeCapability

CC = ComputeCapability


def test_flash_cuda_archs_come_from_the_matrix() -> None:
    """The pair a flash-attn source build asks (companions._flash_choice): the archs, then their spelling."""
    m = load()

    def archs_value(caps: list[ComputeCapability]) -> str | None:
        archs = compat.flash_build_archs(caps, m)
        return None if archs is None else compat.flash_archs_value(archs)

    assert archs_value([CC(8, 6), CC(8, 9)]) == "80"
    assert archs_value([CC(9, 0), CC(12, 0)]) == "90;120"
    assert archs_value([CC(10, 3)]) == "100"
    assert archs_value([CC(7, 5)]) is None


def test_flash_capability_window_is_typed_per_release() -> None:
    m = load()
    old = next(f for f in m.flash_attn if str(f.version) == "2.7.2.post1")
    new = next(f for f in m.flash_attn if str(f.version) == "2.8.3")
    assert old.max_cc == CC(9, 0) and new.max_cc is None and new.min_cc == CC(8, 0)
    assert compat.flash_gpu_refusal(old, [CC(12, 0)]) is not None
    assert compat.flash_gpu_refusal(new, [CC(12, 0)]) is None
    assert compat.flash_gpu_refusal(new, [CC(7, 5)]) is not None


def test_driver_floor_is_exact_and_jit_needs_the_toolkit_driver() -> None:
    m = load()
    assert compat.driver_floor(Version("12.8"), m, "linux_x86_64") == Version("525.60.13")
    assert compat.driver_floor(Version("13.2"), m, "linux_x86_64") == Version("580")
    jit = compat.driver_floor(Version("12.8"), m, "linux_x86_64", jit=True)
    assert jit is not None and jit > Version("525.60.13")


def test_plan_prints_the_cuda_13_driver_floor_on_aarch64_and_assumes_an_unknown_driver_runs() -> None:
    """What `gpustack plan` prints (compat.driver_refusal, through the solver's explanation): the CUDA 13 floor
    holds on linux_aarch64 too; with no --driver nothing is refused for the driver."""
    def plan(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(main, ["plan", "--json", "--gpu", "GH200", "--platform", "linux_aarch64",
                                           "--python", "3.12", *args, "torch==2.15.0"])
        assert result.exit_code in (0, 1), result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    refused = plan("--driver", "570.86.15")
    assert refused["ok"] is False
    assert refused["reasons"] == ["driver 570.86.15 is older than 580, the minimum for CUDA 13.x builds; "
                                  "torch==2.15.0 for these GPUs needs CUDA >= 13.0"]
    assert "update the NVIDIA driver to >= 580 for CUDA 13.x builds" in [a["text"] for a in refused["alternatives"]]
    unknown = plan()
    assert unknown["ok"] is True
    assert [p["version"] for p in unknown["packages"] if p["name"] == "torch"] == ["2.15.0+cu132"]


def test_one_ram_per_job_table_sizes_max_jobs() -> None:
    m = load()
    assert compat.job_gib("flash-attn", m) == 10.0  # 5 GiB per nvcc thread x 2 threads
    assert compat.max_jobs("flash-attn", m, 16, 64.0) == 6
    assert compat.max_jobs("xformers", m, 16, 64.0) == 16
    assert compat.max_jobs("some-ext", m, 4, 1.0) == 1
    assert compat.max_jobs("some-ext", m, None, None) == 1


def test_torch_abi_per_platform() -> None:
    m = load()
    t25, t26 = m.torch_release("2.5.1"), m.torch_release("2.6.0")
    assert t25 is not None and t26 is not None
    assert compat.torch_cxx11_abi(t25, "linux_aarch64", m) is False
    assert compat.torch_cxx11_abi(t26, "linux_aarch64", m) is True
    assert compat.torch_cxx11_abi(t26, "linux_x86_64", m) is False
    assert compat.torch_cxx11_abi(t26, "win_amd64", m) is None


def test_pin_spelling() -> None:
    assert compat.torch_pin("2.9.1+cu128", "https://pypi.org/simple") == "torch==2.9.1"
    assert compat.torch_pin("2.9.1+cu130", "https://download.pytorch.org/whl/cu130") == "torch==2.9.1+cu130"


def test_windows_dockerfile_is_refused() -> None:
    from resolver.dockerfile import refuse_platform

    with pytest.raises(BadInput, match="win_amd64"):
        refuse_platform("win_amd64")
    refuse_platform("linux_aarch64")
