"""resolver.dockerfile: the base image choice from the matrix's docker rows, and rendered Dockerfiles compared with
golden files (``GPUSTACK_UPDATE_GOLDEN=1`` rewrites them), each passing ``hadolint`` with no error or warning."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
from _hadolint import hadolint
from packaging.version import Version

from resolver.dockerfile import base_image, render
from resolver.errors import NoCompatibleStack
from resolver.matrix import load
from resolver.matrix_types import DockerImage, Matrix
from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX, ComputeCapability, Gpu, PackageChoice, Plan, Stack, Step, Target, parse_driver

GOLDEN = Path(__file__).parent / "golden"
CU121 = f"{PYTORCH_INDEX}/cu121"


def image(cuda: str, version: str, *, removed: bool = False) -> DockerImage:
    return DockerImage(Version(cuda), version, f"nvidia/cuda:{version}-runtime-ubuntu22.04",
                       f"nvidia/cuda:{version}-devel-ubuntu22.04", removed, False, "test row")


def matrix(*images: DockerImage) -> Matrix:
    """The shipped matrix with its docker rows replaced (the CUDA driver tables stay real)."""
    return dataclasses.replace(load(), docker=images or (image("12.1", "12.1.1"), image("12.4", "12.4.1"), image("11.8", "11.8.0")))


def gpu_plan(*, source: bool) -> Plan:
    target = Target(gpus=(Gpu("NVIDIA GeForce GTX 1080", ComputeCapability(6, 1)),), python="3.11",
                    platform="linux_x86_64", driver=parse_driver("535.104.05"), cpu_count=8, memory_gib=32)
    torch = PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=CU121, variant="cu121", cuda="12.1",
                          arch_list="5.0;6.0;7.0;7.5;8.0;8.6;9.0")
    env = {"TORCH_CUDA_ARCH_LIST": "6.1", "FORCE_CUDA": "1", "MAX_JOBS": "8"}  # as make_plan writes a CUDA build
    xf = PackageChoice("xformers", "0.0.22.post7", "source" if source else "wheel", index_url=PYPI_SIMPLE,
                       build_env=env if source else {}, arch_list="6.1" if source else "5.0+PTX;6.0;6.1;7.0;7.5;8.0+PTX;9.0")
    steps = [Step("install", "torch", "torch==2.1.0+cu121", index_url=CU121, extra_index_urls=(PYPI_SIMPLE,)),
             Step("install", "numpy", "numpy<2", index_url=PYPI_SIMPLE, constraints=("torch==2.1.0+cu121",))]
    if source:
        steps.append(Step("build", "xformers", "xformers==0.0.22.post7", index_url=PYPI_SIMPLE, no_deps=True,
                          constraints=("torch==2.1.0+cu121",), env=env, build_isolation=False))
    else:
        steps.append(Step("install", "xformers", "xformers==0.0.22.post7", index_url=PYPI_SIMPLE,
                          constraints=("torch==2.1.0+cu121",)))
    return Plan(Stack(target, (torch, xf), other_requirements=("numpy<2",)), tuple(steps))


def cpu_plan() -> Plan:
    target = Target(gpus=(), python="3.12", platform="linux_x86_64")
    torch = PackageChoice("torch", "2.13.0+cpu", "wheel", index_url=f"{PYTORCH_INDEX}/cpu", variant="cpu")
    step = Step("install", "torch", "torch==2.13.0+cpu", index_url=f"{PYTORCH_INDEX}/cpu", extra_index_urls=(PYPI_SIMPLE,))
    return Plan(Stack(target, (torch,)), (step,))




def golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/name``; only GPUSTACK_UPDATE_GOLDEN=1 writes it (a missing golden fails)."""
    path = GOLDEN / name
    if os.environ.get("GPUSTACK_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing; GPUSTACK_UPDATE_GOLDEN=1 writes it (review it before committing)"
    assert text == path.read_text(), f"{name} differs; GPUSTACK_UPDATE_GOLDEN=1 rewrites it"


def test_a_missing_golden_fails_and_is_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "GOLDEN", tmp_path)
    monkeypatch.delenv("GPUSTACK_UPDATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match="is missing"):
        golden("Dockerfile.absent", "FROM scratch\n")
    assert not (tmp_path / "Dockerfile.absent").exists()
    monkeypatch.setenv("GPUSTACK_UPDATE_GOLDEN", "1")
    golden("Dockerfile.absent", "FROM scratch\n")
    assert (tmp_path / "Dockerfile.absent").read_text() == "FROM scratch\n"


@pytest.mark.parametrize("name, plan", [
    ("Dockerfile.gpu-wheels", gpu_plan(source=False)),
    ("Dockerfile.gpu-source", gpu_plan(source=True)),
    ("Dockerfile.cpu", cpu_plan()),
])
def test_rendered_dockerfiles_match_golden_and_pass_hadolint(name: str, plan: Plan, tmp_path: Path) -> None:
    text = render(plan, matrix())
    golden(name, text)
    hadolint(text, tmp_path)


@pytest.mark.parametrize("plan", [gpu_plan(source=True), gpu_plan(source=False), cpu_plan()],
                         ids=["source", "wheels", "cpu"])
def test_every_stage_that_makes_a_venv_takes_a_python_download_mirror(plan: Plan, tmp_path: Path) -> None:
    """No base image here ships Python, so ``uv venv`` downloads it (python-build-standalone), which a firewalled build
    cannot: every stage that runs it declares the build argument UV_PYTHON_INSTALL_MIRROR (unset unless given, so
    uv's default applies), and the comment says what to pass. The real uv (the version the image copies) reads that
    variable in place of the download prefix the comment names: pointed at an empty folder, it looks there."""
    import subprocess

    from resolver.dockerfile import PYTHON_DOWNLOADS, UV_IMAGE
    from resolver.uvbin import find_uv

    text = render(plan, matrix())
    stages = text.split("\nFROM ")[2:]  # after the uv stage
    for stage in stages:
        lines = stage.splitlines()
        venv = next(i for i, line in enumerate(lines) if line.startswith("RUN uv venv "))
        assert "ARG UV_PYTHON_INSTALL_MIRROR" in lines[:venv], stage
    assert f"--build-arg UV_PYTHON_INSTALL_MIRROR=URL, a mirror of {PYTHON_DOWNLOADS}" in stages[0]
    uv = find_uv()
    if uv is None:
        pytest.skip("uv not installed")
    version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()[1]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "UV_NO_CONFIG": "1",
           "UV_CACHE_DIR": str(tmp_path / "cache"), "UV_PYTHON_INSTALL_DIR": str(tmp_path / "python"),
           "UV_PYTHON_INSTALL_MIRROR": mirror.as_uri()}
    python = next(line.split()[5] for line in stages[0].splitlines() if line.startswith("RUN uv venv "))
    done = subprocess.run([uv, "venv", "--seed", "--python", python, "--python-preference", "only-managed",
                           str(tmp_path / "venv")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and f"{mirror}/" in done.stderr, (version, UV_IMAGE, done.stderr)


def test_source_build_stage_sets_the_build_env_and_copies_wheels() -> None:
    text = render(gpu_plan(source=True), matrix())
    build, final = text.split("\nFROM nvidia/cuda:12.1.1-runtime-ubuntu22.04\n")
    assert "FROM nvidia/cuda:12.1.1-devel-ubuntu22.04 AS build" in build
    assert "ARG XFORMERS_MAX_JOBS=8\nENV FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=6.1 MAX_JOBS=${XFORMERS_MAX_JOBS}" in build
    assert "sized for the build machine (8 cores, 32 GiB free RAM" in build
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels xformers==0.0.22.post7" in build
    assert "COPY --from=build /wheels /tmp/wheels" in final and "TORCH_CUDA_ARCH_LIST" not in final
    assert "nvidia-smi" not in text  # nothing is detected at build time
    assert "# Made by `gpustack dockerfile` for this target:" in text and "GTX 1080 (compute capability 6.1)" in text


def test_wheel_only_plan_has_one_stage_and_pinned_indexes() -> None:
    text = render(gpu_plan(source=False), matrix())
    assert "AS build" not in text
    assert ("pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu121 "
            "--extra-index-url https://pypi.org/simple torch==2.1.0+cu121") in text
    assert "xformers==0.0.22.post7 torch==2.1.0+cu121" in text  # torch's pin held while xformers installs
    assert "'numpy<2'" in text


def test_base_image_is_the_same_cuda_minor() -> None:
    img, why = base_image("12.1", matrix())
    assert img is not None and img.version == "12.1.1" and "= torch's CUDA 12.1" in why


def test_base_image_falls_back_to_the_nearest_newer_minor_and_says_so() -> None:
    m = matrix(image("12.1", "12.1.1", removed=True), image("12.2", "12.2.2"), image("12.4", "12.4.1"), image("11.8", "11.8.0"))
    img, why = base_image("12.1", m)
    assert img is not None and img.version == "12.2.2"
    assert "no CUDA 12.1 image" in why and "nearest newer 12.x" in why
    assert f"# Base image: {why}." in render(gpu_plan(source=False), m)


def test_no_image_of_that_major_is_refused() -> None:
    with pytest.raises(NoCompatibleStack, match="no nvidia/cuda image for CUDA 12.5"):
        base_image("12.5", matrix(image("12.4", "12.4.1"), image("11.8", "11.8.0"), image("12.6", "12.6.0", removed=True)))


def test_cpu_stack_uses_plain_ubuntu() -> None:
    img, why = base_image(None, matrix())
    assert img is None and "CPU" in why
    assert "\nFROM ubuntu:22.04\n" in render(cpu_plan(), matrix())


def test_shipped_docker_rows_serve_every_torch_cuda_of_the_matrix() -> None:
    """Every CUDA minor of a torch variant since 2.0 gets an image (the same minor or a newer one)."""
    m = load()
    if not m.docker:
        pytest.skip("matrices/docker.toml not present")
    for rel in m.torch:
        if rel.version >= Version("2.0"):
            for v in rel.variants:
                assert base_image(str(v.cuda), m)[0] is not None, f"torch {rel.version}+{v.tag}"


def test_cli_prints_a_dockerfile_for_a_given_target(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    args = ["dockerfile", "--gpu", "8.6", "--driver", "535.104.05", "--python", "3.10", "--platform", "linux_x86_64",
            "torch==2.1.0", "xformers==0.0.22.post7"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "FROM nvidia/cuda:12.1" in result.output and "xformers==0.0.22.post7" in result.output
    hadolint(result.output, tmp_path)
    bad = CliRunner().invoke(main, ["dockerfile", "--gpu", "8.6", "--python", "three"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("platform, gpu, docker", [("linux_aarch64", "GH200", "linux/arm64"),
                                                   ("linux_x86_64", "H100", "linux/amd64")])
def test_image_names_its_platform_and_stops_when_built_for_another(platform: str, gpu: str, docker: str,
                                                                   tmp_path: Path) -> None:
    """Docker builds for the builder's architecture unless told: an aarch64 Dockerfile built on an x86 CI runner made
    an amd64 image under a linux_aarch64 label. The header says how to build it, and every stage with a shell first
    checks ``uname -m`` (run here by the real /bin/sh, on this machine's architecture)."""
    import platform as host
    import subprocess

    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["dockerfile", "--platform", platform, "--gpu", gpu, "--driver", "580.95.05",
                                       "--python", "3.11", "-o", "-"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"# Build it for {docker} on any host: docker buildx build --platform {docker} ." in text
    hadolint(text, tmp_path)
    lines = text.splitlines()
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ") and " AS uv" not in line]
    checks = [next(line for line in lines[i:] if line.startswith("RUN ")) for i in stages]  # each stage's first RUN
    assert stages and all(c == checks[0] and c.startswith("RUN [ \"$(uname -m)\"") for c in checks)
    done = subprocess.run(["/bin/sh", "-c", checks[0].removeprefix("RUN ")], capture_output=True, text=True)
    if host.machine() == platform.removeprefix("linux_"):
        assert done.returncode == 0 and done.stderr == ""
    else:
        assert done.returncode == 1
        assert done.stderr.strip() == (f"this image is for {docker}, not {host.machine()}: build it with docker buildx "
                                       f"build --platform {docker}")


def test_windows_target_is_refused_in_one_line() -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    result = CliRunner().invoke(main, ["dockerfile", "--gpu", "H100", "--platform", "win_amd64", "--python", "3.12"])
    assert result.exit_code == 2 and "FROM" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "win_amd64" in result.output


def test_each_arch_variable_is_spelled_its_own_way_in_plan_and_dockerfile() -> None:
    # torch reads TORCH_CUDA_ARCH_LIST=8.0;9.0, flash-attn's setup.py FLASH_ATTN_CUDA_ARCHS=80;90.
    import json

    from click.testing import CliRunner

    from resolver.cli import main

    target = ["--gpu", "A100", "--gpu", "H100", "--driver", "580.159.04", "--python", "3.12", "--platform",
              "linux_x86_64", "flash-attn"]
    plan = CliRunner().invoke(main, ["plan", *target, "--json"])
    assert plan.exit_code == 0, plan.output
    flash = next(p for p in json.loads(plan.output)["packages"] if p["name"] == "flash-attn")
    assert flash["method"] == "source", flash
    assert (flash["arch_list"], flash["env"]["FLASH_ATTN_CUDA_ARCHS"]) == ("8.0;9.0", "80;90")
    done = CliRunner().invoke(main, ["dockerfile", *target])
    assert done.exit_code == 0, done.output
    env = next(line for line in done.output.splitlines() if "FLASH_ATTN_CUDA_ARCHS" in line and line.startswith("ENV"))
    assert "FLASH_ATTN_CUDA_ARCHS=80;90 " in env.replace("'", "") and "TORCH_CUDA_ARCH_LIST=8.0;9.0 " in env.replace("'", "")


def test_matrix_show_docker_marks_removed_images_and_its_json_keeps_their_facts() -> None:
    # docker.toml marks 10.2 and 11.3.0 removed (gone from Docker Hub): the table says so, and --json carries each
    # image's removed, status, unverified and source, the facts the table only marks.
    import json

    from click.testing import CliRunner

    from resolver.cli import main
    from resolver.matrix import load

    removed = {d.runtime for d in load().docker if d.removed}
    assert "nvidia/cuda:10.2-cudnn8-runtime-ubuntu18.04" in removed
    text = CliRunner().invoke(main, ["matrix", "show", "docker"], terminal_width=250)
    assert text.exit_code == 0, text.output
    for image in removed:
        (row,) = [r for r in text.output.splitlines() if image in r]
        assert "removed (gone from Docker Hub)" in row
    rows = json.loads(CliRunner().invoke(main, ["matrix", "show", "docker", "--json"]).output)
    assert {r["runtime image"] for r in rows if r["removed"]} == removed
    assert all(r["source"] and r["status"] in ("supported", "eol", None) and isinstance(r["unverified"], bool)
               for r in rows)
