"""``gpustack install --lock`` installs what uv installs from the same pylock: packaging's PEP 751 selection
(``Pylock.select``) with the target interpreter's marker environment and wheel tags (``lock_install.for_host``), so
a package whose ``marker`` does not hold is left out and a package's wheel is the first one the target's tags accept,
not its first wheel. The trial's edited locks, installed for real by uv, by gpustack with pip and with uv, into real
venvs, compared with ``pip freeze``; a lock with no file for the target is refused before anything changes."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner
from packaging.pylock import Pylock

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

import fakewheels  # noqa: E402
from resolver.cli import main  # noqa: E402
from resolver.lock import LockedFile, dumps  # noqa: E402
from resolver.lock_resolve import find_uv  # noqa: E402
from resolver.models import PackageChoice, Plan, Stack, Step, Target  # noqa: E402
from _isolation import isolate_installers  # noqa: E402

pytestmark = pytest.mark.slow
HERE = f"{sys.version_info.major}{sys.version_info.minor}"
OTHER = str(sys.version_info.minor + 1)  # a CPython minor the target is not: cp3(N+1)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_installers(monkeypatch)
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("template") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    yield path


def _venv(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest / "bin" / "python"


def _tagged(folder: Path, name: str, version: str, tag: str, which: str) -> Path:
    """Return a wheel of ``name`` named for ``tag`` whose module says ``which`` file it was."""
    built = fakewheels.make_wheel(folder / tag, name, version, {f"{name}/__init__.py": f"WHICH = {which!r}\n"})
    return built.rename(folder / built.name.replace("py3-none-any", tag))


def _entry(path: Path) -> dict[str, object]:
    return {"name": path.name, "url": path.as_uri(), "hashes": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}}


def _lock(tmp_path: Path, *, ours: bool = True) -> Path:
    """Return the trial's edited lock of three packages, as files on disk: ``demo`` with a cp3(N+1) wheel listed
    before the target's cp3N one (``ours=False``: the cp3(N+1) one only), ``skipme`` under a marker that holds on
    Windows only, ``plain`` as written."""
    files = tmp_path / "files"
    plat = "manylinux_2_17_x86_64"
    mine = _tagged(files, "demo", "1.0", f"cp{HERE}-cp{HERE}-{plat}", "target")
    other = _tagged(files, "demo", "1.0", f"cp3{OTHER}-cp3{OTHER}-{plat}", "other")
    plain = fakewheels.make_wheel(files, "plain", "2.0")
    skip = fakewheels.make_wheel(files, "skipme", "3.0")
    target = Target(gpus=(), python=f"{sys.version_info.major}.{sys.version_info.minor}", platform="linux_x86_64")
    choices = tuple(PackageChoice(n, v, "wheel") for n, v in (("demo", "1.0"), ("plain", "2.0"), ("skipme", "3.0")))
    plan = Plan(Stack(target, choices), tuple(Step("install", c.name, c.requirement) for c in choices))
    locked = {n: LockedFile(n, v, p.name, p.as_uri(), hashlib.sha256(p.read_bytes()).hexdigest())
              for n, v, p in (("demo", "1.0", mine), ("plain", "2.0", plain), ("skipme", "3.0", skip))}
    data = tomllib.loads(dumps(plan, locked))
    for p in data["packages"]:
        if p["name"] == "demo":
            p["wheels"] = [_entry(other)] + ([_entry(mine)] if ours else [])
        if p["name"] == "skipme":
            p["marker"] = "sys_platform == 'win32'"
    Pylock.from_dict(data)
    out = tmp_path / "pylock.toml"
    out.write_text(tomli_w.dumps(data))
    return out


def _freeze(python: Path) -> list[str]:
    """``name==version`` of every package (``pip list --format=freeze``: uv records no direct URL for a file it
    installs from a pylock, pip does, so ``pip freeze`` spells the same files apart); which file: ``_which``."""
    run = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze", "--exclude", "pip",
                          "--exclude", "setuptools"], check=True, capture_output=True, text=True)
    return sorted(run.stdout.split())


def _which(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import demo; print(demo.WHICH)"], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_install_lock_takes_what_uv_takes_markers_and_wheel_tags(template: Path, tmp_path: Path) -> None:
    lock = _lock(tmp_path)
    uv = find_uv()
    assert uv is not None
    by_uv = _venv(template, tmp_path / "by-uv")
    subprocess.run([uv, "pip", "install", "--python", str(by_uv), "-r", str(lock)], check=True, capture_output=True)
    want = _freeze(by_uv)
    assert _which(by_uv) == "target" and not any(line.startswith("skipme") for line in want), want
    for installer in ("pip", "uv"):
        python = _venv(template, tmp_path / f"by-gpustack-{installer}")
        result = CliRunner().invoke(main, ["install", "--lock", str(lock), "--python-exe", str(python),
                                           "--installer", installer])
        assert result.exit_code == 0, result.output
        assert _freeze(python) == want and _which(python) == "target", installer
        assert "installed the 2 packages" in result.stderr, result.stderr
    dry = CliRunner().invoke(main, ["install", "--lock", str(lock), "--python-exe", str(by_uv), "--dry-run"])
    sha = {tag: hashlib.sha256(next((tmp_path / "files").glob(f"demo-1.0-{tag}-*.whl")).read_bytes()).hexdigest()
           for tag in (f"cp{HERE}-cp{HERE}", f"cp3{OTHER}-cp3{OTHER}")}
    assert dry.exit_code == 0 and sha[f"cp{HERE}-cp{HERE}"] in dry.stdout and "skipme" not in dry.stdout, dry.output
    assert sha[f"cp3{OTHER}-cp3{OTHER}"] not in dry.stdout


def test_a_lock_with_no_wheel_for_the_target_is_refused_and_nothing_changes(template: Path, tmp_path: Path) -> None:
    lock = _lock(tmp_path, ours=False)
    python = _venv(template, tmp_path / "venv")
    before = _freeze(python)
    for extra in ([], ["--dry-run"]):
        result = CliRunner().invoke(main, ["install", "--lock", str(lock), "--python-exe", str(python), *extra])
        assert result.exit_code == 1, result.output
        assert "refusing to install the lock" in result.stderr and "demo" in result.stderr, result.stderr
        assert _freeze(python) == before


def test_markers_on_python_full_version_are_judged_by_the_targets_patch_release(template: Path,
                                                                               tmp_path: Path) -> None:
    # The target's marker environment is its interpreter's own (probe_env.marker_environment), not X.Y.0: a package
    # under `python_full_version == '3.N.P'` installs on 3.N.P, as uv installs it, and one under `< '3.N.P'` does not.
    full = subprocess.run([str(_venv(template, tmp_path / "probe")), "-c", "import platform; "
                           "print(platform.python_version())"], check=True, capture_output=True, text=True).stdout.strip()
    assert not full.endswith(".0"), f"Python {full}: its X.Y.0 would judge these markers right by chance"
    lock = _lock(tmp_path)
    data = tomllib.loads(lock.read_text())
    for p in data["packages"]:
        if p["name"] == "skipme":
            p["marker"] = f"python_full_version < '{full}'"
        if p["name"] == "plain":
            p["marker"] = f"python_full_version == '{full}'"
    lock.write_text(tomli_w.dumps(data))
    uv = find_uv()
    assert uv is not None
    by_uv = _venv(template, tmp_path / "by-uv")
    subprocess.run([uv, "pip", "install", "--python", str(by_uv), "-r", str(lock)], check=True, capture_output=True)
    want = _freeze(by_uv)
    assert "plain==2.0" in want and not any(line.startswith("skipme") for line in want), want
    for installer in ("pip", "uv"):
        python = _venv(template, tmp_path / f"by-gpustack-{installer}")
        dry = CliRunner().invoke(main, ["install", "--lock", str(lock), "--python-exe", str(python), "--dry-run"])
        assert dry.exit_code == 0 and "plain==2.0" in dry.stdout and "skipme" not in dry.stdout, dry.output
        result = CliRunner().invoke(main, ["install", "--lock", str(lock), "--python-exe", str(python),
                                           "--installer", installer])
        assert result.exit_code == 0, result.output
        assert _freeze(python) == want, installer


def test_the_probe_reports_packagings_marker_environment_from_a_bare_venv(template: Path, tmp_path: Path) -> None:
    # The venv has no packaging: the probe computes what packaging.markers.default_environment() gives there.
    import json

    from packaging.markers import default_environment

    from resolver._child import probe_env

    python = _venv(template, tmp_path / "venv")
    assert subprocess.run([str(python), "-c", "import packaging"], capture_output=True).returncode != 0
    out = subprocess.run([str(python), probe_env.__file__, "--mode", "full"], check=True, capture_output=True,
                         text=True).stdout
    assert json.loads(out.strip().splitlines()[-1])["markers"] == dict(default_environment())


def test_find_links_gives_the_local_copy_of_the_wheel_the_selection_chose(template: Path, tmp_path: Path) -> None:
    # demo lists the cp3(N+1) wheel first and the target's second: the copy of the second is the one to use. The
    # lock's URLs lead nowhere, so only the --find-links copy can install it; a tampered copy of a listed file is
    # refused before anything changes, whichever wheel it is.
    lock = _lock(tmp_path)
    links = tmp_path / "links"
    links.mkdir()
    data = tomllib.loads(lock.read_text())
    for p in data["packages"]:
        for f in p.get("wheels", []):
            if p["name"] != "demo" or f"cp{HERE}-cp{HERE}" in f["name"]:
                shutil.copy(tmp_path / "files" / f["name"], links / f["name"])
            f["url"] = f"file:///nonexistent/{f['name']}"
    lock.write_text(tomli_w.dumps(data))
    for installer in ("pip", "uv"):
        python = _venv(template, tmp_path / f"venv-{installer}")
        result = CliRunner().invoke(main, ["install", "--lock", str(lock), "--python-exe", str(python),
                                           "--installer", installer, "--find-links", str(links)])
        assert result.exit_code == 0, result.output
        assert _which(python) == "target" and "plain==2.0" in _freeze(python), installer
    mine = next(links.glob(f"demo-1.0-cp{HERE}-*.whl"))
    mine.write_bytes(mine.read_bytes() + b"\0")
    python = _venv(template, tmp_path / "venv-tampered")
    before = _freeze(python)
    result = CliRunner().invoke(main, ["install", "--lock", str(lock), "--python-exe", str(python),
                                       "--find-links", str(links)])
    assert result.exit_code == 2 and f"--find-links {mine}" in result.stderr, result.output
    assert _freeze(python) == before
