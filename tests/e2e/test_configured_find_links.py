"""The user's own find-links folder (``PIP_FIND_LINKS``, pip.conf's ``find-links``, ``UV_FIND_LINKS``, uv.toml's
``find-links``) is install's ``--find-links DIR`` (``installer_config.configured_find_links``): a planned file found
there is used, so the index it would come from need not answer, as pip itself would install from the folder. Real pip
and uv, the indexes dead (``test_offline_pins``' download and proxy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from resolver import envstate
from test_offline import Served, gpustack, served, up  # noqa: F401  (the loopback indexes, as fixtures)
from test_offline_pins import _air_gapped, _download

pytestmark = pytest.mark.slow

WAYS = [("pip", "PIP_FIND_LINKS"), ("pip", "pip.conf"), ("uv", "UV_FIND_LINKS"), ("uv", "uv.toml")]


@pytest.mark.parametrize(("backend", "way"), WAYS)
def test_the_users_find_links_folder_serves_the_planned_files(
        up: Served, template_venv: Path, tmp_path: Path, backend: str, way: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "wheelhouse"
    _download(up, dest)
    up.server.stop()
    _air_gapped(monkeypatch)
    if way == "pip.conf":
        (tmp_path / "pip.conf").write_text(f"[global]\nfind-links = {dest}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "pip.conf"))
        said = f"find-links in {tmp_path / 'pip.conf'}"
    elif way == "uv.toml":
        (tmp_path / "uv.toml").write_text(f'[pip]\nfind-links = ["{dest}"]\n')
        monkeypatch.delenv("UV_NO_CONFIG")
        monkeypatch.setenv("UV_CONFIG_FILE", str(tmp_path / "uv.toml"))
        said = f"find-links in {tmp_path / 'uv.toml'}"
    else:
        monkeypatch.setenv(way, str(dest))
        said = f"${way}"
    python = shutil.copytree(template_venv, tmp_path / "v", symlinks=True) / "bin" / "python"
    done = gpustack("install", "--cpu", "torch==2.13.0", "tinypkg", "--python-exe", str(python), "--installer", backend)
    assert done.exit_code == 0, done.output
    assert sum(f"your find-links {dest} ({said})" in line for line in done.output.splitlines()) == 1, done.output
    got = envstate.snapshot(str(python))
    assert (got.version("torch"), got.version("tinypkg")) == ("2.13.0+cpu", "1.0")
