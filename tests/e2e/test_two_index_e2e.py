"""End to end on the real index layout (INDEXES.md), served on 127.0.0.1: a PyTorch-style ``/whl/cu121`` index and a
PyPI-style ``/simple`` index holding the same public versions built for CUDA 12.4 plus newer releases. Steps are
written as ``resolver.plan`` writes them (PyPI as extra index of a PyTorch-index step, torch's pin held). With pip
AND uv, every planned distribution must come from its planned index: checked after the run by version (local
label included) and by the CUDA each module records.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import TwoIndexes, freeze, two_index_plan_file
import fakewheels
from resolver import envstate
from resolver.install import Installer, Sources, execute, restore_args
from resolver.models import PackageChoice, Plan, Stack, Step, Target

BACKENDS = ["pip", "uv"]
PIN = "torch==2.1.0+cu121"


def cuda_of(python: Path, module: str) -> str:
    if module == "torch":
        code = "import sys, torch.version as v; sys.stdout.write(v.cuda)"
    else:
        code = f"import sys, {module} as m; sys.stdout.write(m.cuda)"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout


def torch_index_plan(idx: TwoIndexes, *extra: Step, others: tuple[str, ...] = (),
                     xformers: bool = True) -> Plan:
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    packages = [PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=idx.torch_url, variant="cu121", cuda="12.1")]
    steps = [Step("install", "torch", PIN, index_url=idx.torch_url, extra_index_urls=(idx.pypi_url,),
                  description="torch 2.1.0+cu121")]
    for req in others:
        steps.append(Step("install", req.split("=")[0], req, index_url=idx.torch_url, extra_index_urls=(idx.pypi_url,),
                          constraints=(PIN,), description=f"{req} from the torch index"))
    if xformers:
        packages.append(PackageChoice("xformers", "0.0.23", "wheel", index_url=idx.torch_url, variant="cu121",
                                      cuda="12.1"))
        steps.append(Step("install", "xformers", "xformers==0.0.23", index_url=idx.torch_url,
                          extra_index_urls=(idx.pypi_url,), constraints=(PIN,), description="xformers 0.0.23 (cu121)"))
    return Plan(Stack(target, tuple(packages), others), (*steps, *extra))


def run(plan: Plan, python: Path, backend: str, **kw: Any) -> Any:
    inst = Installer(backend, str(python), restore_args(plan, Sources()))  # type: ignore[arg-type]
    return execute(plan, str(python), inst, progress=False, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_xformers_torchvision_come_from_the_torch_index(two_index: TwoIndexes, venv: Path, backend: str) -> None:
    run(torch_index_plan(two_index, others=("torchvision",)), venv, backend)
    snap = envstate.snapshot(str(venv))
    assert snap.version("torch") == "2.1.0+cu121"
    assert snap.version("xformers") == "0.0.23+cu121"
    assert snap.version("torchvision") == "0.16.0+cu121"
    # torch's own dependency resolves where it can: the mirror's 4.4.0 is too old, PyPI's newest wins.
    assert snap.version("typing-extensions") == "4.12.2"
    assert cuda_of(venv, "torch") == "12.1" and cuda_of(venv, "xformers") == "12.1"
    assert cuda_of(venv, "torchvision") == "12.1"
    assert subprocess.run([str(venv), "-m", "pip", "check"], capture_output=True).returncode == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_pypi_torch_plan_takes_pypi_builds(two_index: TwoIndexes, venv: Path, backend: str) -> None:
    # The other way round: a plan of PyPI's CUDA 12.4 torch must not pick the torch index's local builds.
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    packages = (PackageChoice("torch", "2.1.0+cu124", "wheel", index_url=two_index.pypi_url, variant="cu124",
                              cuda="12.4"),
                PackageChoice("xformers", "0.0.23", "wheel", index_url=two_index.pypi_url, variant="cu124", cuda="12.4"))
    steps = (Step("install", "torch", "torch==2.1.0", index_url=two_index.pypi_url),
             Step("install", "xformers", "xformers==0.0.23", index_url=two_index.pypi_url, constraints=("torch==2.1.0",)))
    run(Plan(Stack(target, packages), steps), venv, backend)
    snap = envstate.snapshot(str(venv))
    assert (snap.version("torch"), snap.version("xformers")) == ("2.1.0", "0.0.23")
    assert cuda_of(venv, "torch") == "12.4" and cuda_of(venv, "xformers") == "12.4"


@pytest.mark.parametrize("backend", BACKENDS)
def test_source_build_gets_its_runtime_deps_with_torch_held(two_index: TwoIndexes, venv: Path, tmp_path: Path,
                                                            backend: str) -> None:
    src = fakewheels.local_project(tmp_path, "fake-ext")
    (src / "setup.py").write_text("from setuptools import setup\nsetup(name='fake-ext', version='0.1.0', "
                                  "packages=['fake_ext'], install_requires=['torch', 'fake-einops'])\n")
    build = Step("build", "fake-ext", str(src), index_url=two_index.pypi_url, no_deps=True, constraints=(PIN,),
                 build_isolation=False, description="build fake-ext")
    before_build = run(torch_index_plan(two_index, build, xformers=False), venv, backend)
    assert before_build.builds and not before_build.builds[0].cache_hit
    snap = envstate.snapshot(str(venv))
    assert snap.version("fake-ext") == "0.1.0" and snap.version("fake-einops") == "0.7.0"
    assert snap.version("torch") == "2.1.0+cu121"
    assert "fake-einops==0.7.0" in freeze(venv)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mirrors_replace_both_indexes_and_credentials_never_print(two_index: TwoIndexes, venv: Path, tmp_path: Path,
                                                                  backend: str) -> None:
    # The plan as resolver.plan writes it (download.pytorch.org + pypi.org, unreachable here); the mirrors given
    # as an air-gapped user gives them: --torch-index-url for the PyTorch index, PIP_INDEX_URL for PyPI.
    import json

    from click.testing import CliRunner

    from resolver.cli import main

    path = two_index_plan_file(tmp_path)
    secret_pypi = two_index.pypi_url.replace("http://", "http://alice:s3cret@")
    args = ["install", "--plan", str(path), "--python-exe", str(venv), "--installer", backend,
            "--torch-index-url", f"{two_index.base}/whl"]
    env = {"PIP_INDEX_URL": secret_pypi}
    secret_var = "PIP_EXTRA_INDEX_URL" if backend == "pip" else "UV_DEFAULT_INDEX"  # what the PyPI mirror is there
    dry = CliRunner().invoke(main, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    # piped, a dry run prints what runs exactly (docs/input.md: `install --dry-run | sh`): the mirror's password in
    # the command's environment, never in the installer's argv (visible to every local user)
    assert "s3cret" not in dry.stderr and f"{two_index.base}/whl/cu121" in dry.stdout
    runs = [line for line in dry.stdout.splitlines() if line and not line.startswith(("#", "(umask", "set -e"))]
    assert runs
    for line in runs:
        words = shlex.split(line)
        first = next(i for i, w in enumerate(words) if not re.match(r"[A-Z_]+=", w))  # VAR=value ... argv
        assert f"{secret_var}={secret_pypi}" in words[:first] and "s3cret" not in " ".join(words[first:]), line
    steps = json.loads(CliRunner().invoke(main, [*args, "--dry-run", "--json"], env=env).stdout)["steps"]
    assert all("s3cret" not in " ".join(s["argv"]) and s["env"][secret_var] == secret_pypi for s in steps)
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 0, out.output
    assert "s3cret" not in out.output
    snap = envstate.snapshot(str(venv))
    assert (snap.version("torch"), snap.version("xformers")) == ("2.1.0+cu121", "0.0.23+cu121")


def test_bad_mirror_url_is_bad_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    out = CliRunner().invoke(main, ["install", "--plan", str(tmp_path / "p.json"), "--torch-index-url",
                                    "ftp://u:pw@host/whl"])
    assert out.exit_code == 2 and "--torch-index-url" in out.output and "pw" not in out.output
    assert len(out.output.strip().splitlines()) == 1
