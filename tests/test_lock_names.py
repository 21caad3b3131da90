"""The names ``gpustack lock`` writes: PEP 751 allows ``pylock.toml`` or ``pylock.<name>.toml`` only, and uv (the real
reader) refuses any other, so ``lock -o a.toml`` is bad input, refused before any work. ``--per-class`` names are
tested with the fleet (tests/test_cli_fleet.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver import lock_resolve
from resolver.cli import main
from test_cli_fleet import _no_network

LOCK = ["lock", "--cpu", "--python", "3.11", "torch==2.13.0", "--no-deps"]


@pytest.mark.parametrize("name", ["pylock.a.toml", "pylock.toml"])
def test_a_lock_named_as_pep_751_says_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _no_network(monkeypatch)
    res = CliRunner().invoke(main, [*LOCK, "-o", str(tmp_path / name)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / name).is_file() and "PEP 751" not in res.stderr


@pytest.mark.parametrize("name, fmt", [("a.toml", "pylock"), ("pylock.a.b.toml", "pylock"), ("pylock", "pylock"),
                                       ("pylock.req.toml", "requirements")])
def test_a_name_uv_will_not_read_as_written_is_bad_input_before_any_work(tmp_path: Path, name: str, fmt: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # it was written with a warning; uv then stopped at it: "`a.toml` is not a valid PEP 751 filename", and a
    # requirements file named pylock.*.toml is read as PEP 751 ("extra `=`")
    def no_solving(*args: object, **kwargs: object) -> None:
        raise AssertionError("solved for a name that is refused")

    monkeypatch.setattr("resolver.cmd_lock._lock", no_solving)
    res = CliRunner().invoke(main, [*LOCK, "--format", fmt, "-o", str(tmp_path / name)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gpustack: -o {tmp_path / name}: ")
    assert ("-o pylock.toml" if fmt == "pylock" else "-o requirements.txt") in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_uv_reads_the_names_written_and_refuses_the_names_refused(tmp_path: Path) -> None:
    """The rule above is uv's: the same PEP 751 lock is read as ``pylock.<name>.toml`` and refused as ``a.toml``."""
    golden = (Path(__file__).parent / "golden" / "lock_gpu.toml").read_text()
    uv = lock_resolve.find_uv()
    assert uv is not None
    env = lock_resolve.isolated_env(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_OFFLINE="1")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], env=env, check=True, capture_output=True)
    said = {}
    for name in ("pylock.gpu.toml", "a.toml", "pylock.a.b.toml"):
        (tmp_path / name).write_text(golden)
        done = subprocess.run([uv, "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"), "-r",
                               str(tmp_path / name)], capture_output=True, text=True, env=env)
        said[name] = (done.returncode, done.stderr)
    assert "not a valid PEP 751 filename" not in said["pylock.gpu.toml"][1]
    for name in ("a.toml", "pylock.a.b.toml"):
        assert said[name][0] != 0 and "not a valid PEP 751 filename" in said[name][1], said[name]
