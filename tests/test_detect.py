"""resolver.detect: every parser on captured output, the probe order with the ``_read_*`` probes swapped out, and a
real run of the child probe. No GPU, no network."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from resolver import detect
from resolver.detect import (
    DetectedGpu,
    InstalledEnv,
    parse_meminfo_available_gib,
    parse_nvcc_version,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_csv_driver,
    parse_nvidia_smi_cuda_version,
    parse_nvml_cuda_version,
    parse_proc_driver_version,
    parse_sys_module_version,
)
from resolver.errors import BadInput, DetectionError
from resolver.models import ComputeCapability
from resolver.report import Reporter

PROBES = Path(__file__).parent / "data" / "probes"
VENV_PYTHON = Path(sys.executable)


def sample(name: str) -> str:
    """Return a captured sample without its leading ``#`` provenance lines."""
    lines = (PROBES / name).read_text().splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


# --- parsers ------------------------------------------------------------------------------------------------------


def test_nvidia_smi_csv_h100() -> None:
    text = sample("nvidia_smi_csv_h100.txt")
    assert parse_nvidia_smi_csv(text) == [DetectedGpu(0, "NVIDIA H100 80GB HBM3", ComputeCapability(9, 0), 81559)]
    assert parse_nvidia_smi_csv_driver(text) == Version("580.159.04")


def test_nvidia_smi_csv_mixed_fleet() -> None:
    gpus = parse_nvidia_smi_csv(sample("nvidia_smi_csv_mixed.txt"))
    assert [(g.index, g.name, str(g.compute_capability), g.memory_mib) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 4090", "8.9", 24564),
        (1, "NVIDIA A100-SXM4-80GB", "8.0", 81920),
    ]
    assert parse_nvidia_smi_csv_driver(sample("nvidia_smi_csv_mixed.txt")) == Version("550.54.14")


def test_nvidia_smi_csv_na_compute_cap_is_none() -> None:
    gpus = parse_nvidia_smi_csv(sample("nvidia_smi_csv_na_cc.txt"))
    assert [g.compute_capability for g in gpus] == [None, None]
    assert [g.memory_mib for g in gpus] == [16160, None]
    assert gpus[1].name == "Tesla T4"


@pytest.mark.parametrize("text", [
    "",
    "\n\n",
    "No devices were found\n",
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
    "garbage, 9.0\n",
])
def test_nvidia_smi_csv_malformed_gives_no_gpu(text: str) -> None:
    assert parse_nvidia_smi_csv(text) == []
    assert parse_nvidia_smi_csv_driver(text) is None


def test_nvidia_smi_csv_skips_header_and_bad_fields() -> None:
    text = ("name, compute_cap, driver_version, memory.total [MiB]\n"
            "NVIDIA L4, x.y, 550.54.14, lots\n")
    [gpu] = parse_nvidia_smi_csv(text)
    assert (gpu.name, gpu.compute_capability, gpu.memory_mib) == ("NVIDIA L4", None, None)


def test_proc_driver_version_open_and_proprietary() -> None:
    assert parse_proc_driver_version(sample("proc_driver_version_open_h100.txt")) == Version("580.159.04")
    assert parse_proc_driver_version(sample("proc_driver_version_proprietary.txt")) == Version("535.104.05")


@pytest.mark.parametrize("text", ["", "GCC version:  gcc version 15.3.0 (GCC)\n", "NVRM version: NVIDIA UNIX\n"])
def test_proc_driver_version_malformed(text: str) -> None:
    assert parse_proc_driver_version(text) is None


def test_sys_module_version() -> None:
    assert parse_sys_module_version(sample("sys_module_nvidia_version_h100.txt")) == Version("580.159.04")
    assert parse_sys_module_version("") is None
    assert parse_sys_module_version("not-a-version\n") is None


def test_nvidia_smi_cuda_version() -> None:
    assert parse_nvidia_smi_cuda_version(sample("nvidia_smi_header_h100.txt")) == Version("13.0")
    assert parse_nvidia_smi_cuda_version("    CUDA Version                          : 12.2\n") == Version("12.2")
    assert parse_nvidia_smi_cuda_version("CUDA Version: N/A") is None
    assert parse_nvidia_smi_cuda_version("") is None


def test_nvml_cuda_version() -> None:
    assert parse_nvml_cuda_version(13000) == Version("13.0")
    assert parse_nvml_cuda_version(12020) == Version("12.2")
    assert parse_nvml_cuda_version(0) is None


def test_nvcc_version() -> None:
    assert parse_nvcc_version(sample("nvcc_version_13_0.txt")) == Version("13.0")
    assert parse_nvcc_version(sample("nvcc_version_h100_tail.txt")) == Version("13.0")
    assert parse_nvcc_version("nvcc: command not found") is None


def test_meminfo_available() -> None:
    assert parse_meminfo_available_gib(sample("meminfo_dev.txt")) == pytest.approx(24302340 / 1024**2, abs=0.01)
    assert parse_meminfo_available_gib("MemTotal: 1000 kB\nMemFree: 10 kB\n") is None
    assert parse_meminfo_available_gib("") is None


@pytest.mark.parametrize("answer", ["Traceback (most recent call last):\n", "", '{"python": "3.12"}\n'])
def test_env_probe_answer_unreadable(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    """The interpreter probe answered no JSON line (a traceback, nothing) or one without its fields: bad input
    naming --python-exe, or a DetectionError for gpustack's own interpreter; never a traceback."""
    monkeypatch.setattr(detect, "_read_env_json", lambda exe: answer)
    with pytest.raises(BadInput, match=r"^--python-exe /opt/x/python: not a python interpreter .*pass the path"):
        detect.detect_env("/opt/x/python")
    with pytest.raises(DetectionError, match="unreadable output"):
        detect.detect_env()


# --- probe order, with the _read_* probes swapped out ------------------------------------------------------------

FAKE_ENV: dict[str, Any] = {"python_exe": "/usr/bin/python3", "python": "3.12", "platform": "linux_x86_64", "glibc": "2.39",
            "torch": None, "torch_cuda": None, "torch_arch_list": None, "torch_cxx11_abi": None,
            "xformers": None, "flash_attn": None, "packages": {}, "notes": []}


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A machine with nothing: every probe answers "absent"; the interpreter probe answers ``FAKE_ENV``."""
    for name in ("_read_nvml", "_read_nvidia_smi_csv", "_read_nvidia_smi", "_read_sys_module_version",
                 "_read_proc_driver_version", "_read_nvcc_version", "_read_meminfo"):
        monkeypatch.setattr(detect, name, lambda: None)
    monkeypatch.setattr(detect, "_read_env_json", lambda exe: json.dumps(FAKE_ENV))
    return monkeypatch


H100 = DetectedGpu(0, "NVIDIA H100 80GB HBM3", ComputeCapability(9, 0), 81559)


def test_no_gpu_is_not_an_error(bare: pytest.MonkeyPatch) -> None:
    host = detect.detect()
    assert host.gpus == () and host.driver is None and host.driver_cuda is None and host.nvcc is None
    assert host.sources["gpus"].startswith("not found")
    assert host.env.python == "3.12"
    assert json.loads(json.dumps(host.to_dict()))["gpus"] == []


def test_nvml_wins(bare: pytest.MonkeyPatch) -> None:
    bare.setattr(detect, "_read_nvml",
                 lambda: detect._NvmlReading((H100,), Version("580.159.04"), Version("13.0")))
    called: list[str] = []

    def spy(name: str) -> Callable[[], None]:
        return lambda: called.append(name)

    bare.setattr(detect, "_read_nvidia_smi_csv", spy("smi"))
    bare.setattr(detect, "_read_proc_driver_version", spy("proc"))
    host = detect.detect()
    assert host.gpus == (H100,)
    assert (host.driver, host.driver_cuda) == (Version("580.159.04"), Version("13.0"))
    assert host.sources["gpus"] == host.sources["driver"] == host.sources["driver_cuda"] == "nvml"
    assert called == []


def test_nvidia_smi_when_no_nvml(bare: pytest.MonkeyPatch) -> None:
    bare.setattr(detect, "_read_nvidia_smi_csv", lambda: sample("nvidia_smi_csv_mixed.txt"))
    bare.setattr(detect, "_read_nvidia_smi", lambda: sample("nvidia_smi_header_h100.txt"))
    host = detect.detect()
    assert [g.name for g in host.gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA A100-SXM4-80GB"]
    assert host.driver == Version("550.54.14") and host.sources["driver"] == "nvidia-smi"
    assert host.driver_cuda == Version("13.0") and host.sources["driver_cuda"] == "nvidia-smi"


def test_sys_module_before_proc(bare: pytest.MonkeyPatch) -> None:
    bare.setattr(detect, "_read_sys_module_version", lambda: "575.51.03\n")
    bare.setattr(detect, "_read_proc_driver_version", lambda: sample("proc_driver_version_proprietary.txt"))
    host = detect.detect()
    assert host.gpus == ()
    assert host.driver == Version("575.51.03") and host.sources["driver"] == "/sys/module/nvidia/version"


def test_proc_last(bare: pytest.MonkeyPatch) -> None:
    bare.setattr(detect, "_read_sys_module_version", lambda: "garbage")
    bare.setattr(detect, "_read_proc_driver_version", lambda: sample("proc_driver_version_proprietary.txt"))
    host = detect.detect()
    assert host.driver == Version("535.104.05") and host.sources["driver"] == "/proc/driver/nvidia/version"


def test_driver_override_wins(bare: pytest.MonkeyPatch) -> None:
    bare.setattr(detect, "_read_nvml",
                 lambda: detect._NvmlReading((H100,), Version("580.159.04"), Version("13.0")))
    host = detect.detect(driver_override="535.104.05")
    assert host.driver == Version("535.104.05") and host.sources["driver"] == "--driver"
    assert host.driver_cuda is None  # NVML's CUDA belongs to the real driver, not the given one
    assert host.gpus == (H100,)
    with pytest.raises(BadInput):
        detect.detect(driver_override="five-three-five")


def test_nvcc_meminfo_and_reporter(bare: pytest.MonkeyPatch) -> None:
    bare.setattr(detect, "_read_nvcc_version", lambda: (sample("nvcc_version_13_0.txt"), "/opt/cuda/bin/nvcc"))
    bare.setattr(detect, "_read_meminfo", lambda: sample("meminfo_dev.txt"))

    class Recorder(Reporter):
        def __init__(self) -> None:
            self.seen: dict[str, str] = {}

        def detected(self, what: str, value: str, source: str) -> None:
            self.seen[what] = source

    rec = Recorder()
    host = detect.detect(reporter=rec)
    assert host.nvcc == Version("13.0") and host.sources["nvcc"] == "/opt/cuda/bin/nvcc"
    assert host.memory_available_gib == pytest.approx(23.18, abs=0.01)
    assert rec.seen == host.sources


def test_unreadable_driver_file_is_a_detection_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect._read_text(str(tmp_path / "missing")) is None
    with pytest.raises(DetectionError, match="--driver"):
        detect._read_text(str(tmp_path))  # a directory: exists, cannot be read


# --- the interpreter probe, for real ------------------------------------------------------------------------------


def test_detect_env_on_this_interpreter() -> None:
    env = detect.detect_env(str(VENV_PYTHON))
    assert isinstance(env, InstalledEnv)
    assert env.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert env.platform in ("linux_x86_64", "linux_aarch64", "win_amd64")
    assert env.packages["gpustack-resolver"] and env.packages["nvidia-ml-py"]
    assert env.torch is None and env.torch_cuda is None and env.torch_arch_list is None


def test_detect_never_imports_torch_in_this_process() -> None:
    code = "import sys; from resolver.detect import detect; detect(); assert 'torch' not in sys.modules"
    subprocess.run([str(VENV_PYTHON), "-c", code], check=True, timeout=120)


def _fake_torch(root: Path, body: str, version: str = "2.11.0+cu130") -> None:
    (root / "torch").mkdir()
    (root / "torch" / "__init__.py").write_text(body)
    info = root / f"torch-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")


def test_probe_reads_torch_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch(tmp_path, (
        "print('noise from import')\n"
        "import types\n"
        "version = types.SimpleNamespace(cuda='13.0')\n"
        "_C = types.SimpleNamespace(_GLIBCXX_USE_CXX11_ABI=True,\n"
        "                           _cuda_getArchFlags=lambda: 'sm_75 sm_80 sm_86 sm_90 sm_100 sm_120')\n"
    ))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    env = detect.detect_env(str(VENV_PYTHON))
    assert env.torch == "2.11.0+cu130" and env.torch_cuda == "13.0" and env.torch_cxx11_abi is True
    assert env.torch_arch_list == ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


def test_probe_survives_a_broken_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch(tmp_path, "raise OSError('libcudart.so.13: cannot open shared object file')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    env = detect.detect_env(str(VENV_PYTHON))
    assert env.torch == "2.11.0+cu130" and env.torch_cuda is None and env.torch_arch_list is None
    assert any("libcudart" in note for note in env.notes)


@pytest.mark.parametrize("exe", ["/x/y", "/etc/hostname", "/bin/true"])
def test_bad_python_exe(exe: str) -> None:
    if not Path(exe).exists() and exe != "/x/y":
        pytest.skip(f"{exe} absent here")
    with pytest.raises(BadInput, match=f"--python-exe {exe}: .*pass the path of a python interpreter"):
        detect.detect_env(exe)


def test_host_to_dict_is_json(bare: pytest.MonkeyPatch) -> None:
    bare.setattr(detect, "_read_nvidia_smi_csv", lambda: sample("nvidia_smi_csv_na_cc.txt"))
    data: dict[str, Any] = json.loads(json.dumps(detect.detect().to_dict()))
    assert data["gpus"][0] == {"index": 0, "name": "Tesla V100-SXM2-16GB", "compute_capability": None,
                               "memory_mib": 16160}
    assert data["driver"] == "470.82.01" and data["env"]["python"] == "3.12"


def test_format_driver_keeps_nvidia_padding() -> None:
    assert detect.format_driver(Version("470.82.01")) == "470.82.01"
    assert detect.format_driver(Version("580.159.04")) == "580.159.04"
    assert detect.format_driver(Version("580")) == "580"


def test_probe_keeps_the_local_tag_metadata_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen on the H100 host: a torch whose metadata says 2.11.0 while torch.__version__ says 2.11.0+cu130.
    _fake_torch(tmp_path, "__version__ = '2.11.0+cu130'\n", version="2.11.0")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    env = detect.detect_env(str(VENV_PYTHON))
    assert env.torch == "2.11.0+cu130" and env.packages["torch"] == "2.11.0"
    assert env.torch_cuda is None and env.torch_arch_list is None and env.torch_cxx11_abi is None


def test_bare_interpreter_name_is_looked_up_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(VENV_PYTHON.parent))
    env = detect.detect_env(VENV_PYTHON.name)
    assert Path(env.python_exe).parent == VENV_PYTHON.parent


def test_detect_env_starts_one_child_for_an_interpreter_that_is_no_venv(tmp_path: Path) -> None:
    # A wrapper interpreter (neither a venv nor gpustack's own) that counts its starts: the probe that reads the
    # environment also reports sys.prefix, so looking for an unfinished install there starts no second child.
    starts = tmp_path / "starts"
    wrapper = tmp_path / "bin" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho start >> "{starts}"\nexec "{VENV_PYTHON}" "$@"\n')
    wrapper.chmod(0o755)
    env = detect.detect_env(str(wrapper))
    assert env.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert starts.read_text().splitlines() == ["start"]


def test_detect_env_notices_an_unfinished_install_where_the_probe_says(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # The journal is looked for in the sys.prefix the probe reported: a wrapper outside the venv runs its python.
    venv = tmp_path / "venv"
    subprocess.run([str(VENV_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    from resolver import journal

    state = journal.state_dir(str(venv))
    state.mkdir(parents=True)
    (state / "transaction.json").write_text(json.dumps({"state": "installing", "pid": 1, "command": "install x"}))
    wrapper = tmp_path / "bin" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{venv / "bin" / "python"}" "$@"\n')
    wrapper.chmod(0o755)
    journal._noticed.clear()
    detect.detect_env(str(wrapper))
    assert "recover --python-exe" in capsys.readouterr().err
