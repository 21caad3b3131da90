"""``gpustack download`` of a pass-through package (a wheel) whose dependency is published as an sdist only, with the
real pip and uv on a loopback PyTorch-style index (``/whl/cpu``) and a PyPI-style one (``/simple``); then the
folder installs without the network (``install --find-links DIR --offline``, the index stopped)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import fakewheels
from conftest import Server
from resolver import envstate
from resolver.cli import main

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Server]]:
    """Serve torch 2.13.0+cpu (``/whl/cpu``) and, as PyPI (``/simple``): ``wheelpkg`` (a wheel) needing ``srcdep``,
    published as an sdist only (built with ``fake-backend``), which needs ``leafpkg`` (a wheel) and, on another
    platform only, ``winonly``."""
    root = tmp_path_factory.mktemp("sdist-dep-index")
    w = root / "build"
    torch = fakewheels.fake_torch(w / "cpu", "2.13.0+cpu", None)
    fakewheels.write_flat_index(root / "whl" / "cpu", [torch])
    fakewheels.write_index(root / "pypi", [
        fakewheels.make_wheel(w / "p", "wheelpkg", "1.0", {"wheelpkg.py": ""}, requires=["srcdep>=1.0"]),
        fakewheels.make_sdist(w / "p", "srcdep", "1.1", ["leafpkg", 'winonly; sys_platform == "win32"']),
        fakewheels.make_wheel(w / "p", "leafpkg", "2.0", {"leafpkg.py": ""}),
        fakewheels.fake_backend(w / "p"),
    ])
    shutil.move(str(root / "pypi" / "simple"), str(root / "simple"))
    shutil.move(str(root / "pypi" / "files"), str(root / "files"))
    server = Server(root)
    base = f"http://127.0.0.1:{server.port}"
    yield f"{base}/whl", f"{base}/simple", server
    server.stop()


def gpustack(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_a_pass_through_packages_sdist_only_dependency_is_downloaded_and_installs_offline(
        indexes: tuple[str, str, Server], template_venv: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    torch_mirror, pypi, server = indexes
    if server._server is None:
        server.start()
    planned = gpustack("plan", "--cpu", "--python", HERE, "--platform", "linux_x86_64", "torch==2.13.0", "wheelpkg",
                       "--index-url", pypi, "--json")
    assert planned.exit_code == 0, planned.output
    plan = tmp_path / "plan.json"
    plan.write_text(planned.stdout)
    dest = tmp_path / "wheelhouse"
    args = ["download", "--plan", str(plan), "--dest", str(dest), "--torch-index-url", torch_mirror, "--index-url", pypi]
    # it failed: pip's download of wheelpkg (--only-binary=:all:, for the target) found no wheel of srcdep
    said = ("srcdep 1.1 (a dependency) has no wheel for the target (Python 3.11, linux_x86_64), only an sdist: "
            "downloaded it with what building it takes; the install builds it").replace("3.11", HERE)
    dry = gpustack(*args, "--dry-run")
    assert dry.exit_code == 0 and not dest.exists(), dry.output
    assert f"--no-deps --no-binary srcdep --index-url {pypi} srcdep==1.1" in dry.output and said in dry.output
    done = gpustack(*args)
    assert done.exit_code == 0, done.output
    assert said in done.output, done.output
    assert sorted(p.name for p in dest.iterdir()) == [
        "fake_backend-1.0-py3-none-any.whl", "leafpkg-2.0-py3-none-any.whl", "srcdep-1.1.tar.gz",
        "torch-2.13.0+cpu-py3-none-any.whl", "wheelpkg-1.0-py3-none-any.whl"]
    server.stop()
    try:
        for backend in ("pip", "uv"):
            python = shutil.copytree(template_venv, tmp_path / backend, symlinks=True) / "bin" / "python"
            for cache in ("PIP_CACHE_DIR", "UV_CACHE_DIR", "GPUSTACK_CACHE_DIR"):  # the air-gapped machine's: empty
                monkeypatch.setenv(cache, str(tmp_path / f"{backend}-{cache.lower()}"))
            offline = gpustack("install", "--plan", str(plan), "--find-links", str(dest), "--offline",
                               "--python-exe", str(python), "--installer", backend)
            assert offline.exit_code == 0, f"{backend}: {offline.output}"
            got = envstate.snapshot(str(python))
            assert {n: got.version(n) for n in ("torch", "wheelpkg", "srcdep", "leafpkg", "winonly")} == {
                "torch": "2.13.0+cpu", "wheelpkg": "1.0", "srcdep": "1.1", "leafpkg": "2.0", "winonly": None}
    finally:
        server.start()
