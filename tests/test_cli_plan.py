"""The plan and matrix commands, in-process (CliRunner) and as the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver import matrix
from resolver.cli import main

GPUSTACK = shutil.which("gpustack", path=os.path.dirname(sys.executable)) or "gpustack"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_json_contract_for_k80() -> None:
    code, out, _ = run("plan", "--gpu", "Tesla K80", "--driver", "470.82.01", "--python", "3.10", "--nvcc", "11.4",
                       "torch==1.12.1", "xformers", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert data["target"] == {"gpus": [{"name": "Tesla K80", "compute_capability": "3.7"}], "driver": "470.82.01",
                              "python": "3.10", "platform": "linux_x86_64", "nvcc": "11.4", "glibc": "2.28"}
    torch, xformers = data["packages"]
    assert torch == {**torch, "name": "torch", "version": "1.12.1+cu113", "method": "wheel",
                     "index_url": "https://download.pytorch.org/whl/cu113"}
    assert xformers["method"] == "source" and xformers["env"] == {"TORCH_CUDA_ARCH_LIST": "3.7", "FORCE_CUDA": "1"}
    assert [s["package"] for s in data["steps"]] == ["torch", "xformers"]
    assert data["steps"][1]["build_isolation"] is False


def test_plan_refusal_exit_1_with_reasons() -> None:
    code, out, _ = run("plan", "--gpu", "Tesla V100-SXM2-16GB", "--driver", "535.104.05", "flash-attn", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert any("flash-attn needs compute capability 8.0" in r for r in data["reasons"])
    assert any("xformers" in a["text"] for a in data["alternatives"])


def test_plan_human_output_names_the_target_and_steps() -> None:
    code, out, _ = run("plan", "--gpu", "A100", "--driver", "535.104.05", "--python", "3.10", "--profile", "audiocraft")
    assert code == 0
    # the platform was not given: the header says where it came from, as the note does (s10 trial: "(given)")
    assert "Target: A100 (sm_80); driver 535.104.05; Python 3.10; linux_x86_64 (given; platform from this machine)" \
        in out
    assert "xformers" in out and "0.0.22.post7" in out and "Steps:" in out
    code, out, _ = run("plan", "--gpu", "A100", "--driver", "535.104.05", "--python", "3.10", "--platform",
                       "linux_x86_64", "--profile", "audiocraft")
    assert code == 0 and "Target: A100 (sm_80); driver 535.104.05; Python 3.10; linux_x86_64 (given)\n" in out
    code, out, _ = run("plan", "--gpu", "A100", "--driver", "535.104.05", "torch")
    assert code == 0 and "linux_x86_64 (given; Python and platform from this machine)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "RTX 4090x"], "gpustack: --gpu 'RTX 4090x': unknown GPU name; did you mean 'GeForce RTX 4090'"),
        (["--gpu", "A100", "--driver", "5x5"], "gpustack: --driver '5x5': not a driver version"),
        (["--gpu", "A100", "xformers<<1"], "gpustack: invalid requirement 'xformers<<1'"),
        (["--gpu", "A100", "--python", "three"], "gpustack: --python 'three': expected a Python version"),
        (["--gpu", "A100", "--cpu"], "gpustack: --gpu and --cpu together"),
        (["--gpu", "A100", "-r", "/nonexistent/req.txt"], "gpustack: -r /nonexistent/req.txt: cannot read it"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    code, out, err = run("plan", *args)
    assert code == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_matrix_file_is_one_line_exit_2(tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(matrix.matrix_dir(), d, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    text = (d / "torch.toml").read_text().replace('requires_python = ">=3.7.0"', "requires_python = 37", 1)
    (d / "torch.toml").write_text(text)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, _, err = run("matrix", "validate", "--matrix-dir", str(d))
    assert code == 2
    assert err == "gpustack: torch.toml: release[0] (1.12.0): requires_python: expected a string, got int 37\n"
    code, _, err = run("plan", "--gpu", "A100", "--matrix-dir", str(d))
    assert code == 2 and "requires_python" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_matrix_validate_and_show() -> None:
    code, out, _ = run("matrix", "validate")
    assert code == 0 and out.startswith("ok: 32 torch releases")
    code, out, _ = run("matrix", "show", "profiles", "--json")
    assert code == 0 and {r["profile"] for r in json.loads(out)} == {"audiocraft", "fairseq", "diffusers"}


def test_requirements_file(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# AudioCraft\ntorch==2.1.0\nxformers<0.0.23  # optional\nnumpy<2.0.0\n")
    index = tmp_path / "index"  # pass-through requirements are checked on their index and pinned (issue 13)
    index.mkdir()
    for name in ("numpy-1.26.4-cp310-cp310-manylinux_2_17_x86_64.whl", "numpy-2.0.0-cp310-cp310-manylinux_2_17_x86_64.whl"):
        (index / name).write_bytes(b"")
    code, out, _ = run("plan", "--gpu", "A100", "--driver", "535.104.05", "--python", "3.10", "-r", str(req), "--json",
                       "--index-url", index.as_uri())
    assert code == 0
    data = json.loads(out)
    assert [p["version"] for p in data["packages"]] == ["2.1.0+cu121", "0.0.22.post7"]
    assert data["other_requirements"] == ["numpy==1.26.4"]


def test_console_script_plans_on_this_gpu_less_machine() -> None:
    """The README's main job: `gpustack plan` here, with no GPU, says so and plans a CPU stack."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    done = subprocess.run([GPUSTACK, "plan", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["target"]["gpus"] == []
    assert data["packages"][0]["version"].endswith("+cpu")
    assert any("No NVIDIA GPU found" in line for line in data["detection"])
    done = subprocess.run([GPUSTACK, "plan", "--gpu", "Tesla K80", "--driver", "470.82.01"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Tesla K80 (sm_37)" in done.stdout


@pytest.mark.slow
def test_plan_keeps_the_installed_torch_unless_upgrade(torch_python: str) -> None:
    """A venv with torch 2.13.0+cpu: the CPU plan keeps it (no torch step); --upgrade plans the newest CPU build."""
    code, out, err = run("plan", "--cpu", "--python-exe", torch_python, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["packages"][0]["version"] == "2.13.0+cpu"
    assert [s["package"] for s in data["steps"]] == []
    assert any("keeps the installed torch 2.13.0+cpu" in n for n in data["notes"])
    code, out, err = run("plan", "--cpu", "--python-exe", torch_python, "--upgrade", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["packages"][0]["version"] == "2.15.0+cpu"
    assert data["steps"][0]["requirement"] == "torch==2.15.0+cpu"
