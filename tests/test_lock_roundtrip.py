"""Locks made by real resolvers (uv, and pip as the fallback) against loopback indexes laid out like the real ones
(a PyTorch-style ``/whl/cu121/`` page whose links carry ``#sha256=``, a PyPI-style ``/simple/`` with
``data-requires-python``), then installed by real clients into real venvs: ``uv pip install -r pylock.toml``,
``pip install --require-hashes -r requirements.txt`` (with and without ``--no-deps``) and ``gpustack install --lock``.

Offline: nothing here reaches PyPI (``network`` tests at the end do, and skip when it does not answer).
"""

from __future__ import annotations

import functools
import hashlib
import html
import http.server
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.pylock import Pylock
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

import fakewheels  # noqa: E402

from resolver import hashes, lock_resolve  # noqa: E402
from resolver.lock import dumps, loads  # noqa: E402
from resolver.lock_install import install_from_lock, requirements_text  # noqa: E402
from resolver.matrix import load  # noqa: E402
from resolver.models import PackageChoice, Plan, Stack, Target  # noqa: E402
from resolver.plan import make_plan, plan_constraints  # noqa: E402
from _isolation import isolate_installers

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "golden"
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Loopback:
    torch_url: str  # plays https://download.pytorch.org/whl/cu121
    pypi_url: str  # plays https://pypi.org/simple
    sha: dict[str, str]  # file name -> sha256
    seen: list[str]  # the paths the server was asked for


class _Quiet(fakewheels.QuietHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        super().do_GET()

    def do_HEAD(self) -> None:
        self.seen.append(self.path)
        super().do_HEAD()


def _page(links: list[tuple[str, str, str | None]]) -> str:
    anchors = [f'<a href="{html.escape(href)}"' + (f' data-requires-python="{html.escape(rp)}"' if rp else "")
               + f">{html.escape(name)}</a>" for href, name, rp in links]
    return "<!DOCTYPE html><html><body>\n" + "\n".join(anchors) + "\n</body></html>\n"


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    root = tmp_path_factory.mktemp("indexes")
    w = root / "build"
    mk = fakewheels.make_wheel
    torch_files = [
        (mk(w / "t", "torch", "2.1.0+cu121", {"torch/__init__.py": "__version__ = '2.1.0+cu121'\n"},
            requires=["numpy", "networkx", "typing-extensions"], requires_python=">=3.8"), ">=3.8"),
        # The PyTorch index mirrors some dependencies (older ones): they must not be taken from it.
        (mk(w / "t", "numpy", "1.24.1", {"numpy/__init__.py": ""}), None),
    ]
    pypi_files = [
        (mk(w / "p", "torch", "2.1.0", {"torch/__init__.py": "__version__ = '2.1.0'\n"}, requires=["numpy"]), None),
        (mk(w / "p", "xformers", "0.0.22.post7", {"xformers/__init__.py": ""}, requires=["torch==2.1.0", "numpy"],
            requires_python=">=3.8"), ">=3.8"),
        (mk(w / "p", "numpy", "2.2.6", {"numpy/__init__.py": ""}, requires_python=">=3.10"), ">=3.10"),
        (mk(w / "p", "numpy", "1.26.4", {"numpy/__init__.py": ""}, requires_python=">=3.9"), ">=3.9"),
        (mk(w / "p", "networkx", "3.6.1", {"networkx/__init__.py": ""}, requires_python=">=3.11"), ">=3.11"),
        (mk(w / "p", "networkx", "3.4.2", {"networkx/__init__.py": ""}, requires_python=">=3.10"), ">=3.10"),
        (mk(w / "p", "typing-extensions", "4.12.2", {"typing_extensions.py": ""}, requires_python=">=3.8"), ">=3.8"),
        (mk(w / "p", "einops", "0.8.1", {"einops/__init__.py": ""}, requires_python=">=3.8"), ">=3.8"),
    ]
    sha: dict[str, str] = {}
    whl = root / "whl" / "cu121"
    (root / "files").mkdir(parents=True)
    by_project: dict[tuple[str, str], list[tuple[str, str, str | None]]] = {}
    for where, files in (("torch", torch_files), ("pypi", pypi_files)):
        for path, rp in files:
            data = path.read_bytes()
            sha[path.name] = hashlib.sha256(data).hexdigest()
            project = path.name.split("-")[0].replace("_", "-")
            if where == "torch":  # download.pytorch.org: absolute paths, '+' as %2B, hash in the fragment
                whl.mkdir(parents=True, exist_ok=True)
                (whl / path.name).write_bytes(data)
                href = f"/whl/cu121/{path.name.replace('+', '%2B')}#sha256={sha[path.name]}"
            else:
                (root / "files" / path.name).write_bytes(data)
                href = f"../../files/{path.name}#sha256={sha[path.name]}"
            by_project.setdefault((where, project), []).append((href, path.name, rp))
    for (where, project), links in by_project.items():
        folder = (whl if where == "torch" else root / "simple") / project
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_text(_page(links))
    seen: list[str] = []
    handler = type("_Recording", (_Quiet,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield Loopback(f"{base}/whl/cu121", f"{base}/simple", sha, seen)
    server.shutdown()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip and uv ignore this machine's configuration; caches live in the test's folder."""
    isolate_installers(monkeypatch)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "gpustack-cache"))


def _plan(lb: Loopback, python: str) -> Plan:
    """AudioCraft's stack as the planner makes it, with torch from the loopback PyTorch index: the matrix's pins
    (numpy<2 for torch 2.1) are its constraints."""
    target = Target(gpus=(), python=python, platform="linux_x86_64")
    torch = PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=lb.torch_url, variant="cu121", cuda="12.1")
    xformers = PackageChoice("xformers", "0.0.22.post7", "wheel", index_url=lb.pypi_url, cuda="12.1")
    return make_plan(Stack(target, (torch, xformers)), matrix=load())


def _lock(lb: Loopback, python: str, *, use_uv: bool = True, deps: bool = True) -> str:
    plan = _plan(lb, python)
    assert "numpy<2" in plan_constraints(plan)
    resolved = lock_resolve.resolve(plan, plan_constraints(plan), default_index=lb.pypi_url, use_uv=use_uv) if deps else {}
    files, warnings = hashes.lookup(plan, known=resolved)
    assert warnings == []
    assert lock_resolve.check_files(files.values(), python, "linux_x86_64") == []
    return dumps(plan, files, matrix=load(), request=["torch==2.1.0", "xformers<0.0.23"], profile="audiocraft",
                 deps=deps)


@pytest.mark.parametrize("use_uv", [True, False], ids=["uv", "pip-fallback"])
def test_lock_for_python_310_pins_indexes_numpy_and_networkx(loopback: Loopback, use_uv: bool) -> None:
    text = _lock(loopback, "3.10", use_uv=use_uv)
    Pylock.from_dict(tomllib.loads(text))
    locked = loads(text)
    by_name = {p.name: p for p in locked.packages}
    assert sorted(by_name) == ["networkx", "numpy", "torch", "typing-extensions", "xformers"]
    torch = by_name["torch"]
    assert torch.version == "2.1.0+cu121" and torch.url.startswith(f"{loopback.torch_url}/torch-2.1.0")
    assert torch.sha256 == loopback.sha["torch-2.1.0+cu121-py3-none-any.whl"]  # the link's #sha256=
    assert by_name["numpy"].version == "1.26.4" and by_name["numpy"].url.startswith(loopback.pypi_url.rsplit("/", 1)[0])
    assert by_name["networkx"].version == "3.4.2"  # 3.6.1 needs Python >= 3.11
    assert locked.profile == "audiocraft" and locked.request == ("torch==2.1.0", "xformers<0.0.23")


def _venv(tmp_path: Path, name: str, *, pip: bool) -> Path:
    where = tmp_path / name
    if pip:
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin" / "python"


def _installed(python: Path) -> dict[str, str]:
    code = "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    import json

    out = subprocess.run([str(python), "-I", "-c", code], check=True, capture_output=True, text=True,
                         cwd=python.parent).stdout
    return {k.lower(): v for k, v in json.loads(out).items() if k.lower() not in ("pip", "setuptools")}


EXPECTED_311 = {"torch": "2.1.0+cu121", "xformers": "0.0.22.post7", "numpy": "1.26.4", "networkx": "3.6.1",
                "typing_extensions": "4.12.2"}


def _expected(got: dict[str, str]) -> None:
    assert {k.replace("-", "_"): v for k, v in got.items()} == EXPECTED_311


def test_uv_installs_our_pylock(loopback: Loopback, tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text(_lock(loopback, HERE))
    python = _venv(tmp_path, "venv", pip=False)
    uv = lock_resolve.find_uv()
    assert uv is not None
    done = subprocess.run([uv, "pip", "install", "--python", str(python), "-r", str(tmp_path / "pylock.toml")],
                          capture_output=True, text=True, env=lock_resolve.isolated_env(
                              UV_CACHE_DIR=str(tmp_path / "uv-cache")))
    assert done.returncode == 0, done.stderr
    _expected(_installed(python))


@pytest.mark.parametrize("no_deps", [False, True], ids=["deps", "no-deps"])
def test_pip_installs_requirements_format_with_require_hashes(loopback: Loopback, tmp_path: Path,
                                                              no_deps: bool) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(requirements_text(loads(_lock(loopback, HERE))))
    python = _venv(tmp_path, "venv", pip=True)
    argv = [str(python), "-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--require-hashes",
            "-r", str(req), *(["--no-deps"] if no_deps else [])]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    _expected(_installed(python))


def test_a_no_deps_lock_says_how_pip_installs_it(loopback: Loopback, tmp_path: Path) -> None:
    """`lock --no-deps --format requirements`: pip's --require-hashes refuses it without --no-deps (torch's
    dependencies have no hash); the file says so, and with --no-deps it installs."""
    req = tmp_path / "requirements.txt"
    text = requirements_text(loads(_lock(loopback, HERE, deps=False)))
    assert "pip install --no-deps --require-hashes -r FILE" in text
    req.write_text(text)
    python = _venv(tmp_path, "venv", pip=True)
    argv = [str(python), "-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--require-hashes",
            "-r", str(req)]
    refused = subprocess.run(argv, capture_output=True, text=True)
    assert refused.returncode != 0 and "hash" in refused.stderr.lower()
    done = subprocess.run([*argv, "--no-deps"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _installed(python) == {"torch": "2.1.0+cu121", "xformers": "0.0.22.post7"}


def test_gpustack_install_lock_installs_exactly_the_lock(loopback: Loopback, tmp_path: Path) -> None:
    locked = loads(_lock(loopback, HERE))
    python = _venv(tmp_path, "venv", pip=True)
    install_from_lock(locked, str(python), host=Target(gpus=(), python=HERE, platform="linux_x86_64"))
    _expected(_installed(python))


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_a_tampered_lock_is_refused_over_an_environment_that_already_holds_it(loopback: Loopback, tmp_path: Path,
                                                                                backend: str) -> None:
    # The lock's numpy hash changed, then `install --lock` over the venv the good lock made: uv kept the installed
    # numpy without reading its file, and gpustack said "installed exactly". The file is read again and refused.
    from click.testing import CliRunner

    from resolver.cli import main

    good = tmp_path / "pylock.toml"
    good.write_text(_lock(loopback, HERE))
    python = _venv(tmp_path, "venv", pip=backend == "pip")
    first = CliRunner().invoke(main, ["install", "--lock", str(good), "--python-exe", str(python), "--installer",
                                      backend])
    assert first.exit_code == 0, first.output
    before = _installed(python)
    _expected(before)
    numpy = next(name for name in loopback.sha if name.startswith("numpy-1.26.4"))
    bad = tmp_path / "bad" / "pylock.toml"
    bad.parent.mkdir()
    bad.write_text(good.read_text().replace(loopback.sha[numpy], "0" * 64))
    assert bad.read_text() != good.read_text()
    again = CliRunner().invoke(main, ["install", "--lock", str(bad), "--python-exe", str(python), "--installer",
                                      backend])
    assert again.exit_code == 1 and "installed exactly" not in again.output, again.output
    assert "0" * 64 in again.output, again.output  # the installer's hash mismatch, with the lock's hash
    assert _installed(python) == before
    rerun = CliRunner().invoke(main, ["install", "--lock", str(good), "--python-exe", str(python), "--installer",
                                      backend])
    assert rerun.exit_code == 0 and _installed(python) == before, rerun.output


# --- torch + xformers + flash-attn: flash-attn's wheel is a GitHub release asset ----------------------------------


@pytest.mark.parametrize("use_uv", [True, False], ids=["uv", "pip-fallback"])
def test_flash_attn_lock_resolves_its_declared_dependencies_and_never_fetches_its_wheel(
        loopback: Loopback, use_uv: bool) -> None:
    """The plan takes flash-attn 2.7.3 as a wheel by direct URL (here served by the loopback server, which records
    what it is asked). The resolver gets flash-attn's install_requires from the matrix (torch, einops) instead of
    the URL: the lock holds einops and torch's dependencies, and flash-attn by URL under missing (no sha256), and
    nobody asked the server for the wheel. The lock is valid PEP 751."""
    matrix = load()
    base = loopback.pypi_url.rsplit("/", 1)[0]
    wheel = "flash_attn-2.7.3+cu12torch2.1cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"
    target = Target(gpus=(), python="3.10", platform="linux_x86_64")
    torch = PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=loopback.torch_url, variant="cu121", cuda="12.1")
    xformers = PackageChoice("xformers", "0.0.22.post7", "wheel", index_url=loopback.pypi_url, cuda="12.1")
    flash = PackageChoice("flash-attn", "2.7.3", "wheel", url=f"{base}/github/{wheel.replace('+', '%2B')}", cuda="12.1")
    plan = make_plan(Stack(target, (torch, xformers, flash)), matrix=matrix)
    before = len(loopback.seen)
    lock_resolve.check_sources(plan, matrix, loopback.pypi_url)  # one HEAD / to the loopback host
    resolved = lock_resolve.resolve(plan, plan_constraints(plan), default_index=loopback.pypi_url, use_uv=use_uv,
                                    matrix=matrix)
    files, warnings = hashes.lookup(plan, known=resolved)
    assert lock_resolve.check_files(files.values(), "3.10", "linux_x86_64") == []
    text = dumps(plan, files, matrix=matrix, request=["torch==2.1.0", "xformers", "flash-attn"], deps=True)
    Pylock.from_dict(tomllib.loads(text))
    locked = loads(text)
    versions = {p.name: p.version for p in locked.packages}
    assert versions["einops"] == "0.8.1" and versions["torch"] == "2.1.0+cu121" and versions["numpy"] == "1.26.4"
    assert "flash-attn" not in versions
    (fa,) = [m for m in locked.missing if m.name == "flash-attn"]
    assert fa.version == "2.7.3" and fa.url.endswith(wheel.replace("+", "%2B"))
    assert [w for w in warnings if w.startswith("flash-attn:")]  # said on stderr by the command
    asked = loopback.seen[before:]
    assert asked and not [p for p in asked if "flash" in p.lower() or "/github/" in p], asked


# --- uv started before the plan is known (resolver.lock_speculate) -------------------------------------------------


def test_a_uv_run_started_on_a_hint_is_used_only_for_the_same_request(loopback: Loopback,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A run started for another request (a stale hint: here the 3.11 target) is killed and the plan's own request
    resolved; that request is remembered, and the next run started from the hint is used as it is: the same lock."""
    from resolver import lock_speculate, lock_uv

    uv = lock_resolve.find_uv()
    assert uv, "uv is a dependency of gpustack"
    started: list[lock_uv.UvRun] = []
    real_init = lock_uv.UvRun.__init__

    def counting(self: lock_uv.UvRun, *args: object) -> None:  # the real run, counted
        real_init(self, *args)  # type: ignore[arg-type]
        started.append(self)

    monkeypatch.setattr(lock_uv.UvRun, "__init__", counting)
    plan310, plan311 = _plan(loopback, "3.10"), _plan(loopback, "3.11")
    request = lock_resolve.uv_request(plan310, plan_constraints(plan310), loopback.pypi_url)
    key = lock_speculate.hint_key(["torch==2.1.0"])
    stale = lock_uv.UvRun(uv, lock_resolve.uv_request(plan311, plan_constraints(plan311), loopback.pypi_url))
    first = lock_resolve.resolve(plan310, plan_constraints(plan310), default_index=loopback.pypi_url,
                                 started=stale, hint=key)
    assert stale._proc is None and not stale._work.exists()  # killed, its folder gone
    assert len(started) == 2 and started[1].request == request  # the plan's own request ran
    assert first["networkx"].version == "3.4.2" and first["numpy"].version == "1.26.4"  # 3.10's answer
    speculative = lock_speculate.start(key)  # what the next lock with this key starts before it plans
    assert speculative is not None and speculative.request == request
    again = lock_resolve.resolve(plan310, plan_constraints(plan310), default_index=loopback.pypi_url,
                                 started=speculative, hint=key)
    assert len(started) == 3  # no run but the speculative one
    assert {k: (f.version, f.url, f.sha256) for k, f in again.items()} == \
        {k: (f.version, f.url, f.sha256) for k, f in first.items()}


# --- the AudioCraft golden lock, and the real thing (PyPI) --------------------------------------------------------


def test_audiocraft_golden_lock_is_valid_and_fits_python_310() -> None:
    text = (GOLDEN / "lock_audiocraft.toml").read_text()
    Pylock.from_dict(tomllib.loads(text))
    locked = loads(text)
    versions = {p.name: Version(p.version) for p in locked.packages}
    assert versions["torch"] == Version("2.1.0") and versions["xformers"] == Version("0.0.22.post7")
    assert versions["numpy"] < Version("2")
    assert versions["networkx"] < Version("3.5")  # networkx 3.5 and later need Python >= 3.11
    assert locked.target.python == "3.10" and locked.profile == "audiocraft" and locked.driver == "535.104.05"
    wheels = [p.url.rsplit("/", 1)[-1] for p in locked.packages if p.kind == "wheel"]
    assert all("-cp310-" in w or "-py3-" in w or "-py2.py3-" in w for w in wheels), wheels
    assert lock_resolve.check_files(
        [hashes.LockedFile(p.name, p.version, p.url.rsplit("/", 1)[-1], p.url, p.sha256) for p in locked.packages],
        "3.10", "linux_x86_64", pages=lock_resolve.Pages(lambda url: None)) == []


def test_torch_xformers_flash_attn_golden_lock_is_valid_and_holds_flash_attns_dependencies() -> None:
    """A real lock from PyPI (A100, Python 3.10, glibc 2.35: flash-attn's GitHub wheels need the glibc of the Ubuntu
    their CI ran on): einops (flash-attn's install_requires) and torch's dependencies are locked and hashed;
    flash-attn 2.7.3's GitHub wheel is under missing, by URL, with why in the header. Written by
    ``GPUSTACK_UPDATE_GOLDEN=1 pytest -m network -k torch_xformers_flash_attn_lock_from_pypi``."""
    text = (GOLDEN / "lock_torch_xformers_flash.toml").read_text()
    Pylock.from_dict(tomllib.loads(text))
    locked = loads(text)
    # The golden is a lock the tool writes today: its recorded target and request plan the wheel it holds (on the
    # assumed glibc 2.28 the plan builds flash-attn from source instead, which a lock of that request says).
    assert locked.glibc == "2.35" and not [n for n in locked.notes if "assumed" in n]
    from resolver.pipeline import PlanOptions, fresh_plan_for

    opts = PlanOptions.from_cli({"gpus": ("A100",), "driver": locked.driver, "python_version": "3.10",
                                 "platform_tag": "linux_x86_64", "glibc": locked.glibc})
    plan, _ = fresh_plan_for(locked.request, opts)
    assert [(p.name, p.version, p.method, p.url) for p in plan.stack.packages if p.name == "flash-attn"] == \
        [("flash-attn", "2.7.3", "wheel", locked.missing[0].url)]
    assumed, _ = fresh_plan_for(locked.request, dataclasses.replace(opts, glibc=None))
    assert assumed.stack.get("flash-attn").method == "source"  # type: ignore[union-attr]
    versions = {p.name: Version(p.version) for p in locked.packages}
    assert versions["torch"] == Version("2.1.0") and "einops" in versions and versions["numpy"] < Version("2")
    assert all(p.sha256 for p in locked.packages)
    (fa,) = locked.missing
    assert fa.name == "flash-attn" and fa.version == "2.7.3"
    assert fa.url == ("https://github.com/Dao-AILab/flash-attention/releases/download/v2.7.3/"
                      "flash_attn-2.7.3+cu12torch2.1cxx11abiFALSE-cp310-cp310-linux_x86_64.whl")
    assert "#   flash-attn 2.7.3: a GitHub release asset" in text and "--allow-missing-hashes" in text.split("lock-")[0]
    assert lock_resolve.check_files(
        [hashes.LockedFile(p.name, p.version, p.url.rsplit("/", 1)[-1], p.url, p.sha256) for p in locked.packages],
        "3.10", "linux_x86_64", pages=lock_resolve.Pages(lambda url: None)) == []


def _pypi_or_skip() -> None:
    import requests

    try:
        requests.head("https://pypi.org/simple/pip/", timeout=5)
    except requests.RequestException as exc:
        pytest.skip(f"PyPI does not answer: {exc}")


@pytest.mark.network
def test_audiocraft_lock_from_pypi_matches_the_golden_lock(tmp_path: Path) -> None:
    """The real command on the real index: AudioCraft for an A100, Python 3.10, Linux x86_64."""
    from click.testing import CliRunner

    from resolver.cli import main

    _pypi_or_skip()
    out = tmp_path / "pylock.toml"
    args = ["lock", "--gpu", "A100", "--driver", "535.104.05", "--python", "3.10", "--platform", "linux_x86_64",
            "--profile", "audiocraft"]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    # The same command again starts uv from the hint the first run left (resolver.lock_speculate): the same lock.
    assert list((tmp_path / "gpustack-cache" / "lock-hints").glob("*.json"))
    second = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "pylock.second.toml")])
    assert second.exit_code == 0, second.output
    assert [(p.name, p.version, p.url, p.sha256) for p in loads((tmp_path / "pylock.second.toml").read_text()).packages] \
        == [(p.name, p.version, p.url, p.sha256) for p in loads(out.read_text()).packages]
    live, golden = loads(out.read_text()), loads((GOLDEN / "lock_audiocraft.toml").read_text())
    pinned = {p.name: (p.url, p.sha256) for p in golden.packages if p.name in ("torch", "xformers")}
    assert {p.name: (p.url, p.sha256) for p in live.packages if p.name in pinned} == pinned
    versions = {p.name: Version(p.version) for p in live.packages}
    assert versions["numpy"] < Version("2") and versions["networkx"] < Version("3.5")


@pytest.mark.network
def test_torch_xformers_flash_attn_lock_from_pypi(tmp_path: Path) -> None:
    """The real command: torch 2.1.0 + xformers + flash-attn for an A100, Python 3.10. flash-attn's dependencies
    come from the matrix and are resolved on PyPI; its GitHub wheel is locked by URL under missing, never fetched
    (GitHub is not reachable from CI machines like this one, and the lock no longer waits on it)."""
    from click.testing import CliRunner

    from resolver.cli import main

    _pypi_or_skip()
    out = tmp_path / "pylock.toml"
    # --glibc 2.35: flash-attn's GitHub wheels need the glibc of the Ubuntu their CI ran on (platforms.toml
    # [[os]]); on the assumed 2.28 the plan builds it from source instead
    result = CliRunner().invoke(main, ["lock", "--gpu", "A100", "--driver", "550.54.15", "--python", "3.10",
                                       "--platform", "linux_x86_64", "--glibc", "2.35", "torch==2.1.0", "xformers",
                                       "flash-attn", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    Pylock.from_dict(tomllib.loads(text))
    locked = loads(text)
    versions = {p.name: Version(p.version) for p in locked.packages}
    assert versions["torch"] == Version("2.1.0") and "einops" in versions and versions["numpy"] < Version("2")
    (fa,) = [m for m in locked.missing if m.name == "flash-attn"]
    assert fa.url.startswith("https://github.com/Dao-AILab/flash-attention/releases/download/v")
    assert "flash-attn: no sha256 (a GitHub release asset" in result.stderr
    assert locked.deps and locked.glibc == "2.35"
    if os.environ.get("GPUSTACK_UPDATE_GOLDEN") == "1":  # the golden's regeneration path (review it before committing)
        (GOLDEN / "lock_torch_xformers_flash.toml").write_text(text)
    golden = loads((GOLDEN / "lock_torch_xformers_flash.toml").read_text())
    pinned = {p.name: (p.url, p.sha256) for p in golden.packages if p.name in ("torch", "xformers")}
    assert {p.name: (p.url, p.sha256) for p in locked.packages if p.name in pinned} == pinned
    assert fa.url == golden.missing[0].url
