"""Turning steps into commands: backends, sources, find-links, probes, constraints, dry-run commands."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sys
import pytest
import requests

from resolver import install, installers
from resolver.errors import BadInput
from resolver.installers import Installer, Sources
from resolver.models import Step
from resolver.models import PackageChoice, Plan, Stack, Target

TORCH = Step("install", "torch", "torch==2.1.0+cu121", index_url="https://download.pytorch.org/whl/cu121",
             extra_index_urls=("https://pypi.org/simple",))
XF = Step("install", "xformers", "xformers==0.0.23", index_url="https://pypi.org/simple", no_deps=True,
          constraints=("torch==2.1.0+cu121",))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(installers, "pip_argv", lambda exe: [exe, "-m", "pip"])


def plan(*steps: Step) -> Plan:
    return Plan(Stack(Target((), "3.11", "linux_x86_64"), (PackageChoice("torch", "2.1.0+cu121", "wheel"),)), steps)


def test_source_args_route_each_step() -> None:
    assert install.source_args(TORCH, Sources()) == ["--index-url", TORCH.index_url, "--extra-index-url",
                                                     "https://pypi.org/simple"]
    assert install.source_args(TORCH, Sources(("/w",), offline=True)) == ["--no-index", "--find-links", "/w"]
    dead = Sources(unreachable=frozenset({TORCH.index_url}))
    assert install.source_args(TORCH, dead) == ["--index-url", "https://pypi.org/simple"]


def test_local_file_found_by_pinned_version(tmp_path: Path) -> None:
    (tmp_path / "torch-2.1.0+cu121-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    (tmp_path / "torch-2.2.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    found = Sources((str(tmp_path),)).local_file(TORCH)
    assert found is not None and found.endswith("torch-2.1.0+cu121-cp311-cp311-linux_x86_64.whl")
    assert Sources((str(tmp_path),)).local_file(XF) is None


def test_unreachable_probe_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def head(url: str, **kw: Any) -> None:
        if "pytorch" in url:
            raise requests.ConnectionError("no route")
    monkeypatch.setattr(requests, "head", head)
    with pytest.raises(install.SourceUnreachable) as info:
        install.check_reachable([TORCH], Sources())
    assert str(info.value).count("\n") == 0 and "gpustack download" in str(info.value)
    assert install.check_reachable([XF], Sources()).unreachable == frozenset()


def test_find_links_file_skips_dead_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def head(url: str, **kw: Any) -> None:
        if "pytorch" in url:
            raise requests.ConnectionError("no route")
    monkeypatch.setattr(requests, "head", head)
    (tmp_path / "torch-2.1.0+cu121-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    out = install.check_reachable([TORCH], Sources((str(tmp_path),)))
    assert out.unreachable == frozenset({TORCH.index_url})


def test_file_indexes_are_not_probed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a folder that is there (one that is not is refused: tests/e2e/test_dead_hosts.py)
    monkeypatch.setattr(requests, "head", lambda *a, **k: pytest.fail("probed"))
    install.check_reachable([Step("install", "t", "t==1", index_url=tmp_path.as_uri())], Sources())


@contextmanager
def _recording() -> Iterator[tuple[str, list[str]]]:
    """A live loopback host that answers 404 to everything and records each request's method and path."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802
            seen.append(f"HEAD {self.path}")
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_loopback_mirror_is_named_at_once() -> None:
    # a stopped devpi or http.server mirror on this machine was never probed: pip then retried it for seconds
    dead = f"http://127.0.0.1:{_closed_port()}/whl/cpu"
    with pytest.raises(install.SourceUnreachable) as info:
        install.check_reachable([Step("install", "t", "t==1", index_url=dead)], Sources())
    assert str(info.value).startswith(f"{dead} is not reachable (needed for t==1); {dead.split('/whl')[0]} is on "
                                      "this machine and does not answer: start its server, or fix the URL")


def test_each_host_used_is_probed_once_and_a_host_not_used_never(tmp_path: Path) -> None:
    with _recording() as (live, seen), _recording() as (unused, unused_seen):
        steps = [Step("install", "a", "a==1", index_url=f"{live}/simple", extra_index_urls=(f"{live}/other",)),
                 Step("install", "b", "b==1", index_url=f"{live}/simple"),
                 # its file lies in a find-links folder: its URL is not fetched, so its host is not asked
                 Step("install", "c", "c==1", url=f"{unused}/files/c-1-py3-none-any.whl")]
        (tmp_path / "c-1-py3-none-any.whl").write_bytes(b"")
        out = install.check_reachable(steps, Sources((str(tmp_path),)))
    assert out.unreachable == frozenset() and seen == ["HEAD /"] and unused_seen == []


def test_pip_and_uv_argv() -> None:
    pip = Installer("pip", "/v/bin/python")
    assert pip.install_argv(["a==1"], ["--index-url", "I"], no_deps=True, constraints="/c.txt") == [
        "/v/bin/python", "-m", "pip", "install", "--progress-bar", "off", "--no-deps", "--constraint", "/c.txt",
        "--index-url", "I", "a==1"]
    assert pip.uninstall_argv(["a"])[-3:] == ["uninstall", "-y", "a"]
    uv = Installer("uv", "/v/bin/python")
    argv = uv.reinstall_argv(["-e file:///src", "b==2"])
    assert argv[1:5] == ["pip", "install", "--python", "/v/bin/python"] and argv[-3:] == ["-e", "file:///src", "b==2"]
    assert "--reinstall" in argv and "--no-deps" in argv


def test_choose_backend() -> None:
    assert install.choose_backend("pip") == "pip"
    with pytest.raises(BadInput):
        install.choose_backend("conda")


def test_commands_put_torch_first_and_show_builds() -> None:
    build = Step("build", "flash-attn", "flash-attn==2.8.3", index_url="https://pypi.org/simple", no_deps=True,
                 constraints=("torch==2.1.0+cu121",), env={"FLASH_ATTN_CUDA_ARCHS": "90"})
    cmds = install.commands(plan(XF, build, TORCH), Installer("pip", "/v/bin/python"), Sources())
    assert [(c.package, c.kind) for c in cmds] == [("torch", "install"), ("xformers", "install"),
                                                   ("flash-attn", "build"), ("flash-attn", "install")]
    wheel = cmds[2].argv
    assert wheel[3:8] == ["wheel", "--no-build-isolation", "--no-deps", "--no-binary", "flash-attn"]
    assert cmds[2].env == {"FLASH_ATTN_CUDA_ARCHS": "90"}
    assert cmds[3].argv[-1] == "<built wheel>" and "torch==2.1.0+cu121" in cmds[3].note
    assert cmds[0].to_dict()["package"] == "torch" and "PYTHONUNBUFFERED=1" in cmds[0].shell()


def test_restore_args_collect_plan_indexes() -> None:
    assert install.restore_args(plan(TORCH, XF), Sources(("/w",))) == [
        "--index-url", TORCH.index_url, "--extra-index-url", "https://pypi.org/simple", "--find-links", "/w"]


def test_torch_matches_local_tags() -> None:
    assert install.torch_matches("2.14.1+cu130", "2.14.1", "2.14.1+cu130")
    assert install.torch_matches("2.1.0+cu121", "2.1.0+cu121", None)
    assert not install.torch_matches("2.1.0+cu121", "2.2.0", "2.2.0")


def test_promised_backends() -> None:
    p = Plan(Stack(Target((), "3.11", "linux_x86_64"), (PackageChoice("torch", "2.1.0", "wheel"),
                                                          PackageChoice("xformers", "0.0.23", "wheel"))), ())
    assert install.promised_backends(p) == ["sdpa", "xformers"]


def test_install_refuses_a_python_other_than_the_environments() -> None:
    """`install --python 3.10` into a 3.11 interpreter would plan wheels that cannot install: refused, exit 2."""
    from click.testing import CliRunner

    from resolver.cli import main

    other = "3.10" if sys.version_info[:2] != (3, 10) else "3.12"
    result = CliRunner().invoke(main, ["install", "--dry-run", "--gpu", "A100", "--python", other, "torch"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"gpustack: --python {other} does not match ")


def test_uv_gets_the_planned_index_first_and_best_match() -> None:
    pip_style = ["--index-url", "https://download.pytorch.org/whl/cu121", "--extra-index-url",
                 "https://pypi.org/simple", "--find-links", "/w"]
    assert installers.uv_source_args(pip_style) == [
        "--index", "https://download.pytorch.org/whl/cu121", "--index", "https://pypi.org/simple",
        "--default-index", "https://pypi.org/simple", "--index-strategy", "unsafe-best-match", "--find-links", "/w"]
    assert installers.uv_source_args(["--index-url", "https://pypi.org/simple"]) == [
        "--index", "https://pypi.org/simple", "--default-index", "https://pypi.org/simple"]
    assert installers.uv_source_args(["--no-index", "--find-links", "/w"]) == ["--no-index", "--find-links", "/w"]
    # the user's UV_INDEX, which uv drops when the command line names --index: after the plan's, the default kept
    assert installers.uv_source_args(["--index-url", "https://m.example/simple"], ["https://u.example/simple"]) == [
        "--index", "https://m.example/simple", "--index", "https://u.example/simple",
        "--default-index", "https://m.example/simple", "--index-strategy", "unsafe-best-match"]
    assert installers.uv_source_args(["--no-index"], ["https://u.example/simple"]) == ["--no-index"]


def test_exact_requirement_adds_the_index_label() -> None:
    xf_index = Step("install", "xformers", "xformers==0.0.23", index_url="https://download.pytorch.org/whl/cu121/",
                    extra_index_urls=("https://pypi.org/simple",))
    p = Plan(Stack(Target((), "3.11", "linux_x86_64"), (
        PackageChoice("torch", "2.1.0+cu121", "wheel"),
        PackageChoice("xformers", "0.0.23", "wheel", index_url="https://download.pytorch.org/whl/cu121",
                      variant="cu121"))), (xf_index,))
    assert install.exact_requirement(xf_index, p) == "xformers==0.0.23+cu121"
    assert install.exact_requirement(XF, p) == "xformers==0.0.23"  # PyPI's build has no label
    assert installers.index_variant("https://mirror.example/whl/rocm6.1") == "rocm6.1"
    assert installers.index_variant("https://pypi.org/simple") is None


@pytest.mark.parametrize("given", [["--plan", "{missing}"], ["--plan", "{bad}"], ["--lock", "{missing}"],
                                   ["--lock", "{bad}"]])
def test_a_bad_plan_or_lock_creates_no_venv_and_starts_no_interpreter(tmp_path: Path, given: list[str]) -> None:
    # The files given are read first: a bad one is one line and exit 2, before `--venv DIR` is created or a target
    # interpreter is asked anything (an interpreter that is not a venv is asked its prefix in a child).
    import subprocess

    bad = tmp_path / "bad.txt"
    bad.write_text("not json, not toml = = =\n")
    names = {"missing": str(tmp_path / "missing.json"), "bad": str(bad)}
    args = [a.format(**names) for a in given]
    venv = tmp_path / "new-venv"
    done = subprocess.run([sys.executable, "-m", "resolver", "install", "--venv", str(venv), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and args[0] in done.stderr, done.stderr
    assert not venv.exists()
    started = tmp_path / "started"
    fake = tmp_path / "python"  # not a venv's, not gpustack's: its prefix would be asked in a child
    fake.write_text(f"#!/bin/sh\ntouch {started}\nexec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    done = subprocess.run([sys.executable, "-m", "resolver", "install", "--python-exe", str(fake), "--dry-run", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and args[0] in done.stderr, done.stderr
    assert not started.exists()


@pytest.mark.parametrize("given", [["numpy>="], ["-r", "{fifo}"], ["-r", "{options}"], ["--profile", "nope"],
                                   ["--platform", "win_amd64", "torch"], ["--python", "3.9", "torch"]])
def test_bad_input_into_a_new_venv_is_one_line_and_creates_nothing(tmp_path: Path, given: list[str]) -> None:
    # The venv was created first, then removed again as the request was refused: 3 lines, not 1; `--python 3.12`
    # made a venv of this Python and then refused it as "not matching" 3.12.
    import os
    import subprocess

    fifo = tmp_path / "reqs.fifo"
    os.mkfifo(fifo)
    options = tmp_path / "options.txt"
    options.write_text("numpy --hash=sha256:00\n")
    args = [a.format(fifo=fifo, options=options) for a in given]
    venv = tmp_path / "deep" / "new-venv"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # no python3.9 to be found besides uv's
    # (a FIFO is refused as not a regular file; an option line is not a requirement)
    done = subprocess.run([sys.executable, "-m", "resolver", "install", "--cpu", "--venv", str(venv), *args],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "creating" not in done.stderr and not (tmp_path / "deep").exists(), done.stderr
    if "--python" in given:
        assert "no Python 3.9 interpreter found" in done.stderr and "uv python install 3.9" in done.stderr


def _other_python() -> tuple[str, str] | None:
    """Return (X.Y, folder of a pythonX.Y that runs) of a Python other than this one, if this machine has one."""
    import glob
    import os
    import shutil
    import subprocess

    here = "%d.%d" % sys.version_info[:2]
    for v in ("3.12", "3.13", "3.10"):
        for exe in [shutil.which(f"python{v}"), *glob.glob(os.path.expanduser(f"~/.pyenv/versions/{v}*/bin/python{v}"))]:
            if exe and v != here and subprocess.run([exe, "-c", ""], capture_output=True).returncode == 0:
                return v, os.path.dirname(exe)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_a_new_venv_is_made_with_the_python_asked_for(tmp_path: Path, backend: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess

    from click.testing import CliRunner

    from resolver.cli import main
    from resolver.venvs import base_python, create_venv, venv_python

    other = _other_python()
    if other is None:
        pytest.skip("no Python other than this one on this machine")
    version, folder = other
    monkeypatch.setenv("PATH", folder + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    out = CliRunner().invoke(main, ["install", "--cpu", "torch", "--python", version, "--venv", str(tmp_path / "d"),
                                    "--dry-run", "--installer", backend])
    assert f"planning for the Python {version} it would hold" in out.output, out.output
    base = base_python(version)
    create_venv(str(tmp_path / "v"), backend, base)
    got = subprocess.run([venv_python(str(tmp_path / "v")), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == version


def test_mirrors_move_the_index_a_step_names_in_its_text_too() -> None:
    # the progress line said "from https://download.pytorch.org/whl/cpu" when the mirror was used
    from resolver.installers import with_mirrors
    from resolver.models import PackageChoice, Plan, Stack, Step, Target

    step = Step("install", "torch", "torch==2.13.0+cpu", index_url="https://download.pytorch.org/whl/cpu",
                description="install torch 2.13.0+cpu from https://download.pytorch.org/whl/cpu")
    plan = Plan(Stack(Target(gpus=(), python="3.11", platform="linux_x86_64"),
                      (PackageChoice("torch", "2.13.0+cpu", "wheel"),)), (step,))
    moved = with_mirrors(plan, "https://mirror.example/whl", None).steps[0]
    assert moved.index_url == "https://mirror.example/whl/cpu"
    assert moved.description == "install torch 2.13.0+cpu from https://mirror.example/whl/cpu"


def test_a_dry_run_over_an_unfinished_transaction_refuses_as_the_run_does(tmp_path: Path) -> None:
    # the dry run exited 0 and warned twice, where the real run refuses (exit 1): what it printed could not run
    import json
    import subprocess

    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    (venv / ".gpustack").mkdir()
    (venv / ".gpustack" / "transaction.json").write_text(json.dumps(
        {"pid": dead.pid, "state": "running", "started": 0, "step": "[1/1] install torch"}))
    runs = [subprocess.run([sys.executable, "-m", "resolver", "install", "--cpu", "torch", "--venv", str(venv), *dry],
                           capture_output=True, text=True, timeout=120) for dry in (["--dry-run"], [])]
    for done in runs:
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert f"by pid {dead.pid}, no longer running" in done.stderr and "gpustack recover" in done.stderr
        assert done.stdout == ""
