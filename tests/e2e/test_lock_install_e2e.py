"""``install --lock`` into an environment that holds more than the lock, with the real pip and uv on the loopback
indexes of ``test_offline`` (the lock written by the real ``gpustack lock``): what the closing line claims is what
the environment holds."""

from __future__ import annotations

from pathlib import Path

import pytest

import fakewheels
from conftest import pip
from resolver import envstate
from test_offline import BACKENDS, LOCKED, Served, gpustack, locked_part, served, up, write_lock  # noqa: F401

EXTRAS = ["alpha-extra==1.0", "beta-extra==2.0", "gamma-extra==3.0"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_install_lock_names_what_it_left_instead_of_saying_the_environment_is_the_lock(up: Served, venv: Path,
                                                                                       tmp_path: Path,
                                                                                       backend: str) -> None:
    # It said "installed exactly pylock.toml into .../python" while the environment kept packages the lock does
    # not list: read as "the environment is the lock", which it was not.
    for req in EXTRAS:
        name, version = req.split("==")
        pip(venv, "install", "-q", "--no-index", str(fakewheels.make_wheel(tmp_path / "extra", name, version)))
    before = envstate.snapshot(str(venv))
    others = sorted(before.dists)  # the extras and the venv's own pip, setuptools, wheel: none is locked
    assert {"alpha-extra", "beta-extra", "gamma-extra", "pip"} <= set(others) and len(others) > 5
    lock = write_lock(up, tmp_path / "pylock.toml")
    done = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", backend)
    assert done.exit_code == 0, done.output
    assert "installed exactly" not in done.output
    assert (f"installed the 3 packages of {lock} exactly into {venv}; left the {len(others)} other packages it holds, "
            f"which the lock does not list: {', '.join(others[:5])} and {len(others) - 5} more") in done.output, \
        done.output
    after = envstate.snapshot(str(venv))
    assert locked_part(venv) == LOCKED
    assert {k: after.version(k) for k in others} == {k: before.version(k) for k in others}  # left as they were
    assert set(after.dists) == set(others) | {"tinypkg", "torch", "typing-extensions"}


def test_install_lock_into_an_environment_that_is_then_exactly_the_lock_says_so(up: Served, tmp_path: Path) -> None:
    # a uv venv holds no pip: after the install it is the lock, and the line says it holds nothing else
    import subprocess

    from resolver.uvbin import find_uv

    uv = find_uv()
    if uv is None:
        pytest.skip("uv is not installed here")
    subprocess.run([uv, "venv", "-q", str(tmp_path / "bare")], check=True)
    python = tmp_path / "bare" / "bin" / "python"
    lock = write_lock(up, tmp_path / "pylock.toml")
    done = gpustack("install", "--lock", str(lock), "--python-exe", str(python), "--installer", "uv")
    assert done.exit_code == 0, done.output
    assert f"installed the 3 packages of {lock} exactly into {python}; it holds nothing else" in done.output, \
        done.output
    assert envstate.snapshot(str(python)).freeze() == LOCKED
