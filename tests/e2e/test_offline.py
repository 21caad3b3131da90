"""The offline story with the real pip and uv, on a loopback PyTorch-style index (``/whl/cpu``) and a PyPI-style one
(``/simple``) that a test stops (a dead host), or with ``--offline``: ``gpustack download`` on the "connected" side,
then ``install --find-links DIR --offline`` and ``install --lock`` without the network. Plans and locks are written by
the real ``gpustack plan`` and ``gpustack lock`` against the served indexes.

``install --lock`` without the network:
What must hold both ways: the lock's sha256 decides (a changed hash is never "satisfied" by what is installed), and a
second install of the same lock needs no network (uv reinstalls from its cache, checked against the lock; what pip
installed from exactly the locked file, as its ``direct_url.json`` records, is kept); a file no copy of is here is
refused before anything changes, naming ``--find-links``.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import Server, freeze
import fakewheels
from resolver import envstate
from resolver.cli import main

BACKENDS = ["pip", "uv"]
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Served:
    """The loopback indexes (``torch_mirror`` plays download.pytorch.org/whl, ``pypi`` pypi.org/simple) and their
    server, which a test may stop."""

    torch_mirror: str
    pypi: str
    root: Path
    server: Server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("offline-index")
    w = root / "build"
    torch = fakewheels.fake_torch(w / "cpu", "2.13.0+cpu", None, requires=["typing-extensions>=4.8.0"])
    fakewheels.write_flat_index(root / "whl" / "cpu", [torch])
    fakewheels.write_index(root / "pypi", [
        fakewheels.make_wheel(w / "p", "typing-extensions", "4.12.2", {"typing_extensions.py": ""}),
        fakewheels.make_wheel(w / "p", "tinypkg", "1.0", {"tinypkg.py": ""}),
        # published as sdists only (as many small PyPI projects are), built with a PEP 517 backend from the index;
        # srconly's metadata is static (2.2), oldsrc's (2.1) is known only by building it
        fakewheels.fake_backend(w / "p"),
        fakewheels.make_sdist(w / "p", "srconly", "1.0", ["tinypkg"]),
        fakewheels.make_sdist(w / "p", "oldsrc", "2.0", ["typing-extensions"], metadata_version="2.1"),
    ])
    shutil.move(str(root / "pypi" / "simple"), str(root / "simple"))
    shutil.move(str(root / "pypi" / "files"), str(root / "files"))
    server = Server(root)
    base = f"http://127.0.0.1:{server.port}"
    yield Served(f"{base}/whl", f"{base}/simple", root, server)
    server.stop()


@pytest.fixture
def up(served: Served) -> Iterator[Served]:
    """The indexes, answering (started again after a test that stopped them)."""
    if served.server._server is None:
        served.server.start()
    yield served
    if served.server._server is None:
        served.server.start()


def gpustack(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write_lock(s: Served, path: Path) -> Path:
    """Write the lock of torch 2.13.0 (CPU, from the torch mirror) and tinypkg (PyPI) with the real `gpustack lock`."""
    done = gpustack("lock", "--cpu", "--python", HERE, "--platform", "linux_x86_64", "torch==2.13.0", "tinypkg",
                    "--torch-index-url", s.torch_mirror, "--index-url", s.pypi, "-o", str(path))
    assert done.exit_code == 0, done.output
    return path


LOCKED = ["tinypkg==1.0", "torch==2.13.0+cpu", "typing-extensions==4.12.2"]


def locked_part(python: Path) -> list[str]:
    """Return the locked packages' ``name==version`` as installed (read as gpustack reads it: uv venvs have no pip)."""
    return [line for line in envstate.snapshot(str(python)).freeze() if line.split("==")[0] in
            ("tinypkg", "torch", "typing-extensions")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_install_of_the_lock_needs_no_network_and_still_checks_the_hashes(up: Served, venv: Path,
                                                                                  tmp_path: Path,
                                                                                  backend: str) -> None:
    # uv's --reinstall (so a changed hash is never "satisfied" by what is installed) implies --refresh: the same
    # lock again, its index down, failed after uv's retries ("tcp connect error"); pip failed the same way.
    lock = write_lock(up, tmp_path / "pylock.toml")
    first = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", backend)
    assert first.exit_code == 0, first.output
    before = freeze(venv)
    assert locked_part(venv) == LOCKED
    up.server.stop()
    again = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", backend)
    assert again.exit_code == 0, again.output
    assert freeze(venv) == before
    if backend == "uv":  # read again, from uv's cache
        assert "did not answer: uv installs the lock's files from its cache" in again.output, again.output
    else:  # pip recorded each file's sha256 when it installed it: nothing to read again
        assert "kept tinypkg, torch, typing-extensions: installed from exactly the locked files" in again.output
    offline = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", backend, "--offline")
    assert offline.exit_code == 0 and freeze(venv) == before, offline.output
    # the guarantee still holds without the network: a lock whose hash was changed is refused, nothing changes
    sha = next(w["hashes"]["sha256"] for p in tomllib.loads(lock.read_text())["packages"]
               if p["name"] == "typing-extensions" for w in p["wheels"])
    bad = tmp_path / "bad.toml"
    bad.write_text(lock.read_text().replace(sha, "0" * 64))
    refused = gpustack("install", "--lock", str(bad), "--python-exe", str(venv), "--installer", backend)
    assert refused.exit_code == 1 and "installed exactly" not in refused.output, refused.output
    assert freeze(venv) == before
    if backend == "uv":  # uv's cache holds the archive's sha256, which is not the lock's
        assert "0" * 64 in refused.output and "Hash mismatch" in refused.output, refused.output
    else:  # pip has no copy to check: refused before it runs, naming the way around
        assert "pip keeps no copy of typing-extensions==4.12.2" in refused.output and "--find-links DIR" in \
            refused.output, refused.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fresh_environment_from_the_lock_without_the_network(up: Served, template_venv: Path, tmp_path: Path,
                                                               backend: str) -> None:
    lock = write_lock(up, tmp_path / "pylock.toml")
    online, fresh = (shutil.copytree(template_venv, tmp_path / n, symlinks=True) / "bin" / "python"
                     for n in ("online", "fresh"))
    first = gpustack("install", "--lock", str(lock), "--python-exe", str(online), "--installer", backend)
    assert first.exit_code == 0, first.output  # uv's cache now holds the files; pip keeps none
    up.server.stop()
    before = freeze(fresh)
    done = gpustack("install", "--lock", str(lock), "--python-exe", str(fresh), "--installer", backend)
    if backend == "uv":
        assert done.exit_code == 0, done.output
        assert locked_part(fresh) == LOCKED
    else:
        assert done.exit_code == 1, done.output
        assert "nothing was changed" in done.output and "--find-links DIR" in done.output
        assert "Traceback" not in done.output and freeze(fresh) == before


def write_plan(s: Served, path: Path, *requirements: str) -> Path:
    """Write `gpustack plan --json` of torch 2.13.0 (CPU) and ``requirements`` from the served PyPI."""
    done = gpustack("plan", "--cpu", "--python", HERE, "--platform", "linux_x86_64", "torch==2.13.0", *requirements,
                    "--index-url", s.pypi, "--json")
    assert done.exit_code == 0, done.output
    path.write_text(done.stdout)
    return path


def download(s: Served, plan: Path, dest: Path) -> Result:
    return gpustack("download", "--plan", str(plan), "--dest", str(dest), "--torch-index-url", s.torch_mirror,
                    "--index-url", s.pypi)


def test_a_pass_through_requirement_with_only_an_sdist_is_downloaded_and_built_offline(up: Served,
                                                                                        template_venv: Path,
                                                                                        tmp_path: Path) -> None:
    # download passes --only-binary=:all: (a download for another target must): srconly and oldsrc, published as
    # sdists only, failed it ("No matching distribution found"), so the offline install could not be prepared.
    plan = write_plan(up, tmp_path / "plan.json", "srconly", "oldsrc")
    dest = tmp_path / "wheelhouse"
    dry = gpustack("download", "--plan", str(plan), "--dest", str(dest), "--torch-index-url", up.torch_mirror,
                   "--index-url", up.pypi, "--dry-run")
    assert dry.exit_code == 0 and not dest.exists(), dry.output
    assert f"--no-deps --no-binary srconly --index-url {up.pypi} srconly==1.0" in dry.output, dry.output
    done = download(up, plan, dest)
    assert done.exit_code == 0, done.output
    for name, version in (("srconly", "1.0"), ("oldsrc", "2.0")):
        assert (f"{name} {version} has no wheel for the target (Python {HERE}, linux_x86_64), only an sdist: "
                "downloaded it with what building it takes; the install builds it") in done.output, done.output
    assert sorted(p.name for p in dest.iterdir()) == [
        "fake_backend-1.0-py3-none-any.whl",  # their build backend, for the build on the target
        "oldsrc-2.0.tar.gz", "srconly-1.0.tar.gz",
        "tinypkg-1.0-py3-none-any.whl",  # srconly's dependency (its PKG-INFO); oldsrc's is typing-extensions
        "torch-2.13.0+cpu-py3-none-any.whl", "typing_extensions-4.12.2-py3-none-any.whl"]
    up.server.stop()
    for backend in BACKENDS:
        python = shutil.copytree(template_venv, tmp_path / backend, symlinks=True) / "bin" / "python"
        offline = gpustack("install", "--plan", str(plan), "--find-links", str(dest), "--offline", "--python-exe",
                           str(python), "--installer", backend)
        assert offline.exit_code == 0, offline.output
        got = envstate.snapshot(str(python))
        assert {n: got.version(n) for n in ("torch", "srconly", "oldsrc", "tinypkg", "typing-extensions")} == {
            "torch": "2.13.0+cpu", "srconly": "1.0", "oldsrc": "2.0", "tinypkg": "1.0", "typing-extensions": "4.12.2"}


def test_the_offline_story_of_docs_install_md_end_to_end(up: Served, template_venv: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # docs/install.md "Offline installs": on the connected machine, `gpustack download` of a plan (torch from the
    # PyTorch index, pass-through requirements from PyPI: one a wheel, one an sdist only) and `gpustack lock` of the
    # same request; then, the indexes gone, the plan and the lock installed from the folder into fresh environments
    # with empty pip, uv and gpustack caches (the air-gapped machine's), with pip and with uv. Every environment holds
    # the same set: the lock's. (The lock's sdist was built with its backend from PyPI, not from the folder: offline,
    # pip and uv found no fake-backend.)
    plan = write_plan(up, tmp_path / "plan.json", "tinypkg", "srconly")
    lock = tmp_path / "pylock.toml"
    locked = gpustack("lock", "--cpu", "--python", HERE, "--platform", "linux_x86_64", "torch==2.13.0", "tinypkg",
                      "srconly", "--torch-index-url", up.torch_mirror, "--index-url", up.pypi, "-o", str(lock))
    assert locked.exit_code == 0, locked.output
    dest = tmp_path / "wheelhouse"
    done = download(up, plan, dest)
    assert done.exit_code == 0, done.output
    up.server.stop()
    want = sorted(f"{p['name']}=={p['version']}" for p in tomllib.loads(lock.read_text())["packages"])
    assert want == ["srconly==1.0", "tinypkg==1.0", "torch==2.13.0+cpu", "typing-extensions==4.12.2"]
    for backend in BACKENDS:
        for how, args in (("plan", ["--plan", str(plan)]), ("lock", ["--lock", str(lock)])):
            python = shutil.copytree(template_venv, tmp_path / f"{backend}-{how}", symlinks=True) / "bin" / "python"
            base = set(envstate.snapshot(str(python)).freeze())
            for cache in ("PIP_CACHE_DIR", "UV_CACHE_DIR", "GPUSTACK_CACHE_DIR"):
                monkeypatch.setenv(cache, str(tmp_path / f"{backend}-{how}-{cache.lower()}"))
            out = gpustack("install", *args, "--find-links", str(dest), "--offline", "--python-exe", str(python),
                           "--installer", backend)
            assert out.exit_code == 0, f"{backend} {how}: {out.output}"
            assert sorted(set(envstate.snapshot(str(python)).freeze()) - base) == want, (backend, how)
