"""The air-gapped install of a request (not a plan file) that names a pass-through package: ``gpustack download`` on
the "connected" side, then ``install torch==2.13.0 tinypkg --find-links DIR`` with the indexes dead, with and without
``--offline``, with the real pip and uv. The pass-through requirement is pinned from the find-links folder (what the
plan would install from there), as docs/install.md promises ("a step whose file lies in --find-links skips
unreachable indexes").
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from resolver import envstate
from test_offline import HERE, Served, gpustack, served, up  # noqa: F401  (the loopback indexes, as fixtures)

pytestmark = pytest.mark.slow


def _download(s: Served, dest: Path) -> None:
    done = gpustack("download", "--cpu", "--python", HERE, "--platform", "linux_x86_64", "torch==2.13.0", "tinypkg",
                    "--dest", str(dest), "--torch-index-url", s.torch_mirror, "--index-url", s.pypi)
    assert done.exit_code == 0, done.output
    assert {p.name for p in dest.iterdir()} >= {"tinypkg-1.0-py3-none-any.whl", "torch-2.13.0+cpu-py3-none-any.whl"}


def _air_gapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pypi.org and download.pytorch.org unreachable as an air-gapped box has them: through a proxy that refuses
    every connection (requests, pip and uv all honour it), so the default indexes are remote and dead."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "index-dead"])
def test_a_request_with_a_pass_through_package_installs_from_find_links_with_the_index_dead(
        up: Served, template_venv: Path, tmp_path: Path, offline: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # The plan asked the index to pin tinypkg even with --offline: "could not check tinypkg on https://pypi.org/simple
    # (ProxyError)", and its advice was "check the spelling", although the folder held tinypkg 1.0.
    dest = tmp_path / "wheelhouse"
    _download(up, dest)
    up.server.stop()
    _air_gapped(monkeypatch)
    for backend in ("pip", "uv"):
        python = shutil.copytree(template_venv, tmp_path / backend, symlinks=True) / "bin" / "python"
        done = gpustack("install", "--cpu", "torch==2.13.0", "tinypkg", "--find-links", str(dest), "--python-exe",
                        str(python), "--installer", backend, *(["--offline"] if offline else []))
        assert done.exit_code == 0, (backend, done.output)
        assert f"install tinypkg==1.0 from {dest}/tinypkg-1.0-py3-none-any.whl" in done.output, done.output
        got = envstate.snapshot(str(python))
        assert {n: got.version(n) for n in ("torch", "tinypkg", "typing-extensions")} == {
            "torch": "2.13.0+cpu", "tinypkg": "1.0", "typing-extensions": "4.12.2"}


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "index-dead"])
def test_a_pass_through_package_missing_from_find_links_is_refused_naming_the_folder(
        up: Served, template_venv: Path, tmp_path: Path, offline: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "wheelhouse"
    _download(up, dest)
    up.server.stop()
    _air_gapped(monkeypatch)
    python = shutil.copytree(template_venv, tmp_path / "v", symlinks=True) / "bin" / "python"
    before = envstate.snapshot(str(python)).freeze()
    done = gpustack("install", "--cpu", "torch==2.13.0", "otherpkg", "--find-links", str(dest), "--python-exe",
                    str(python), *(["--offline"] if offline else []))
    assert done.exit_code == 1, done.output
    assert f"otherpkg is not in --find-links {dest}" in done.output, done.output
    assert "gpustack download" in done.output, done.output
    assert "check the spelling" not in done.output and "Traceback" not in done.output, done.output
    assert envstate.snapshot(str(python)).freeze() == before
