"""The PyPI mirror in effect is one answer for every command: ``--index-url``, else ``$PIP_INDEX_URL``,
``$UV_DEFAULT_INDEX`` or ``$UV_INDEX_URL`` (``pipeline.pypi_index``). Pass-through requirements are pinned on it, not
on pypi.org, by plan, install, download and lock alike, and installed from it.

Two real indexes served on 127.0.0.1 differ: A holds ``mirpkg`` 1.0 only (a mirror that lags), B holds 1.0 and 2.0.
pypi.org is made unreachable (a dead proxy), as it is behind a mirror: a command that still asked it fails."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

import fakewheels  # noqa: E402
from resolver.cli import main  # noqa: E402
from _isolation import isolate_installers

TARGET = ["--cpu", "--python", "3.11", "--platform", "linux_x86_64"]
REQUEST = ["torch==2.13.0", "mirpkg"]


@dataclass(frozen=True)
class Indexes:
    a: str  # mirpkg 1.0 (and torch's dependency mirdep)
    b: str  # mirpkg 1.0 and 2.0
    torch: str  # a mirror of download.pytorch.org/whl (<torch>/cpu/torch/)


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexes]:
    root = tmp_path_factory.mktemp("pypi-mirrors")
    wheels = root / "wheels"
    torch = fakewheels.fake_torch(wheels, "2.13.0+cpu", cuda=None, requires=["mirdep"])  # mirdep: PyPI's only
    dep = fakewheels.make_wheel(wheels, "mirdep", "1.0", {"mirdep.py": "v = '1.0'\n"})
    old, new = (fakewheels.make_wheel(wheels / v, "mirpkg", v, {"mirpkg.py": f"v = {v!r}\n"}) for v in ("1.0", "2.0"))
    fakewheels.write_flat_index(root / "torch" / "cpu", [torch])
    fakewheels.write_index(root / "a", [old, dep])
    fakewheels.write_index(root / "b", [old, new, dep])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(fakewheels.QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield Indexes(f"{base}/a/simple", f"{base}/b/simple", f"{base}/torch")
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexes: Indexes) -> None:
    isolate_installers(monkeypatch, also=lambda name: name.lower().endswith("_proxy"))
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("GPUSTACK_TORCH_INDEX_URL", indexes.torch)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):  # pypi.org does not answer here
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _run(args: list[str], env: dict[str, str]) -> Result:
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 0, out.output
    return out


def _planned(env: dict[str, str], *extra: str) -> tuple[str, str | None]:
    data = json.loads(_run(["plan", *TARGET, *REQUEST, "--json", *extra], env).stdout)
    step = next(s for s in data["steps"] if s["package"] == "mirpkg")
    return step["requirement"], step["index_url"]


@pytest.mark.parametrize("variable", ["PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL"])
def test_plan_pins_on_the_environments_mirror(indexes: Indexes, variable: str) -> None:
    assert _planned({variable: indexes.a}) == ("mirpkg==1.0", indexes.a)
    assert _planned({variable: indexes.b}) == ("mirpkg==2.0", indexes.b)


def test_the_option_wins_over_the_environment(indexes: Indexes) -> None:
    assert _planned({"PIP_INDEX_URL": indexes.a}, "--index-url", indexes.b) == ("mirpkg==2.0", indexes.b)
    # pip's variable before uv's, as the mirror in effect for install too
    assert _planned({"PIP_INDEX_URL": indexes.a, "UV_DEFAULT_INDEX": indexes.b}) == ("mirpkg==1.0", indexes.a)


def test_install_and_download_dry_runs_pin_on_the_mirror(indexes: Indexes) -> None:
    env = {"UV_INDEX_URL": indexes.a}
    dry = json.loads(_run(["install", *TARGET, *REQUEST, "--installer", "pip", "--dry-run", "--json"], env).stdout)
    argv = next(a for step in dry["steps"] for a in step["argv"] if "mirpkg" in a)
    assert argv == "mirpkg==1.0", dry
    assert indexes.a in json.dumps(dry) and "pypi.org" not in json.dumps(dry)
    out = _run(["download", *TARGET, *REQUEST, "--dest", "never", "--dry-run"], env).stdout
    assert "mirpkg==1.0" in out and "mirpkg==2.0" not in out and "pypi.org" not in out


def test_lock_pins_and_resolves_on_the_mirror(indexes: Indexes) -> None:
    text = _run(["lock", *TARGET, *REQUEST, "-o", "-"], {"UV_DEFAULT_INDEX": indexes.a}).stdout
    packages = {p["name"]: p for p in tomllib.loads(text)["packages"]}
    assert packages["mirpkg"]["version"] == "1.0"
    assert packages["mirpkg"]["index"] == indexes.a and "pypi.org" not in text


def test_a_bad_mirror_variable_is_bad_input_named(indexes: Indexes) -> None:
    out = CliRunner().invoke(main, ["plan", *TARGET, *REQUEST], env={"UV_INDEX_URL": "ftp://u:pw@host/simple"})
    assert out.exit_code == 2 and out.output.startswith("gpustack: UV_INDEX_URL") and "pw" not in out.output
    assert len(out.output.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_install_takes_the_mirrors_newest(indexes: Indexes, tmp_path: Path, backend: str) -> None:
    # A mirror that lags: what it holds is installed (pinned on pypi.org, mirpkg would be a version it lacks)
    venv = tmp_path / "v"
    _run(["install", "--cpu", *REQUEST, "--venv", str(venv), "--installer", backend], {"PIP_INDEX_URL": indexes.a})
    done = subprocess.run([str(venv / "bin" / "python"), "-c", "import mirpkg; print(mirpkg.v)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1.0"


def _indexes_of(plan: dict[str, Any]) -> list[str]:
    return [u for s in plan["steps"] for u in (s["index_url"], *s["extra_index_urls"]) if u]


@pytest.mark.parametrize("given", ["option", "environment"])
def test_a_plan_file_names_the_mirror_for_pypi(indexes: Indexes, given: str) -> None:
    # torch's dependencies come from PyPI beside the PyTorch index: from the mirror, also through `install --plan`
    env, extra = ({}, ["--index-url", indexes.a]) if given == "option" else ({"UV_DEFAULT_INDEX": indexes.a}, [])
    for request in (REQUEST, ["torch==2.13.0"]):  # with or without a pass-through requirement
        plan = json.loads(_run(["plan", *TARGET, *request, "--json", *extra], env).stdout)
        assert plan["steps"][0]["package"] == "torch" and plan["steps"][0]["extra_index_urls"] == [indexes.a]
        assert all("pypi.org" not in u for u in _indexes_of(plan)), plan["steps"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_install_of_a_plan_file_takes_dependencies_from_its_mirror(indexes: Indexes, tmp_path: Path,
                                                                   backend: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(_run(["plan", "--cpu", *REQUEST, "--json", "--index-url", indexes.a], {}).stdout)
    venv = tmp_path / "v"
    _run(["install", "--plan", str(path), "--venv", str(venv), "--installer", backend], {})  # no mirror given here
    done = subprocess.run([str(venv / "bin" / "python"), "-c", "import mirdep, mirpkg; print(mirdep.v, mirpkg.v)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1.0", "1.0"]


def test_a_credentialed_lock_leaves_no_password_in_the_cache(indexes: Indexes, tmp_path: Path) -> None:
    # the real command (through resolver.start, which remembers each lock's uv request as a hint for the next run)
    secret = "s3cretPW"

    def auth(url: str) -> str:
        return url.replace("http://", f"http://alice:{secret}@")

    env = {**os.environ, "GPUSTACK_TORCH_INDEX_URL": auth(indexes.torch), "UV_DEFAULT_INDEX": auth(indexes.a)}
    for _ in range(2):  # the second run would start uv on the first one's hint
        done = subprocess.run([sys.executable, "-m", "resolver", "lock", *TARGET, *REQUEST, "-o", str(tmp_path / "pylock.toml")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert secret not in done.stdout + done.stderr + (tmp_path / "pylock.toml").read_text()
    cache = Path(os.environ["GPUSTACK_CACHE_DIR"])
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files and not [p for p in files if secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("command", [["install", "--dry-run"], ["lock", "-o", "pylock.toml"],
                                     ["download", "--dest", "wheels", "--dry-run"]])
def test_an_index_url_with_a_space_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                command: list[str]) -> None:
    # it was taken, and pip/uv (or lock's probe) failed later with exit 1
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, [*command, *TARGET, "torch==2.13.0", "--torch-index-url", "https://u:pw@x/whl cpu"])
    assert out.exit_code == 2, out.output
    assert out.output.startswith("gpustack: --torch-index-url 'https://u:****@x/whl cpu': a URL has no spaces")
    assert len(out.output.strip().splitlines()) == 1 and "%20" in out.output
    assert not (tmp_path / "pylock.toml").exists() and not (tmp_path / "wheels").exists()
