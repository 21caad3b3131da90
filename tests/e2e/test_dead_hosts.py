"""A mirror on this machine that stops answering (a stopped devpi or ``http.server``): plan install, lock,
``install --lock`` and download each name it in one line before pip or uv runs (they retried it for seconds and
then named no host, or the wrong one), with the real pip and uv on the loopback indexes of ``test_offline``, stopped.
One rule decides what is asked (``installers.silent_hosts``): each host a command will fetch from, once, loopback
included; the same indexes answering, each command works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import freeze
from test_offline import HERE, Served, gpustack, served, up, write_lock, write_plan  # noqa: F401 (fixtures)

BACKENDS = ["pip", "uv"]


def _one_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_install_names_a_stopped_loopback_mirror_before_the_installer_runs(up: Served, venv: Path,
                                                                               backend: str) -> None:
    args = ["install", "--cpu", "torch==2.13.0", "--torch-index-url", up.torch_mirror, "--index-url", up.pypi,
            "--python-exe", str(venv), "--installer", backend]
    before = freeze(venv)
    up.server.stop()
    done = gpustack(*args)
    assert done.exit_code == 1, done.output  # the network, not the input
    host = up.torch_mirror.split("/whl")[0]  # on this machine: the next step is to start it, not to go elsewhere
    assert _one_line(done.output) == (f"gpustack: {up.torch_mirror}/cpu is not reachable (needed for torch==2.13.0+cpu)"
                                      f"; {host} is on this machine and does not answer: start its server, or fix the "
                                      "URL"), done.output
    assert freeze(venv) == before  # no installer ran (its retries, then "environment restored")
    up.server.start()
    done = gpustack(*args)
    assert done.exit_code == 0, done.output


def test_lock_names_a_stopped_loopback_mirror_before_the_resolver_runs(up: Served, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver import lock_uv

    waited = []
    monkeypatch.setattr(lock_uv.UvRun, "result", lambda self: waited.append(self) or pytest.fail("uv was waited for"))
    up.server.stop()
    out = tmp_path / "out" / "pylock.toml"
    out.parent.mkdir()
    done = gpustack("lock", "--cpu", "--python", HERE, "--platform", "linux_x86_64", "torch==2.13.0",
                    "--torch-index-url", up.torch_mirror, "--index-url", up.pypi, "-o", str(out))
    assert done.exit_code == 1, done.output
    host = up.pypi.split("/")[2]
    said = _one_line(done.output)
    assert said.startswith(f"gpustack: cannot reach {host} ({up.pypi}, the index of the dependencies); ") and \
        said.endswith("it is on this machine: start its server, or fix the URL; nothing written"), said
    assert not out.exists() and not waited
    up.server.start()
    monkeypatch.undo()
    assert write_lock(up, out).exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_install_lock_and_download_name_a_stopped_loopback_mirror(up: Served, template_venv: Path, tmp_path: Path,
                                                                  backend: str) -> None:
    lock = write_lock(up, tmp_path / "pylock.toml")
    plan = write_plan(up, tmp_path / "plan.json", "tinypkg")
    fresh = shutil.copytree(template_venv, tmp_path / "fresh", symlinks=True) / "bin" / "python"
    before = freeze(fresh)
    up.server.stop()
    dest = tmp_path / "wheelhouse"
    done = gpustack("download", "--plan", str(plan), "--dest", str(dest), "--torch-index-url", up.torch_mirror,
                    "--index-url", up.pypi)
    assert done.exit_code == 1 and not dest.exists(), done.output
    said = _one_line(done.output)
    assert " is not reachable (needed for " in said and up.torch_mirror.split("/whl")[0] in said, done.output
    assert said.endswith("is on this machine and does not answer: start its server, or fix the URL; nothing "
                         "downloaded"), said
    if backend == "pip":  # pip keeps no copy: refused before it runs, naming the host
        done = gpustack("install", "--lock", str(lock), "--python-exe", str(fresh), "--installer", backend)
        assert done.exit_code == 1 and freeze(fresh) == before, done.output
        assert f"{up.pypi.split('/simple')[0]} did not answer" in done.output, done.output
    up.server.start()
    assert gpustack("download", "--plan", str(plan), "--dest", str(dest), "--torch-index-url", up.torch_mirror,
                    "--index-url", up.pypi).exit_code == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_file_mirror_that_is_not_there_is_named_before_the_installer_runs(up: Served, venv: Path, tmp_path: Path,
                                                                            backend: str) -> None:
    # pip and uv skip a file: index whose folder is missing with a warning, then find nothing: the install ran,
    # failed on "no matching distribution" and restored; download failed the same way
    missing = tmp_path / "not-there" / "whl"
    args = ["--cpu", "torch==2.13.0", "--torch-index-url", missing.as_uri(), "--index-url", up.pypi]
    before = freeze(venv)
    done = gpustack("install", *args, "--python-exe", str(venv), "--installer", backend)
    assert done.exit_code == 1 and freeze(venv) == before, done.output
    assert _one_line(done.output) == (f"gpustack: {missing.as_uri()}/cpu is not reachable (needed for "
                                      f"torch==2.13.0+cpu); no folder {missing}/cpu on this machine: fix the URL, or "
                                      "put the index there")
    dest = tmp_path / "wheelhouse"
    done = gpustack("download", *args, "--dest", str(dest))
    assert done.exit_code == 1 and not dest.exists(), done.output
    assert _one_line(done.output).endswith("fix the URL, or put the index there; nothing downloaded")
    shutil.copytree(up.root / "whl", missing)  # the folder in place, the same command installs
    assert gpustack("install", *args, "--python-exe", str(venv), "--installer", backend).exit_code == 0


def test_localhost_and_ipv6_loopback_are_this_machine() -> None:
    from resolver.installers import on_this_machine

    assert all(on_this_machine(u) for u in ("http://localhost:8000/simple", "http://127.0.0.2/simple",
                                            "http://[::1]:3141/root/pypi", "file:///srv/whl"))
    assert not any(on_this_machine(u) for u in ("https://pypi.org/simple", "http://10.0.0.5/simple",
                                                "http://localhost.example.com/simple"))
