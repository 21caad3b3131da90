"""The user's own installer configuration that would change which file a planned step installs: uv's
``UV_TORCH_BACKEND`` (uv then takes torch from download.pytorch.org/whl/<backend>, whatever index the command line
names: ``uv help pip install``) and ``UV_INDEX_STRATEGY`` (``unsafe-best-match`` lets a higher local build on an index
of uv.toml outbid the planned one). Real uv on the loopback indexes of ``conftest``; the user's index holds decoys."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TwoIndexes
from resolver import envstate
from resolver.models import PackageChoice, Plan, Stack, Step, Target
from test_two_index_e2e import cuda_of, run, torch_index_plan
from test_user_extra_index import user_index  # noqa: F401  (the decoy index fixture)

pytestmark = pytest.mark.slow


def test_uv_torch_backend_does_not_move_the_planned_torch(two_index: TwoIndexes, venv: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_TORCH_BACKEND", "cu126")  # download.pytorch.org/whl/cu126: not reachable from here
    run(torch_index_plan(two_index), venv, "uv")
    snap = envstate.snapshot(str(venv))
    assert snap.version("torch") == "2.1.0+cu121" and cuda_of(venv, "torch") == "12.1"
    assert snap.version("xformers") == "0.0.23+cu121"


def test_uv_index_strategy_does_not_let_the_users_index_outbid_a_pypi_pin(
        two_index: TwoIndexes, user_index: str, venv: Path, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "uv.toml"
    conf.write_text(f'[pip]\nextra-index-url = ["{user_index}"]\n')
    monkeypatch.delenv("UV_NO_CONFIG")
    monkeypatch.setenv("UV_CONFIG_FILE", str(conf))
    monkeypatch.setenv("UV_INDEX_STRATEGY", "unsafe-best-match")
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    pypi = two_index.pypi_url
    packages = (PackageChoice("torch", "2.1.0+cu124", "wheel", index_url=pypi, variant="cu124", cuda="12.4"),)
    run(Plan(Stack(target, packages, ()), (Step("install", "torch", "torch==2.1.0", index_url=pypi),)), venv, "uv")
    assert envstate.snapshot(str(venv)).version("torch") == "2.1.0" and cuda_of(venv, "torch") == "12.4"


def test_plan_and_install_say_once_that_uv_torch_backend_is_ignored(venv: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    monkeypatch.setenv("UV_TORCH_BACKEND", "cu126")
    said = "UV_TORCH_BACKEND=cu126 (the plan chose torch's build and its index)"
    out = CliRunner().invoke(main, ["plan", "--cpu", "--python", "3.11", "--platform", "linux_x86_64", "torch==2.13.0"])
    assert out.exit_code == 0 and sum(said in line for line in out.output.splitlines()) == 1, out.output
    out = CliRunner().invoke(main, ["install", "--cpu", "torch==2.13.0", "--python-exe", str(venv), "--dry-run",
                                    "--installer", "uv"])
    assert out.exit_code == 0 and sum(said in line for line in out.stderr.splitlines()) == 1, out.output
    # the printed command that installs the planned torch runs without it, as the install itself does
    torch_line = next(line for line in out.stdout.splitlines() if "torch==2.13.0+cpu" in line)
    assert torch_line.startswith("env -u UV_TORCH_BACKEND "), torch_line
