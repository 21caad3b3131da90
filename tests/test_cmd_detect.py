"""``gpustack detect``: table and JSON output through click's runner, and one real run on this GPU-less machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.version import Version

from resolver import detect as detect_mod
from resolver.cli import main
from resolver.detect import DetectedGpu, Host, InstalledEnv
from resolver.models import ComputeCapability
from resolver.render import NO_GPU

GPUSTACK = Path(sys.executable).with_name("gpustack")

ENV = InstalledEnv(
    python_exe="/opt/venv/bin/python", python="3.12", platform="linux_x86_64", glibc="2.39",
    torch="2.11.0+cu130", torch_cuda="13.0", torch_arch_list=("sm_80", "sm_90"), torch_cxx11_abi=True,
    xformers="0.0.35", flash_attn=None, packages={"torch": "2.11.0+cu130", "xformers": "0.0.35"},
)


def _host(gpus: tuple[DetectedGpu, ...], driver: str | None) -> Host:
    return Host(gpus=gpus, driver=Version(driver) if driver else None,
                driver_cuda=Version("13.0") if driver else None, nvcc=Version("13.0"), cpu_count=16,
                memory_available_gib=120.5, env=ENV,
                sources={"gpus": "nvml", "driver": "nvml", "nvcc": "/usr/local/cuda/bin/nvcc"})


@pytest.fixture
def fake_detect(monkeypatch: pytest.MonkeyPatch) -> list[Host]:
    """Make ``detect`` answer the first host of the returned list (tests fill it in)."""
    hosts: list[Host] = []
    monkeypatch.setattr("resolver.cmd_detect.detect_host", lambda python_exe=None: hosts[0])
    return hosts


def test_table_with_gpus(fake_detect: list[Host]) -> None:
    fake_detect.append(_host((
        DetectedGpu(0, "NVIDIA H100 80GB HBM3", ComputeCapability(9, 0), 81559),
        DetectedGpu(1, "Tesla V100-SXM2-16GB", None, None),
    ), "470.82.01"))
    result = CliRunner().invoke(main, ["detect"])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("NVIDIA H100 80GB HBM3", "9.0", "81559 MiB", "Tesla V100", "unknown", "470.82.01", "13.0",
                 "3.12", "linux_x86_64", "2.11.0+cu130", "0.0.35", "not installed", "16", "120.5 GiB"):
        assert text in out, text
    assert "No NVIDIA GPU" not in out


def test_table_with_gpus_has_no_trailing_blanks(fake_detect: list[Host]) -> None:
    """CliRunner's output is no terminal, as a pipe: the GPU table and the facts end each line without padding."""
    fake_detect.append(_host((DetectedGpu(0, "NVIDIA H100 80GB HBM3", ComputeCapability(9, 0), 81559),), "580.159.04"))
    result = CliRunner().invoke(main, ["detect"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("Driver ") and "580.159.04" in line for line in lines), result.output
    assert [line for line in lines if line != line.rstrip()] == []


def test_table_without_gpu(fake_detect: list[Host]) -> None:
    fake_detect.append(_host((), None))
    result = CliRunner().invoke(main, ["detect"])
    assert result.exit_code == 0, result.output
    assert " ".join(NO_GPU.split()) in " ".join(result.output.split())


def test_json(fake_detect: list[Host]) -> None:
    fake_detect.append(_host((DetectedGpu(0, "NVIDIA H100 80GB HBM3", ComputeCapability(9, 0), 81559),), "580.159.04"))
    result = CliRunner().invoke(main, ["detect", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["gpus"] == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                             "memory_mib": 81559}]
    assert data["driver"] == "580.159.04" and data["driver_cuda"] == "13.0"
    assert data["env"]["torch_arch_list"] == ["sm_80", "sm_90"]


def test_cli_no_gpu_with_probes_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_read_nvml", "_read_nvidia_smi_csv", "_read_nvidia_smi", "_read_sys_module_version",
                 "_read_proc_driver_version"):
        monkeypatch.setattr(detect_mod, name, lambda: None)
    result = CliRunner().invoke(main, ["detect"])
    assert result.exit_code == 0, result.output
    assert "No NVIDIA GPU found" in result.output


def test_bad_python_exe_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(main, ["detect", "--python-exe", "/x/y"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "gpustack: --python-exe /x/y: not found; pass the path of a python interpreter"]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists(),
                    reason="this machine has an NVIDIA driver")
def test_real_run_json_on_this_machine() -> None:
    done = subprocess.run([str(GPUSTACK), "detect", "--json"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["gpus"] == []
    assert data["env"]["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert data["cpu_count"] >= 1


def test_real_run_piped_has_no_trailing_blanks() -> None:
    """``gpustack detect | less`` (or > file): stdout is a pipe, and no line of the human output ends in blanks."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run([str(GPUSTACK), "detect"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.split()[:1] in (["Driver"], ["nvcc"], ["torch"])] == [
        "Driver", "nvcc", "torch"], done.stdout
    assert [line for line in lines if line != line.rstrip()] == []


def test_real_run_bad_python_exe() -> None:
    done = subprocess.run([str(GPUSTACK), "detect", "--python-exe", "/x/y"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "gpustack: --python-exe /x/y: not found; pass the path of a python interpreter"]
    assert "Traceback" not in done.stderr
