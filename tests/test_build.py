"""Source builds: prerequisite checks, the build environment, ninja progress, and a real (non-CUDA) build through
the cache into a venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

import fakewheels  # noqa: E402
from resolver import build  # noqa: E402
from resolver.target import parse_torch_version_py  # noqa: E402
from resolver.errors import CommandFailed  # noqa: E402
from resolver.models import Step  # noqa: E402

TARGET = build.TargetInfo("cp311", "linux_x86_64", "/venv", "2.8.0+cu128", "12.8")
RES = build.Resources(Version("12.8"), "/usr/bin/ninja", 100.0, 64.0, 16)
FLASH = Step("build", "flash-attn", "flash-attn==2.8.3", env={"FLASH_ATTN_CUDA_ARCHS": "90", "FORCE_CUDA": "1"})


def test_parse_torch_version_py() -> None:
    text = "from typing import Optional\n__version__ = '2.14.1+cu130'\ncuda: Optional[str] = '13.0'\n"
    assert parse_torch_version_py(text) == ("2.14.1+cu130", "13.0")
    assert parse_torch_version_py("__version__ = '2.1.0+cpu'\ncuda = None\n") == ("2.1.0+cpu", None)


def test_parse_nvcc_and_ninja() -> None:
    assert build.parse_nvcc_release("Cuda compilation tools, release 13.0, V13.0.88") == Version("13.0")
    assert build.parse_ninja_progress("[3/12] /usr/local/cuda/bin/nvcc -c x.cu") == (3, 12)
    assert build.parse_ninja_progress("  [12/12] c++ -shared") == (12, 12)
    assert build.parse_ninja_progress("running build_ext") is None


def test_prerequisites_ok() -> None:
    assert build.check_prerequisites(FLASH, TARGET, RES) == []


def test_missing_wheel_is_a_prerequisite() -> None:
    target = build.TargetInfo("cp311", "l", "/v", "2.8.0+cu128", "12.8", ("wheel",))
    assert any("pip install wheel" in r for r in build.check_prerequisites(FLASH, target, RES))


@pytest.mark.parametrize("res,target,needle", [
    (build.Resources(None, "/n", 100, 64, 16), TARGET, "nvcc not found"),
    (build.Resources(Version("12.4"), "/n", 100, 64, 16), build.TargetInfo("cp311", "l", "/v", "2.9.0", "13.0"),
     "nvcc is CUDA 12.4 but torch 2.9.0 was built with CUDA 13.0"),
    (build.Resources(Version("12.8"), None, 100, 64, 16), TARGET, "ninja not found"),
    (build.Resources(Version("12.8"), "/n", 1.0, 64, 16), TARGET, "free disk"),
    (build.Resources(Version("12.8"), "/n", 100, 6.0, 16), TARGET, "RAM available"),
    (RES, build.TargetInfo("cp311", "l", "/v", None, None), "torch is not installed"),
    (RES, build.TargetInfo("cp311", "l", "/v", "2.8.0+cpu", None), "CPU build"),
])
def test_prerequisite_refusals(res: build.Resources, target: build.TargetInfo, needle: str) -> None:
    reasons = build.check_prerequisites(FLASH, target, res)
    assert any(needle in r for r in reasons), reasons


def test_max_jobs_from_ram_per_nvcc_thread() -> None:
    # flash-attn: 5 GiB per nvcc thread, 2 threads -> 10 GiB a job; 64 GiB -> 6 jobs although 16 cores.
    env = build.build_env(FLASH, RES, "/venv/bin/python")
    assert env["MAX_JOBS"] == "6" and env["NVCC_THREADS"] == "2"
    assert env["FLASH_ATTN_CUDA_ARCHS"] == "90" and env["PATH"].startswith("/venv/bin")
    capped = Step("build", "flash-attn", "flash-attn==2.8.3", env={"MAX_JOBS": "64", "NVCC_THREADS": "4"})
    assert build.build_env(capped, RES, "/p/bin/python")["MAX_JOBS"] == "3"
    small = build.Resources(Version("12.8"), "/n", 100, None, 2)
    assert build.build_env(Step("build", "x", "x"), small, "/p/bin/python")["MAX_JOBS"] == "2"


def test_cache_key_of_local_tree_ignores_build_outputs(tmp_path: Path) -> None:
    src = fakewheels.local_project(tmp_path, "hello-ext")
    step = Step("build", "hello-ext", str(src), env={"TORCH_CUDA_ARCH_LIST": "9.0", "MAX_JOBS": "3"})
    k1 = build.cache_key(step, TARGET, True)
    (src / "build").mkdir()
    (src / "build" / "x.o").write_text("object")
    assert build.cache_key(step, TARGET, True) == k1
    (src / "hello_ext" / "__init__.py").write_text("changed = 1\n")
    assert build.cache_key(step, TARGET, True) != k1
    assert k1.arch_list == "9.0" and dict(k1.env)["TORCH_CUDA_ARCH_LIST"] == "9.0" and "MAX_JOBS" not in dict(k1.env)


@pytest.fixture
def fake_torch_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    python = tmp_path / "v" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "wheel"], check=True)  # this machine's pip config
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    wheel = fakewheels.fake_torch(tmp_path / "w", "2.1.0+cu121")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", str(wheel)], check=True)
    return python


def test_build_then_cache_hit(fake_torch_venv: Path, tmp_path: Path) -> None:
    src = fakewheels.local_project(tmp_path, "hello-ext")
    step = Step("build", "hello-ext", str(src), no_deps=True)
    pip = [str(fake_torch_venv), "-m", "pip"]
    first = build.build(step, str(fake_torch_venv), pip, progress=False)
    assert not first.cache_hit and first.wheel.name.startswith("hello_ext-0.1.0") and first.log is not None
    assert not (src / "build").exists()  # built from a copy: the source tree stays clean
    second = build.build(step, str(fake_torch_venv), pip, progress=False)
    assert second.cache_hit and second.wheel == first.wheel and second.log is None
    third = build.build(step, str(fake_torch_venv), pip, progress=False, use_cache=False)
    assert not third.cache_hit


def test_failed_build_keeps_log_and_error_lines(fake_torch_venv: Path, tmp_path: Path) -> None:
    src = fakewheels.failing_project(tmp_path)
    step = Step("build", "failpkg", str(src))
    with pytest.raises(CommandFailed) as info:
        build.build(step, str(fake_torch_venv), [str(fake_torch_venv), "-m", "pip"], progress=False)
    assert info.value.log_path and Path(info.value.log_path).is_file()
    assert "error: expected declaration" in info.value.output_tail
