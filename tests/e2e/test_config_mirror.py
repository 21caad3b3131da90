"""A PyPI mirror set in pip's or uv's own configuration files (pip.conf ``index-url``, uv.toml ``index-url`` or an
``[[index]]`` with ``default = true``) is the user's mirror just as ``PIP_INDEX_URL`` is
(``installer_config.configured_index``, asked by ``pipeline.pypi_index``): plan checks pass-through pins there and
names it, and install's every PyPI step takes it, with real pip and uv on the loopback two-index layout of
``conftest`` (its PyPI-style index holds typing-extensions 4.12.2; pypi.org's newest is later)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TwoIndexes, two_index_plan_file
from resolver import envstate
from resolver.cli import main

pytestmark = pytest.mark.slow

WAYS = ["pip.conf [global]", "pip.conf [install]", "uv.toml", "uv.toml [[index]]", "pyproject.toml [tool.uv]"]


def _configure(way: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the user's configuration giving ``url`` as the index; return how plan names it."""
    if way.startswith("pip.conf"):
        conf = tmp_path / "pip.conf"
        conf.write_text(f"[{way.split('[')[1]}\nindex-url = {url}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
        return f"index-url in {conf}"
    monkeypatch.delenv("UV_NO_CONFIG")
    if way.startswith("pyproject"):  # found from the working folder, as uv finds a project's settings
        project = tmp_path / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text(f'[project]\nname = "p"\nversion = "1"\n\n[tool.uv]\nindex-url = "{url}"\n')
        monkeypatch.chdir(project)
        return f"index-url in {project / 'pyproject.toml'}"
    conf = tmp_path / "uv.toml"
    conf.write_text(f'[[index]]\nurl = "{url}"\ndefault = true\n' if "index" in way else f'[pip]\nindex-url = "{url}"\n')
    monkeypatch.setenv("UV_CONFIG_FILE", str(conf))
    return f"index-url in {conf}"


@pytest.mark.parametrize("way", WAYS)
def test_plan_checks_pass_through_pins_on_the_configured_mirror(two_index: TwoIndexes, tmp_path: Path, way: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(way, two_index.pypi_url, tmp_path, monkeypatch)
    out = CliRunner().invoke(main, ["plan", "--cpu", "--python", "3.11", "--platform", "linux_x86_64",
                                    "torch==2.13.0", "typing-extensions", "--json"])
    assert out.exit_code == 0, out.output
    step = next(s for s in json.loads(out.stdout)["steps"] if s["package"] == "typing-extensions")
    assert step["requirement"] == "typing-extensions==4.12.2" and step["index_url"] == two_index.pypi_url, step


@pytest.mark.parametrize(("backend", "way"), [("pip", "pip.conf [global]"), ("pip", "pip.conf [install]"),
                                              ("uv", "uv.toml"), ("uv", "uv.toml [[index]]")])
def test_install_takes_every_pypi_step_from_the_configured_mirror(
        two_index: TwoIndexes, venv: Path, tmp_path: Path, backend: str, way: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(way, two_index.pypi_url, tmp_path, monkeypatch)
    args = ["install", "--plan", str(two_index_plan_file(tmp_path)), "--python-exe", str(venv), "--installer", backend,
            "--torch-index-url", f"{two_index.base}/whl", "--dry-run", "--json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    argvs = [" ".join(s["argv"]) for s in json.loads(out.stdout)["steps"]]
    assert all("pypi.org" not in a and two_index.pypi_url in a for a in argvs), argvs
    out = CliRunner().invoke(main, args[:-2])
    assert out.exit_code == 0, out.output
    snap = envstate.snapshot(str(venv))
    assert (snap.version("torch"), snap.version("xformers")) == ("2.1.0+cu121", "0.0.23+cu121")
    assert snap.version("typing-extensions") == "4.12.2"  # torch's dependency: from the mirror, not pypi.org
