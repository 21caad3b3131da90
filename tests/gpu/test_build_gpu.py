"""On a GPU: build the fixture extension for this GPU's architecture with gpustack's build step, install it, and run
its kernels against torch. Skips cleanly without a CUDA GPU, nvcc or a CUDA build of torch."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
    pytest.skip("no nvcc", allow_module_level=True)

from resolver import envstate  # noqa: E402
from resolver.install import Installer, Sources, execute, restore_args  # noqa: E402
from resolver.models import PackageChoice, Plan, Stack, Step, Target  # noqa: E402

CUDA_EXT = Path(__file__).resolve().parents[1] / "fixtures" / "cuda_ext"


def test_build_for_this_gpu_and_run_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    major, minor = torch.cuda.get_device_capability()
    step = Step("build", "gpustack-cuda-ext-fixture", str(CUDA_EXT), no_deps=True,
                env={"TORCH_CUDA_ARCH_LIST": f"{major}.{minor}", "FORCE_CUDA": "1"}, build_isolation=False)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"  # a plan for this interpreter (install refuses others)
    plan = Plan(Stack(Target((), here, "linux_x86_64"), (PackageChoice("torch", torch.__version__, "wheel"),)),
                (step,))
    python = sys.executable
    try:
        result = execute(plan, python, Installer("pip", python, restore_args(plan, Sources())), progress=False)
        assert not result.builds[0].cache_hit
        import importlib

        cuda_ext = importlib.import_module("cuda_ext")
        a = torch.randn(1 << 20, device="cuda")
        b = torch.randn(1 << 20, device="cuda")
        torch.testing.assert_close(cuda_ext.vector_add(a, b), a + b)
        x = torch.randn(256 * 64, device="cuda")
        torch.testing.assert_close(cuda_ext.block_sum(x), x.view(64, 256).sum(1), rtol=1e-4, atol=1e-4)
        assert envstate.snapshot(python).version("gpustack-cuda-ext-fixture") == "0.1.0"
    finally:
        import subprocess

        subprocess.run([python, "-m", "pip", "uninstall", "-y", "gpustack-cuda-ext-fixture"], capture_output=True)
