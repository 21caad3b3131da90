"""The environment read while ``gpustack install`` starts (``resolver.read_ahead``) is used only while it is true.

Real venvs, real child readings: a change made after the child read (a distribution added, one removed) must be in
what ``take`` returns, and a reading of another interpreter is never handed out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from resolver import read_ahead
from resolver.target import read_target, still_current


def _venv(path: Path) -> tuple[str, Path]:
    venv.create(path, with_pip=False)
    site = next((path / "lib").glob("python*/site-packages"))
    return str(path / "bin" / "python"), site


def _add_dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def _age(site: Path) -> None:
    """Set the folder's modification time a minute back: a reading taken now is then not racy."""
    old = time.time() - 60
    os.utime(site, (old, old))


def _wait_for_child() -> None:
    current = read_ahead._current
    assert current is not None, "no reading was started"
    current.thread.join(60)


@pytest.fixture(autouse=True)
def _stop_reading() -> object:
    yield
    read_ahead.end()


def test_a_reading_with_nothing_changed_since_is_taken_as_is(tmp_path: Path) -> None:
    python, site = _venv(tmp_path / "v")
    _add_dist(site, "alpha", "1.0")
    _age(site)
    read_ahead.begin(["--plan", "p.json", "--python-exe", python])
    _wait_for_child()
    started = time.time_ns()
    facts = read_ahead.take(python)
    assert facts is not None and facts.read_at < started  # the child's own reading, not a new one
    assert still_current(facts)
    assert facts.dists["alpha"][0] == "1.0"
    assert facts.dists == read_target(python, "installed").dists
    assert read_ahead.take(python) is None  # used up


@pytest.mark.parametrize("change", ["add", "remove", "replace"])
def test_a_change_after_the_reading_is_in_what_take_returns(tmp_path: Path, change: str) -> None:
    python, site = _venv(tmp_path / "v")
    _add_dist(site, "alpha", "1.0")
    _age(site)
    read_ahead.begin(["--python-exe", python])
    _wait_for_child()
    if change == "add":
        _add_dist(site, "beta", "2.0")
    elif change == "remove":
        for f in (site / "alpha-1.0.dist-info").iterdir():
            f.unlink()
        (site / "alpha-1.0.dist-info").rmdir()
    else:  # the same folder name, put there anew: a reinstall from another file
        (site / "alpha-1.0.dist-info").rename(site / "~lpha-1.0.dist-info")
        _add_dist(site, "alpha", "1.0")
        (site / "alpha-1.0.dist-info" / "direct_url.json").write_text('{"url": "file:///w/alpha-1.0-py3-none-any.whl"}')
    facts = read_ahead.take(python)
    assert facts is not None
    assert facts.dists == read_target(python, "installed").dists
    expected = {"add": {"alpha", "beta"}, "remove": set(), "replace": {"alpha"}}[change]
    assert set(facts.dists) == expected
    if change == "replace":
        assert facts.dists["alpha"][1] == "file:///w/alpha-1.0-py3-none-any.whl"


def test_a_folder_changed_within_a_clock_tick_of_the_reading_proves_nothing(tmp_path: Path) -> None:
    from dataclasses import replace

    python, site = _venv(tmp_path / "v")
    _age(site)
    facts = read_target(python, "installed")
    assert still_current(facts)
    mtime = os.stat(site).st_mtime_ns
    # a change 5 ms before the reading began: one in the same tick after it could have left the time as it was
    assert not still_current(replace(facts, read_at=mtime + 5_000_000))
    assert still_current(replace(facts, read_at=mtime + 100_000_000))
    # a file system that keeps whole seconds: two seconds
    whole = (mtime // 1_000_000_000 - 10) * 1_000_000_000
    os.utime(site, ns=(whole, whole))
    stamped = replace(facts, stamps={str(site): (whole, os.stat(site).st_ino)})
    assert not still_current(replace(stamped, read_at=whole + 1_000_000_000))
    assert still_current(replace(stamped, read_at=whole + 3_000_000_000))
    # a time in the future of the reading (another clock): nothing proven
    future = time.time_ns() + 5_000_000_000
    os.utime(site, ns=(future, future))
    assert not still_current(read_target(python, "installed"))


def test_a_site_folder_that_appears_later_is_a_change(tmp_path: Path) -> None:
    from dataclasses import replace

    python, site = _venv(tmp_path / "v")
    _age(site)
    facts = read_target(python, "installed")
    later = tmp_path / "v" / "lib64-site-packages"  # as a platlib apart from purelib that did not exist yet
    facts = replace(facts, stamps={**facts.stamps, str(later): (-1, -1)})
    assert still_current(facts)
    later.mkdir()
    assert not still_current(facts)


def test_a_reading_of_another_interpreter_is_not_handed_out(tmp_path: Path) -> None:
    python_a, site_a = _venv(tmp_path / "a")
    python_b, _ = _venv(tmp_path / "b")
    _age(site_a)
    read_ahead.begin(["--python-exe", python_a])
    assert read_ahead.take(python_b) is None
    assert read_ahead._current is None  # and the child was stopped


@pytest.mark.parametrize("args, expected", [
    (["--python-exe", "{py}"], "{py}"),
    (["--python-exe={py}", "--plan", "x"], "{py}"),
    (["--venv", "{venv}"], "{py}"),
    (["--venv={venv}"], "{py}"),
    (["--python-exe", "{py}", "--dry-run"], None),
    (["--help"], None),
    (["--python-exe", "{missing}"], None),
    (["--venv", "{missing}"], None),
    (["--python-exe", "python3"], None),  # a bare name: the command looks it up; no reading ahead
    ([], sys.executable),
])
def test_the_interpreter_of_a_command_line(tmp_path: Path, args: list[str], expected: str | None) -> None:
    python, _ = _venv(tmp_path / "v")
    names = {"py": python, "venv": str(tmp_path / "v"), "missing": str(tmp_path / "nope")}
    assert read_ahead.interpreter_of([a.format(**names) for a in args]) == \
        (expected.format(**names) if expected else None)


def test_bad_input_with_a_reading_started_changes_nothing(tmp_path: Path) -> None:
    python, site = _venv(tmp_path / "v")
    before = sorted(p.name for p in (tmp_path / "v").rglob("*"))
    done = subprocess.run([sys.executable, "-m", "resolver", "install", "--python-exe", python, "--plan",
                           str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--plan" in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "v").rglob("*")) == before


def test_a_reading_begun_for_the_same_command_line_is_kept(tmp_path: Path) -> None:
    # resolver.start begins it before click is imported; resolver.cli begins again with the same arguments
    python, _ = _venv(tmp_path / "v")
    read_ahead.begin(["--python-exe", python, "--plan", "p.json"])
    first = read_ahead._current
    read_ahead.begin(["--python-exe", python, "--plan", "p.json"])
    assert read_ahead._current is first
    read_ahead.begin(["--python-exe", python, "--plan", "other.json"])
    assert read_ahead._current is not first and first is not None and first.proc.poll() is not None


def _uv_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    return dict(os.environ)


@pytest.mark.parametrize("installer, warmed", [(None, True), ("auto", True), ("uv", True), ("pip", False)])
def test_uv_reads_the_interpreter_beside_the_reading_when_uv_will_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str | None, warmed: bool) -> None:
    from resolver.uvbin import find_uv

    uv = find_uv()
    assert uv is not None, "uv is a dependency of gpustack"
    env = _uv_env(tmp_path, monkeypatch)
    python, _ = _venv(tmp_path / "v")
    read_ahead.begin(["--python-exe", python, *(["--installer", installer] if installer else [])])
    warm = read_ahead._warm
    assert (warm is not None) == warmed
    if warm is None:
        return
    assert warm.wait(60) == 0
    # what it is for: the install's own uv command on that interpreter finds uv's record of it and skips the query
    done = subprocess.run([uv, "pip", "install", "--dry-run", "--offline", "--python", python, "--no-index",
                           "--find-links", str(tmp_path), "pip-nothing-to-find-here-xyz"], capture_output=True,
                          text=True, env={**env, "RUST_LOG": "uv_python=trace"}, timeout=120)
    assert "Found cached interpreter info" in done.stderr, done.stderr[-2000:]
    read_ahead.end()
    assert read_ahead._warm is None and warm.returncode == 0


def test_no_uv_reading_without_an_environment_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _uv_env(tmp_path, monkeypatch)
    python, _ = _venv(tmp_path / "v")
    for args in (["--python-exe", python, "--dry-run"], ["--python-exe", str(tmp_path / "nope")], ["--help"]):
        read_ahead.begin(args)
        assert read_ahead._current is None and read_ahead._warm is None, args
    assert not (tmp_path / "uv-cache").exists()


def test_a_uv_reading_still_running_at_the_end_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _uv_env(tmp_path, monkeypatch)
    python, _ = _venv(tmp_path / "v")
    read_ahead.begin(["--python-exe", python])
    warm = read_ahead._warm
    assert warm is not None
    read_ahead.end()
    assert warm.returncode is not None  # reaped: stopped, or already done
