"""``install --lock`` into an environment that holds more than the lock, with the real pip and uv on the loopback
indexes of ``test_offline`` (the lock written by the real ``gpustack lock``): what the closing line claims is what
the environment holds."""

from __future__ import annotations

import shutil
import tomllib
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
            f"which the lock does not list: {', '.join(others[:5])} and {len(others) - 5} more (--exact removes them)") \
        in done.output, done.output
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


def test_a_lock_holding_an_sdist_says_so_and_uv_installs_it_as_its_header_says(up: Served, template_venv: Path,
                                                                              tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # srconly is published as an sdist only: the lock holds that sdist, and its header said "every file is a hashed
    # wheel". Each claim the header makes now is checked here with the real `uv pip install -r pylock.toml`.
    import subprocess

    from conftest import freeze
    from resolver.uvbin import find_uv
    from test_offline import HERE, download, write_plan

    uv = find_uv()
    if uv is None:
        pytest.skip("uv is not installed here")
    lock = tmp_path / "pylock.toml"
    done = gpustack("lock", "--cpu", "--python", HERE, "--platform", "linux_x86_64", "torch==2.13.0", "srconly",
                    "--torch-index-url", up.torch_mirror, "--index-url", up.pypi, "-o", str(lock))
    assert done.exit_code == 0, done.output
    text = lock.read_text()
    header = text[:text.index("lock-version")]
    assert "hashed wheel" not in header, header
    assert "installs it too (every file is hashed: wheels, and the sdists below)" in header, header
    assert "# Locked as an sdist (no wheel for the target): srconly 1.0. Installers build it with\n" in header, header
    assert "which this lock does not hold" in header, header
    folder = tmp_path / "wheelhouse"  # what `gpustack download` gives for the same request: the build backend too
    assert download(up, write_plan(up, tmp_path / "plan.json", "srconly"), folder).exit_code == 0
    want = ["srconly==1.0", "tinypkg==1.0", "torch==2.13.0+cpu", "typing-extensions==4.12.2"]

    def uv_install(name: str, *args: str, path: Path = lock) -> tuple[subprocess.CompletedProcess[str], Path]:
        python = shutil.copytree(template_venv, tmp_path / name, symlinks=True) / "bin" / "python"
        monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / f"uv-cache-{name}"))  # each builds srconly anew
        return subprocess.run([uv, "pip", "install", "--python", str(python), "-r", str(path), *args],
                              capture_output=True, text=True), python

    base = freeze(template_venv / "bin" / "python")
    # the build requirements are not in the lock: given nothing else, uv finds no fake-backend and installs nothing
    bare, python = uv_install("bare")
    assert bare.returncode != 0 and "fake-backend" in bare.stderr and "srconly" in bare.stderr, bare.stderr
    assert freeze(python) == base
    # given the index (or the downloaded folder), uv builds the sdist and installs exactly the lock
    for name, args in (("index", ["--index-url", up.pypi]), ("folder", ["--no-index", "--find-links", str(folder)])):
        ok, python = uv_install(name, *args)
        assert ok.returncode == 0, ok.stderr
        assert "Built srconly==1.0" in ok.stderr, ok.stderr
        assert sorted(set(freeze(python)) - set(base)) == want
    # the sdist is hashed: a lock whose sdist hash was changed is refused, nothing installed
    sha = next(p["sdist"]["hashes"]["sha256"] for p in tomllib.loads(text)["packages"] if p["name"] == "srconly")
    bad = tmp_path / "pylock.tampered.toml"  # uv reads a lock only by a PEP 751 name
    bad.write_text(text.replace(sha, "0" * 64))
    refused, python = uv_install("tampered", "--index-url", up.pypi, path=bad)
    assert refused.returncode != 0 and "0" * 64 in refused.stderr and sha in refused.stderr, refused.stderr
    assert freeze(python) == base


def test_offline_lock_install_says_the_same_thing_of_the_hosts_with_pip_and_uv(up: Served, venv: Path,
                                                                               tmp_path: Path) -> None:
    # the refusal (pip) and the note (uv) each built "HOSTS not used (--offline)" / "did not answer" themselves;
    # one place (lock_install._unused) now says it for both
    lock = write_lock(up, tmp_path / "pylock.toml")
    host = up.pypi.split("/simple")[0]
    refused = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", "pip", "--offline")
    assert refused.exit_code == 1, refused.output
    assert f"{host} not used (--offline) and pip keeps no copy of " in refused.output, refused.output
    first = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", "uv")
    assert first.exit_code == 0, first.output  # uv's cache now holds the files
    again = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", "uv", "--offline")
    assert again.exit_code == 0, again.output
    assert f"{host} not used (--offline): uv installs the lock's files from its cache" in again.output, again.output


def _with_extras(venv: Path, tmp_path: Path, *, broken: str | None = None) -> list[str]:
    """Install ``EXTRAS`` (and ``broken``: a distribution whose RECORD is gone, which neither pip nor uv can
    uninstall) into ``venv``; return ``freeze`` of it."""
    from conftest import freeze

    for req in EXTRAS + ([f"{broken}==1.0"] if broken else []):
        name, version = req.split("==")
        pip(venv, "install", "-q", "--no-index", str(fakewheels.make_wheel(tmp_path / "extra", name, version)))
    if broken:
        next(venv.parent.parent.glob(f"lib/python3*/site-packages/{broken.replace('-', '_')}-1.0.dist-info/RECORD")
             ).unlink()
    return freeze(venv)


@pytest.mark.parametrize("backend", BACKENDS)
def test_install_lock_exact_removes_what_the_lock_does_not_list_in_the_same_transaction(
        up: Served, venv: Path, tmp_path: Path, backend: str) -> None:
    _with_extras(venv, tmp_path)
    others = sorted(envstate.snapshot(str(venv)).dists)
    lock = write_lock(up, tmp_path / "pylock.toml")
    dry = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", backend, "--exact",
                   "--dry-run")
    assert dry.exit_code == 0 and set(envstate.snapshot(str(venv)).dists) == set(others), dry.output
    gone = [n for n in others if n != "pip"]
    assert f"--exact would remove {len(gone)} installed package(s) the lock does not list: {', '.join(gone)}" \
        in dry.output, dry.output
    done = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", backend, "--exact")
    assert done.exit_code == 0, done.output
    assert (f"installed the 3 packages of {lock} exactly into {venv}; removed the {len(gone)} other packages it held, "
            f"which the lock does not list: {', '.join(gone[:5])}") in done.output, done.output
    assert "; kept pip (the environment's installer)" in done.output, done.output
    assert sorted(envstate.snapshot(str(venv)).dists) == ["pip", "tinypkg", "torch", "typing-extensions"]
    assert locked_part(venv) == LOCKED
    assert not (venv.parent.parent / ".gpustack" / "transaction.json").exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_install_lock_exact_whose_removal_fails_restores_everything(up: Served, venv: Path, tmp_path: Path,
                                                                    backend: str) -> None:
    # zzz-broken has no RECORD: the installer removes what it can, then fails; the transaction puts back every
    # package removed (from its backup) and takes the lock's packages out again
    from conftest import freeze

    before = _with_extras(venv, tmp_path, broken="zzz-broken")
    lock = write_lock(up, tmp_path / "pylock.toml")
    done = gpustack("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", backend, "--exact")
    assert done.exit_code != 0, done.output
    assert "environment restored: reinstalled alpha-extra 1.0; reinstalled beta-extra 2.0;" in done.output, done.output
    assert "removed tinypkg 1.0; removed torch 2.13.0+cpu; removed typing-extensions 4.12.2" in done.output
    assert "Traceback" not in done.output, done.output
    assert freeze(venv) == before
    assert not (venv.parent.parent / ".gpustack" / "transaction.json").exists()


def test_exact_without_a_lock_is_refused(tmp_path: Path) -> None:
    done = gpustack("install", "torch==2.13.0", "--cpu", "--exact", "--python-exe", str(tmp_path / "none"))
    assert done.exit_code == 2 and done.output.count("\n") == 1, done.output
    assert "--exact goes with --lock FILE" in done.output and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_install_lock_exact_stopped_by_a_signal_while_it_removes_restores_everything(up: Served, venv: Path,
                                                                                    tmp_path: Path) -> None:
    # SIGTERM while pip uninstalls what the lock does not list (uv's uninstall is too quick to catch): the
    # transaction's signal handling stops it and puts everything back, as for an install step
    import signal

    from conftest import freeze
    from test_faults import children, gpustack as gpustack_process, wait_for

    before = _with_extras(venv, tmp_path)
    lock = write_lock(up, tmp_path / "pylock.toml")
    proc = gpustack_process("install", "--lock", str(lock), "--python-exe", str(venv), "--installer", "pip", "--exact",
                            cache=tmp_path / "cache")

    def uninstalling() -> bool:
        for c in children(proc.pid):
            try:
                if b" uninstall " in Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" "):
                    return True
            except OSError:
                continue
        return False

    wait_for(uninstalling)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "environment restored" in out and "RESTORE INCOMPLETE" not in out, out
    assert freeze(venv) == before
    assert not (venv.parent.parent / ".gpustack" / "transaction.json").exists()
