"""A user's own extra index (``PIP_EXTRA_INDEX_URL``, pip.conf's ``extra-index-url``, ``UV_EXTRA_INDEX_URL``,
``UV_INDEX``) beside a plan: every planned package still lands from its planned index, with pip and uv alike, and the
user's index still serves what only it has.

The two-index layout of ``conftest`` (PyTorch-style ``/whl/cu121``, PyPI-style ``/simple``) plus a third index on
127.0.0.1, the user's, holding decoys: torch 2.1.0+cu121, xformers 0.0.23+cu121 and torchvision 0.16.0+cu121 (the
planned versions, local labels included) whose modules record CUDA "decoy", and ``userpkg`` 1.0, which only it has.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import fakewheels
from conftest import Server, TwoIndexes
from resolver import envstate
from resolver.models import PackageChoice, Plan, Stack, Step, Target
from test_two_index_e2e import PIN, cuda_of, run, torch_index_plan

pytestmark = pytest.mark.slow

# How a user gives an extra index to each backend: an environment variable, or a config file (pip.conf, uv.toml).
WAYS = [("pip", "PIP_EXTRA_INDEX_URL"), ("pip", "pip.conf"), ("uv", "UV_EXTRA_INDEX_URL"), ("uv", "UV_INDEX"),
        ("uv", "uv.toml"), ("uv", "uv.toml [[index]]")]


def _give(way: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if way == "pip.conf":
        conf = tmp_path / "pip.conf"
        conf.write_text(f"[global]\nextra-index-url = {url}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    elif way.startswith("uv.toml"):
        conf = tmp_path / "uv.toml"
        conf.write_text(f'[[index]]\nurl = "{url}"\n' if "index" in way else f'[pip]\nextra-index-url = ["{url}"]\n')
        monkeypatch.delenv("UV_NO_CONFIG")
        monkeypatch.setenv("UV_CONFIG_FILE", str(conf))
    else:
        monkeypatch.setenv(way, url)


@pytest.fixture(scope="module")
def user_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("user-index")
    wheels = root / "wheels"
    files = [fakewheels.fake_torch(wheels, "2.1.0+cu121", "decoy", requires=["typing-extensions>=4.8.0"]),
             fakewheels.fake_cuda_package(wheels, "xformers", "0.0.23+cu121", "decoy", ["torch==2.1.0"]),
             fakewheels.fake_cuda_package(wheels, "torchvision", "0.16.0+cu121", "decoy", ["torch==2.1.0"]),
             fakewheels.make_wheel(wheels, "userpkg", "1.0", {"userpkg.py": "v = 'user'\n"})]
    fakewheels.write_index(root, files)
    server = Server(root)
    yield f"http://127.0.0.1:{server.port}/simple"
    server.stop()


def _plan(idx: TwoIndexes) -> object:
    userpkg = Step("install", "userpkg", "userpkg==1.0", index_url=idx.pypi_url, constraints=(PIN,),
                   description="userpkg==1.0 from PyPI")
    return torch_index_plan(idx, userpkg, others=("torchvision",))


@pytest.mark.parametrize(("backend", "way"), WAYS)
def test_planned_packages_come_from_their_index_and_the_users_index_serves_the_rest(
        two_index: TwoIndexes, user_index: str, venv: Path, tmp_path: Path, backend: str, way: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _give(way, user_index, tmp_path, monkeypatch)
    run(_plan(two_index), venv, backend)  # type: ignore[arg-type]
    snap = envstate.snapshot(str(venv))
    assert snap.version("torch") == "2.1.0+cu121" and cuda_of(venv, "torch") == "12.1"
    assert snap.version("xformers") == "0.0.23+cu121" and cuda_of(venv, "xformers") == "12.1"
    assert snap.version("torchvision") == "0.16.0+cu121" and cuda_of(venv, "torchvision") == "12.1"
    assert snap.version("userpkg") == "1.0"  # only the user's index has it


@pytest.mark.parametrize(("backend", "way"), WAYS)
def test_a_pypi_torch_plan_is_not_outbid_by_the_users_local_build(
        two_index: TwoIndexes, user_index: str, venv: Path, tmp_path: Path, backend: str, way: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # PyPI's torch is pinned without its local label (torch==2.1.0): the user's 2.1.0+cu121 matches that pin and
    # sorts above it, as a user's PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu118 would.
    _give(way, user_index, tmp_path, monkeypatch)
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    pypi = two_index.pypi_url
    packages = (PackageChoice("torch", "2.1.0+cu124", "wheel", index_url=pypi, variant="cu124", cuda="12.4"),
                PackageChoice("xformers", "0.0.23", "wheel", index_url=pypi, variant="cu124", cuda="12.4"))
    steps = (Step("install", "torch", "torch==2.1.0", index_url=pypi),
             Step("install", "xformers", "xformers==0.0.23", index_url=pypi, constraints=("torch==2.1.0",)),
             Step("install", "userpkg", "userpkg==1.0", index_url=pypi, constraints=("torch==2.1.0",)))
    run(Plan(Stack(target, packages, ("userpkg==1.0",)), steps), venv, backend)
    snap = envstate.snapshot(str(venv))
    assert (snap.version("torch"), snap.version("xformers")) == ("2.1.0", "0.0.23")
    assert cuda_of(venv, "torch") == "12.4" and cuda_of(venv, "xformers") == "12.4"
    assert snap.version("userpkg") == "1.0"


def test_plan_and_install_say_the_users_index_is_in_use(user_index: str, venv: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", user_index)
    said = f"your extra index {user_index} ($PIP_EXTRA_INDEX_URL) is in use"
    out = CliRunner().invoke(main, ["plan", "--cpu", "--python", "3.11", "--platform", "linux_x86_64", "torch==2.13.0"])
    assert out.exit_code == 0 and sum(said in line for line in out.output.splitlines()) == 1, out.output
    out = CliRunner().invoke(main, ["install", "--cpu", "torch==2.13.0", "--python-exe", str(venv), "--dry-run",
                                    "--installer", "pip"])
    assert out.exit_code == 0 and sum(said in line for line in out.stderr.splitlines()) == 1, out.output
    # and the command that installs the planned torch runs without it
    torch_line = next(line for line in out.stdout.splitlines() if "torch==2.13.0+cpu" in line)
    assert "PIP_EXTRA_INDEX_URL=' ' " in torch_line.split(" -m pip ")[0], torch_line
