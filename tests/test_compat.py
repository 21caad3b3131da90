"""resolver.compat answers from the shipped matrices: one answer per question, whoever asks."""

from __future__ import annotations

import pytest
from packaging.version import Version

from resolver import compat
from resolver.errors import BadInput
from resolver.matrix import load
from resolver.models import ComputeCapability, parse_driver

CC = ComputeCapability


def test_flash_cuda_archs_come_from_the_matrix() -> None:
    m = load()
    assert compat.flash_cuda_archs([CC(8, 6), CC(8, 9)], m) == "80"
    assert compat.flash_cuda_archs([CC(9, 0), CC(12, 0)], m) == "90;120"
    assert compat.flash_cuda_archs([CC(10, 3)], m) == "100"
    assert compat.flash_cuda_archs([CC(7, 5)], m) is None


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
    assert compat.driver_problem(parse_driver("570.86.15"), Version("13.2"), m, "linux_aarch64") is not None
    assert compat.driver_problem(None, Version("13.2"), m, "linux_aarch64") is None


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
