"""End to end: real pip and uv, real venvs, a local index. Routing, order, the torch-swap guard, rollback after a
killed installer or a failed build, offline installs, the CLI's dry run; then real torch (CPU) and a real CUDA build.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import LocalIndex, freeze, pip
import fakewheels
from resolver import _subprocess, envstate
from resolver.cli import main
from resolver.install import Installer, InstallFailed, Sources, SourceUnreachable, execute, restore_args
from resolver.models import PYPI_SIMPLE, PackageChoice, Plan, Stack, Step, Target
from resolver.report import Reporter

BACKENDS = ["pip", "uv"]


class Recorder(Reporter):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.messages: list[str] = []

    def step_started(self, index: int, total: int, description: str) -> None:
        self.started.append(description)

    def message(self, text: str) -> None:
        self.messages.append(text)


def make_plan(torch: str, steps: list[Step]) -> Plan:
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    stack = Stack(target, (PackageChoice("torch", torch, "wheel"),))
    return Plan(stack, tuple(steps))


def torch_step(idx: LocalIndex, version: str) -> Step:
    return Step("install", "torch", f"torch=={version}", index_url=idx.torch_url, description=f"torch {version}")


def run_plan(plan: Plan, python: Path, backend: str = "pip", sources: Sources = Sources(),
             reporter: Reporter | None = None, **kw: Any) -> Any:
    inst = Installer(backend, str(python), restore_args(plan, sources))  # type: ignore[arg-type]
    return execute(plan, str(python), inst, sources=sources, reporter=reporter, progress=False, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_routing_and_torch_first(local_index: LocalIndex, venv: Path, backend: str) -> None:
    # xformers is listed first, but torch must go first; each comes only from its own index.
    xf = Step("install", "xformers", "xformers==0.0.23", index_url=local_index.pypi_url,
              constraints=("torch==2.1.0+cu121",), description="xformers")
    rec = Recorder()
    result = run_plan(make_plan("2.1.0+cu121", [xf, torch_step(local_index, "2.1.0+cu121")]), venv, backend, reporter=rec)
    assert rec.started == ["torch 2.1.0+cu121", "xformers"]
    snap = envstate.snapshot(str(venv))
    assert snap.version("torch") == "2.1.0+cu121" and snap.version("xformers") == "0.0.23"
    assert {d.name for d in result.changes.added} == {"torch", "xformers"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_deps_step_cannot_swap_torch(local_index: LocalIndex, venv: Path, backend: str) -> None:
    pip(venv, "install", "--index-url", local_index.torch_url, "torch==2.1.0+cu121")
    step = Step("install", "xformers", "xformers==0.0.24", index_url=local_index.pypi_url, no_deps=True,
                constraints=("torch==2.1.0+cu121",))
    run_plan(make_plan("2.1.0+cu121", [step]), venv, backend)
    snap = envstate.snapshot(str(venv))
    assert snap.version("torch") == "2.1.0+cu121" and snap.version("xformers") == "0.0.24"


@pytest.mark.parametrize("backend", BACKENDS)
def test_constraint_refuses_swap_and_rolls_back(local_index: LocalIndex, venv: Path, backend: str) -> None:
    pip(venv, "install", "--index-url", local_index.torch_url, "torch==2.1.0+cu121")
    before = freeze(venv)
    step = Step("install", "xformers", "xformers==0.0.24", index_url=local_index.pypi_url,
                extra_index_urls=(local_index.torch_url,), constraints=("torch==2.1.0+cu121",))
    with pytest.raises(InstallFailed):
        run_plan(make_plan("2.1.0+cu121", [step]), venv, backend)
    assert freeze(venv) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_unprotected_step_swaps_torch_guard_rolls_back(local_index: LocalIndex, venv: Path, backend: str) -> None:
    # Without --no-deps or the pin, the installer does swap torch (this is what the plan's protection prevents);
    # the after-step check catches it and everything is put back.
    pip(venv, "install", "--index-url", local_index.torch_url, "torch==2.1.0+cu121")
    before = freeze(venv)
    step = Step("install", "xformers", "xformers==0.0.24", index_url=local_index.pypi_url,
                extra_index_urls=(local_index.torch_url,))
    with pytest.raises(InstallFailed, match=r"torch is 2.2.0 instead of the planned 2.1.0\+cu121") as info:
        run_plan(make_plan("2.1.0+cu121", [step]), venv, backend)
    assert "environment restored" in str(info.value)
    assert freeze(venv) == before


def test_killed_installer_is_rolled_back(local_index: LocalIndex, venv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip(venv, "install", "--index-url", local_index.torch_url, "torch==2.1.0+cu121")
    before = freeze(venv)
    real_popen = _subprocess.popen
    killed: list[int] = []

    class KillOnUninstall:
        """Wraps the child's output: SIGKILL the child as soon as it reports the old torch gone."""

        def __init__(self, proc: Any) -> None:
            self.proc, self.inner = proc, proc.stdout

        def __iter__(self) -> Any:
            for line in self.inner:
                if "Successfully uninstalled torch" in line and not killed:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    killed.append(self.proc.pid)
                yield line

    def popen(argv: Any, **kw: Any) -> Any:
        proc = real_popen(argv, **kw)
        if "install" in argv and "torch==2.2.0" in argv:
            proc.stdout = KillOnUninstall(proc)
        return proc

    monkeypatch.setattr(_subprocess, "popen", popen)
    with pytest.raises(InstallFailed, match="exit code -9"):
        run_plan(make_plan("2.2.0", [torch_step(local_index, "2.2.0")]), venv)
    assert killed
    assert freeze(venv) == before


def test_journal_that_cannot_be_written_does_not_stop_the_restore(local_index: LocalIndex, venv: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The step swaps torch (the after-step check fails) and by then the disk is full: the journal cannot record
    # "restoring" (ENOSPC at its fsync). The restore must still run from the backup and remove the journal, with no
    # half-written temporary file left beside it.
    import errno

    from resolver import journal as journals

    pip(venv, "install", "--index-url", local_index.torch_url, "torch==2.1.0+cu121")
    before = freeze(venv)
    real_fsync = os.fsync
    refused: list[str] = []

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith("transaction.tmp") and '"state":"restoring"' in Path(name).read_text():
            refused.append(name)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(journals.os, "fsync", fsync)
    step = Step("install", "xformers", "xformers==0.0.24", index_url=local_index.pypi_url,
                extra_index_urls=(local_index.torch_url,))
    with pytest.raises(InstallFailed, match=r"torch is 2.2.0 instead of the planned 2.1.0\+cu121") as info:
        run_plan(make_plan("2.1.0+cu121", [step]), venv)
    assert refused and "environment restored" in str(info.value)
    assert freeze(venv) == before
    state = venv.parent.parent / ".gpustack"
    assert not (state / "transaction.json").exists() and not (state / "transaction.tmp").exists()


def test_what_a_step_can_change_is_read_from_the_environment_and_the_wheel(local_index: LocalIndex, venv: Path,
                                                                            tmp_path: Path) -> None:
    # The backup holds only what a step can change: a built wheel whose requirements the environment already
    # satisfies changes only itself; one that needs another torch may move anything but what the step pins.
    from resolver.install import step_may_change

    pip(venv, "install", "--index-url", local_index.torch_url, "--extra-index-url", local_index.pypi_url,
        "torch==2.1.0+cu121", "xformers==0.0.23")
    now = envstate.snapshot(str(venv))
    plan = make_plan("2.1.0+cu121", [])
    step = Step("build", "extpkg", "extpkg", no_deps=True)
    satisfied = fakewheels.fake_dependent(tmp_path / "a", "extpkg", "1.0", "torch==2.1.0")
    assert step_may_change(step, plan, now, satisfied) == set()  # not installed yet: nothing to keep
    assert step_may_change(Step("build", "xformers", "xformers", no_deps=True), plan, now,
                           fakewheels.fake_dependent(tmp_path / "b", "xformers", "0.0.24", "torch==2.1.0")) \
        == {"xformers"}
    needs_other = fakewheels.fake_dependent(tmp_path / "c", "extpkg", "1.0", "xformers>=0.0.24")
    moved = step_may_change(step, plan, now, needs_other)
    assert "xformers" in moved and "pip" in moved and "torch" not in moved  # torch: held by the step's pin
    assert step_may_change(Step("install", "xformers", "xformers==0.0.24", no_deps=True), plan, now) == {"xformers"}


def test_a_cached_wheel_step_backs_up_only_itself_and_restores(local_index: LocalIndex, venv: Path,
                                                               tmp_path: Path) -> None:
    from resolver import journal as journals

    pip(venv, "install", "--index-url", local_index.torch_url, "torch==2.1.0+cu121")
    before = freeze(venv)
    src = fakewheels.local_project(tmp_path, "extpkg")
    steps = [Step("build", "extpkg", "extpkg==0.1.0", url=src.as_uri(), no_deps=True, build_isolation=False),
             Step("install", "nosuchpkg", "nosuchpkg==9", index_url=local_index.pypi_url, no_deps=True)]
    seen: list[list[str]] = []

    class Watch(Recorder):
        def message(self, text: str) -> None:  # "install failed ...; restoring": the journal is still there
            found = journals.pending(str(venv.parent.parent))
            if found is not None and "restoring" in text:
                seen.append(sorted(found.manifest))
            super().message(text)

    with pytest.raises(InstallFailed) as info:
        run_plan(make_plan("2.1.0+cu121", steps), venv, reporter=Watch())
    assert seen == [[]], seen  # neither torch nor pip nor setuptools was linked: no step could change them
    assert "environment restored" in str(info.value) and freeze(venv) == before


def test_reading_again_in_process_equals_a_childs_reading(local_index: LocalIndex, venv: Path) -> None:
    # After a step the environment is read again in gpustack's own process (the path the child reported) while no
    # .pth file changed: it must see exactly what a fresh child sees, and fall back to a child once one did.
    from resolver import target

    first = envstate.snapshot(str(venv))
    pip(venv, "install", "--index-url", local_index.torch_url, "--extra-index-url", local_index.pypi_url,
        "torch==2.1.0+cu121", "xformers==0.0.23")
    pip(venv, "uninstall", "-y", "wheel")
    again, child = envstate.snapshot(str(venv), since=first), envstate.snapshot(str(venv))
    for field in ("dists", "dist_paths", "toplevel", "debris", "torch_version_py", "prefix", "python_tag"):
        assert getattr(again, field) == getattr(child, field), field
    assert again.version("torch") == "2.1.0+cu121" and "wheel" not in again.dists
    assert again.torch_version_py and "2.1.0+cu121" in again.torch_version_py
    site = next(Path(p) for p in child.toplevel)
    extra = site.parent / "elsewhere"
    extra.mkdir()
    pip(venv, "install", "--no-deps", "--target", str(extra), "--index-url", local_index.pypi_url, "xformers==0.0.24")
    pip(venv, "uninstall", "-y", "xformers")
    (site / "zz-elsewhere.pth").write_text(str(extra) + "\n")  # a new sys.path entry: only a child sees it
    assert child.facts is not None and target.read_again(child.facts).pth != child.facts.pth  # read by a child
    assert envstate.snapshot(str(venv), since=child).version("xformers") == "0.0.24"


def test_install_into_a_python_that_is_no_venv_asks_its_prefix_once(local_index: LocalIndex, venv: Path,
                                                                    tmp_path: Path) -> None:
    # A conda or system Python has no pyvenv.cfg: its sys.prefix is asked in a child, once (before the lock, to
    # refuse an unfinished install), not again under the lock. The wrapper logs each start's arguments. (With uv:
    # the pip backend also asks the interpreter whether it has pip, a light reading of its own.)
    starts = tmp_path / "starts"
    wrapper = tmp_path / "bin" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{starts}"\nexec "{venv}" "$@"\n')
    wrapper.chmod(0o755)
    plan = make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121")])
    done = subprocess.run([sys.executable, "-m", "resolver", "install", "--plan", _plan_file(tmp_path, plan),
                           "--python-exe", str(wrapper), "--installer", "uv"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert envstate.snapshot(str(venv)).version("torch") == "2.1.0+cu121"
    probes = [line.split("--mode ")[-1] for line in starts.read_text().splitlines() if "probe_env.py" in line]
    assert sorted(probes) == ["installed", "light"], probes


class _AsksForCredentials(http.server.BaseHTTPRequestHandler):
    """An index that wants a login: 401 with a Basic challenge for everything."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="index"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_index_asking_for_a_login_fails_the_install_instead_of_hanging_it(venv: Path, tmp_path: Path,
                                                                             backend: str) -> None:
    # gpustack's stdin is a terminal nobody types into (a pipe held open, never written). pip, on a 401, asked "User
    # for host:" on it: the prompt went into the captured output, without a newline, so the user saw the step's
    # line and then nothing, forever. Children now read /dev/null and pip is told not to prompt.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AsksForCredentials)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    plan = make_plan("2.1.0+cu121", [Step("install", "torch", "torch==2.1.0+cu121", index_url=url)])
    before = freeze(venv)
    read, write = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-m", "resolver", "install", "--plan", _plan_file(tmp_path, plan),
                                  "--python-exe", str(venv), "--installer", backend], stdin=read,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        os.close(read)
        try:
            out, _ = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
            pytest.fail(f"the install waited for a login nobody can see:\n{out}")
    finally:
        os.close(write)
        server.shutdown()
    assert child.returncode == 1, out  # a failed install, undone (2 is bad input)
    assert out.rstrip().endswith("environment restored: unchanged"), out
    assert freeze(venv) == before
    # pip's own last words are the traceback of its password prompt: gpustack asks the index itself, after the
    # failure, and says what it wants
    assert (f"hint: {url} wants a login (it answered 401): give the credentials in the URL (user:token@ before the "
            f"host), in ~/.netrc, or through keyring") in out.splitlines(), out


def test_the_login_hint_says_whether_the_urls_own_credentials_were_refused() -> None:
    from resolver.installers import login_hint

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AsksForCredentials)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        with_login = login_hint(Step("install", "torch", "torch==2.1.0", index_url=f"http://me:s3cret@{host}/simple"))
        without = login_hint(Step("install", "torch", "torch==2.1.0", index_url=f"http://{host}/simple"))
    finally:
        server.shutdown()
        server.server_close()
    assert with_login == (f"hint: http://me:****@{host}/simple refused the credentials in its URL (401): check the "
                          "user and token")
    assert without is not None and without.startswith(f"hint: http://{host}/simple wants a login (it answered 401)")
    assert login_hint(Step("install", "torch", "torch==2.1.0", index_url="file:///opt/pypi/simple")) is None
    assert login_hint(Step("install", "torch", "torch==2.1.0", index_url=f"http://{host}/simple")) is None  # gone


@pytest.mark.parametrize("python, platform, said", [("3.12", "linux_x86_64", "python 3.12, and "),
                                                     ("3.11", "win_amd64", "platform win_amd64, and ")])
def test_a_plan_for_another_interpreter_is_refused_before_anything_changes(local_index: LocalIndex, venv: Path,
                                                                           tmp_path: Path, python: str,
                                                                           platform: str, said: str) -> None:
    # A plan made with --python 3.12 or --platform win_amd64 went into a Linux 3.11 venv without a word (its wheels
    # are another interpreter's); `install --python 3.12` into that venv was refused.
    plan = Plan(Stack(Target(gpus=(), python=python, platform=platform), (PackageChoice("torch", "2.1.0+cu121",
                                                                                         "wheel"),)),
                (torch_step(local_index, "2.1.0+cu121"),))
    before = freeze(venv)
    out = CliRunner().invoke(main, ["install", "--plan", _plan_file(tmp_path, plan), "--python-exe", str(venv)])
    assert out.exit_code == 2, out.output
    assert out.output.strip().splitlines() == [f"gpustack: the plan was made for {said}{venv} is "
                                               f"{'3.11' if python != '3.11' else 'linux_x86_64'}: plan for it "
                                               f"(`gpustack plan --python-exe {venv} --json`), or install into a "
                                               f"matching interpreter"]
    assert freeze(venv) == before and not (venv.parent.parent / ".gpustack" / "transaction.json").exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_install_into_a_new_venv_takes_the_venv_back(local_index: LocalIndex, tmp_path: Path,
                                                               backend: str) -> None:
    # The venv it created (and the folders above it) was left behind by a failed first install; an empty folder
    # given as --venv is emptied again.
    plan = make_plan("2.1.0+cu121", [Step("install", "torch", "torch==9.9.9", index_url=local_index.torch_url)])
    for venv, left in ((tmp_path / "new" / "deeper" / "venv", []), (tmp_path / "empty", [])):
        if venv.name == "empty":
            venv.mkdir()
        out = CliRunner().invoke(main, ["install", "--plan", _plan_file(tmp_path, plan), "--venv", str(venv),
                                        "--installer", backend])
        assert out.exit_code != 0 and "creating virtual environment" in out.output, out.output
        if venv.name == "empty":
            assert venv.is_dir() and sorted(p.name for p in venv.iterdir()) == left
        else:
            assert not (tmp_path / "new").exists(), out.output


@pytest.mark.slow
def test_a_signal_while_the_new_venv_is_made_takes_it_back_for_good(local_index: LocalIndex, tmp_path: Path) -> None:
    # `python -m venv` installs pip through a child of its own (ensurepip). SIGTERM to gpustack while that child
    # wrote stopped only venv's own process: the child went on writing after gpustack had removed the folder, so a
    # half-made venv came back. The creator is now ended as a whole process group.
    plan = make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121")])
    venv = tmp_path / "new" / "venv"
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", GPUSTACK_CACHE_DIR=str(tmp_path / "cache"))
    child = subprocess.Popen([sys.executable, "-m", "resolver", "install", "--plan", _plan_file(tmp_path, plan),
                              "--venv", str(venv), "--installer", "pip"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (site.is_dir() and any(site.iterdir())) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # ensurepip has begun writing pip into the new venv
        assert child.poll() is None, child.communicate()[0]
        child.send_signal(signal.SIGTERM)  # gpustack alone, as `kill PID` sends it
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM, out
    assert out.strip().splitlines()[-2:] == [f"removed {tmp_path / 'new'}, made by this install",
                                             "gpustack: interrupted (SIGTERM)"], out
    time.sleep(3)  # anything still writing into the venv would have brought the folder back by now
    assert not (tmp_path / "new").exists(), sorted(str(p) for p in (tmp_path / "new").rglob("*"))[:5]


def test_a_venv_path_that_cannot_be_a_venv_is_bad_input(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("keep me too")
    for path, said in ((precious, "a file, not a folder"), (folder, "a folder that is not a virtual environment")):
        for dry in ([], ["--dry-run"]):
            out = CliRunner().invoke(main, ["install", "--cpu", "torch", "--venv", str(path), *dry])
            assert out.exit_code == 2 and said in out.output and len(out.output.strip().splitlines()) == 1, out.output
    assert precious.read_text() == "keep me" and sorted(p.name for p in folder.iterdir()) == ["a.txt"]


def test_an_install_that_waits_for_another_says_so_then_goes_on(local_index: LocalIndex, venv: Path,
                                                                 tmp_path: Path) -> None:
    # A second install waited up to 600 s for the environment's lock without a word.
    plan = make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121")])
    prefix = envstate.snapshot(str(venv)).prefix
    lock = envstate.env_lock(prefix, timeout=10.0)
    try:
        child = subprocess.Popen([sys.executable, "-m", "resolver", "install", "--plan", _plan_file(tmp_path, plan),
                                  "--python-exe", str(venv), "--installer", "pip"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert child.stdout is not None
        first = child.stdout.readline()
    finally:
        lock.release()
    out = first + child.communicate(timeout=300)[0]
    assert first.startswith(f"waiting for another gpustack run on {prefix} to finish (lock "), out
    assert "up to 600 s, Ctrl-C stops waiting" in first
    assert child.returncode == 0, out
    assert envstate.snapshot(str(venv)).version("torch") == "2.1.0+cu121"


def test_recover_while_an_install_runs_waits_and_leaves_its_finished_work(venv: Path, tmp_path: Path) -> None:
    # An install holds the environment's lock and has written its journal; `recover` starts meanwhile, sees the
    # journal and waits for the lock. The install then succeeds: it removes its journal and lets the lock go.
    # recover must read the journal again under the lock and find nothing to do. It restored from the journal it
    # had read before the wait, and took the finished install back out (both said success).
    from resolver import journal as journals

    before = envstate.snapshot(str(venv))
    wheel = fakewheels.make_wheel(tmp_path / "w", "finished-pkg", "1.0")
    lock = envstate.env_lock(before.prefix, timeout=10.0)
    try:
        journal = journals.begin(str(venv), before.prefix,
                                 {k: [d.version, d.url, d.editable] for k, d in before.dists.items()},
                                 command="install finished-pkg", plan=None, backend="pip", restore_args=["--no-index"])
        recover = subprocess.Popen([sys.executable, "-m", "resolver", "recover", "--python-exe", str(venv)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pip(venv, "install", "--no-index", str(wheel))  # the install's step
        time.sleep(1.0)  # recover is waiting for the lock by now (it waits up to 10 s)
        assert recover.poll() is None
        journal.finish()  # the install succeeded
    finally:
        lock.release()
    out, _ = recover.communicate(timeout=120)
    assert recover.returncode == 0, out
    assert out.strip().splitlines()[-1] == f"nothing to recover: {before.prefix} has no unfinished gpustack transaction"
    assert envstate.snapshot(str(venv)).version("finished-pkg") == "1.0"


def test_recover_that_cannot_finish_says_what_install_says(venv: Path) -> None:
    # A journal whose "before" held ghostpkg 1.0, which neither the backup nor the run's sources (--no-index) have:
    # recover's restore cannot finish, and says so in install's one line, with the command that finishes it.
    from resolver import journal as journals
    from resolver.install import restore_line

    before = envstate.snapshot(str(venv))
    dists = {k: [d.version, d.url, d.editable] for k, d in before.dists.items()}
    journals.begin(str(venv), before.prefix, {**dists, "ghostpkg": ["1.0", None, False]}, command="install ghostpkg",
                   plan=None, backend="pip", restore_args=["--no-index"])
    out = CliRunner().invoke(main, ["recover", "--python-exe", str(venv)])
    assert out.exit_code == 1, out.output
    left = envstate.RestoreResult(envstate.EnvDiff(), envstate.EnvDiff(removed=(envstate.Dist("ghostpkg", "1.0"),)),
                                  fix=journals.recover_command(str(venv)))
    assert out.output.strip().splitlines()[-1] == f"gpustack: {restore_line(left)}"
    assert "RESTORE INCOMPLETE: still different from before: ghostpkg 1.0 missing; to finish it run: " in out.output
    assert f"to finish it run: gpustack recover --python-exe {venv}" in out.output
    assert journals.pending(before.prefix) is not None and freeze(venv) == sorted(f"{k}=={v[0]}" for k, v in dists.items())


def test_failed_build_is_rolled_back_with_log(local_index: LocalIndex, venv: Path, tmp_path: Path) -> None:
    pip(venv, "install", "--index-url", local_index.torch_url, "torch==2.1.0+cu121")
    before = freeze(venv)
    src = fakewheels.failing_project(tmp_path)
    steps = [torch_step(local_index, "2.2.0"), Step("build", "failpkg", str(src), no_deps=True)]
    with pytest.raises(InstallFailed) as info:
        run_plan(make_plan("2.2.0", steps), venv)
    text = str(info.value)
    assert "full log:" in text and "error: expected declaration" in text
    log = Path(text.split("full log: ")[1].split(")")[0])
    assert log.is_file() and "expected declaration" in log.read_text()
    assert "torch 2.2.0 -> 2.1.0+cu121" in text
    assert freeze(venv) == before


def test_unreachable_index_fails_fast_changing_nothing(venv: Path) -> None:
    before = freeze(venv)
    step = Step("install", "torch", "torch==2.1.0+cu121", index_url="https://download.pytorch.org/whl/cu121")
    started = time.monotonic()
    with pytest.raises(SourceUnreachable) as info:
        run_plan(make_plan("2.1.0+cu121", [step]), venv)
    assert time.monotonic() - started < 10
    assert "\n" not in str(info.value) and "https://download.pytorch.org/whl/cu121" in str(info.value)
    assert "--find-links" in str(info.value)
    assert freeze(venv) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_find_links_needs_no_network(local_index: LocalIndex, venv: Path, backend: str) -> None:
    # The plan names download.pytorch.org (unreachable here); the file lies in the find-links folder.
    step = Step("install", "torch", "torch==2.1.0+cu121", index_url="https://download.pytorch.org/whl/cu121",
                description="install torch 2.1.0+cu121 from https://download.pytorch.org/whl/cu121")
    said = Recorder()
    run_plan(make_plan("2.1.0+cu121", [step]), venv, backend, Sources((str(local_index.wheels),)), reporter=said)
    assert envstate.snapshot(str(venv)).version("torch") == "2.1.0+cu121"
    # the progress line named the index the file did not come from
    local = Sources((str(local_index.wheels),)).local_file(step)
    assert local is not None and said.started == [f"install torch 2.1.0+cu121 from {local}"]


def test_offline_install_uses_only_the_folder(local_index: LocalIndex, venv: Path) -> None:
    step = Step("install", "xformers", "xformers==0.0.23", index_url=PYPI_SIMPLE)
    run_plan(make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121"), step]), venv,
             sources=Sources((str(local_index.wheels),), offline=True))
    assert envstate.snapshot(str(venv)).version("xformers") == "0.0.23"


def test_lock_blocks_a_second_install(local_index: LocalIndex, venv: Path) -> None:
    prefix = envstate.snapshot(str(venv)).prefix
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from resolver import envstate; l = envstate.env_lock(sys.argv[1]); "
        "print('held', flush=True); time.sleep(30)"), prefix], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(envstate.EnvironmentLocked, match="another gpustack run"):
            run_plan(make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121")]), venv, lock_timeout=0.5)
    finally:
        holder.kill()
        holder.wait()
    assert envstate.snapshot(str(venv)).version("torch") is None


def _plan_file(tmp_path: Path, plan: Plan) -> str:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    return str(path)


def test_cli_dry_run_json_changes_nothing(local_index: LocalIndex, venv: Path, tmp_path: Path) -> None:
    before = freeze(venv)
    xf = Step("install", "xformers", "xformers==0.0.23", index_url=local_index.pypi_url, constraints=("torch==2.1.0",))
    plan = make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121"), xf])
    out = CliRunner().invoke(main, ["install", "--plan", _plan_file(tmp_path, plan), "--python-exe", str(venv),
                                    "--installer", "pip", "--dry-run", "--json"])
    assert out.exit_code == 0, out.output
    steps = json.loads(out.output)["steps"]
    assert [s["package"] for s in steps] == ["torch", "xformers"]
    assert steps[0]["argv"][-3:] == ["--index-url", local_index.torch_url, "torch==2.1.0+cu121"]
    assert "--constraint" in steps[1]["argv"] and steps[1]["env"]["PYTHONUNBUFFERED"] == "1"
    assert freeze(venv) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_install_into_new_venv(local_index: LocalIndex, tmp_path: Path, backend: str) -> None:
    plan = make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121")])
    target = tmp_path / "new-venv"
    out = CliRunner().invoke(main, ["install", "--plan", _plan_file(tmp_path, plan), "--venv", str(target),
                                    "--installer", backend])
    assert out.exit_code == 0, out.output
    assert envstate.snapshot(str(target / "bin" / "python")).version("torch") == "2.1.0+cu121"


def _path_without_uv() -> str:
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not os.path.exists(os.path.join(d, "uv")))


def test_installer_uv_finds_the_uv_package_off_path(local_index: LocalIndex, venv: Path, tmp_path: Path) -> None:
    # gpustack runs from an environment that sees this one's packages (gpustack, its uv wheel) through a .pth,
    # as `uv run --with` lays one out: no uv beside its interpreter, none on PATH, only where the uv package put it.
    import sysconfig

    runner = tmp_path / "runner"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(runner)], check=True)
    site = subprocess.run([str(runner / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "overlay.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    assert not (runner / "bin" / "uv").exists()
    plan = make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121")])
    env = {**os.environ, "PATH": _path_without_uv()}
    done = subprocess.run([str(runner / "bin" / "python"), "-m", "resolver", "install", "--plan",
                           _plan_file(tmp_path, plan), "--python-exe", str(venv), "--installer", "uv"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert envstate.snapshot(str(venv)).version("torch") == "2.1.0+cu121"


def test_installer_uv_without_uv_says_where_it_looked(venv: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))  # nothing beside it
    monkeypatch.setitem(sys.modules, "uv", None)  # no uv package: importing it fails
    monkeypatch.setenv("PATH", _path_without_uv())
    before = freeze(venv)
    plan = make_plan("2.1.0+cu121", [Step("install", "torch", "torch==2.1.0+cu121",
                                          index_url="https://download.pytorch.org/whl/cu121")])
    out = CliRunner().invoke(main, ["install", "--plan", _plan_file(tmp_path, plan), "--python-exe", str(venv),
                                    "--installer", "uv"])
    assert out.exit_code == 2, out.output
    assert out.output.count("\n") == 1 and "--installer uv: uv not found" in out.output
    assert "the uv package installed with gpustack" in out.output and "on PATH" in out.output
    assert "--installer pip" in out.output
    assert freeze(venv) == before


def test_cli_bad_find_links_is_bad_input(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["install", "--plan", "x.json", "--find-links", str(tmp_path / "nope")])
    assert out.exit_code == 2 and "--find-links" in out.output


# --- real packages ----------------------------------------------------------------------------------------------

CUDA_EXT = Path(__file__).resolve().parents[1] / "fixtures" / "cuda_ext"
CUOBJDUMP = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / \
    "nvidia" / "cu13" / "bin" / "cuobjdump"


@pytest.mark.slow
@pytest.mark.network
def test_real_cpu_torch_from_find_links(venv: Path) -> None:
    # As plan.py writes it: torch from download.pytorch.org (unreachable here), PyPI for its dependencies.
    if not Path("/opt/wheels").is_dir() or not list(Path("/opt/wheels").glob("torch-2.13.0+cpu-*.whl")):
        pytest.skip("no torch 2.13.0+cpu wheel in /opt/wheels")
    step = Step("install", "torch", "torch==2.13.0+cpu", index_url="https://download.pytorch.org/whl/cpu",
                extra_index_urls=(PYPI_SIMPLE,))
    run_plan(make_plan("2.13.0+cpu", [step]), venv, sources=Sources(("/opt/wheels",)))
    done = subprocess.run([str(venv), "-c", "import torch; print(torch.__version__, torch.ones(2).sum().item())"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["2.13.0+cpu", "2.0"]


def _elf_archs(so: Path) -> set[str]:
    out = subprocess.run([str(CUOBJDUMP), "--list-elf", str(so)], capture_output=True, text=True, check=True).stdout
    return {f"sm_{p.split('.')[0]}" for p in out.split("sm_")[1:]}


@pytest.mark.slow
def test_real_cuda_build_and_cache_hit(torch_cuda_venv: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not CUOBJDUMP.is_file():
        pytest.skip("cuobjdump missing: pip install nvidia-cuda-cuobjdump")
    step = Step("build", "gpustack-cuda-ext-fixture", str(CUDA_EXT), no_deps=True, constraints=("torch==2.14.1",),
                env={"TORCH_CUDA_ARCH_LIST": "8.0;9.0", "FORCE_CUDA": "1"}, build_isolation=False)
    plan = make_plan("2.14.1+cu130", [step])
    python = torch_cuda_venv
    try:
        first = run_plan(plan, python)
        assert not first.builds[0].cache_hit and first.builds[0].log is not None
        site = Path(subprocess.run([str(python), "-c", "import cuda_ext, os; print(os.path.dirname(cuda_ext.__file__))"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        so = next(site.glob("_C*.so"))
        assert _elf_archs(so) == {"sm_80", "sm_90"}
        pip(python, "uninstall", "-y", "gpustack-cuda-ext-fixture")

        logs_before = sorted((isolated / "logs").iterdir())
        started: list[list[str]] = []
        real_stream = _subprocess.stream
        monkeypatch.setattr(_subprocess, "stream", lambda argv, *a, **k: started.append(list(argv)) or real_stream(argv, *a, **k))
        t0 = time.monotonic()
        second = run_plan(plan, python)
        assert second.builds[0].cache_hit and second.builds[0].log is None
        assert time.monotonic() - t0 < 30
        assert not any("wheel" in argv for argv in started)  # no pip wheel, hence no nvcc
        assert sorted((isolated / "logs").iterdir()) == logs_before
        assert envstate.snapshot(str(python)).version("gpustack-cuda-ext-fixture") == "0.1.0"
    finally:
        subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "gpustack-cuda-ext-fixture"], capture_output=True)


@pytest.fixture(scope="module")
def agreeing_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return a ``file://`` PyPI-style index where ``gs-lib`` has 1.0 and 2.0 and ``gs-app`` 1.0 needs gs-lib<2 (as
    scipy 1.13.1 needs numpy<2.3): a request for gs-lib==2.0 with gs-app==1.0 cannot be met."""
    root = tmp_path_factory.mktemp("agreeing")
    w = root / "wheels"
    files = [fakewheels.make_wheel(w, "gs-lib", "1.0", {"gs_lib/__init__.py": ""}),
             fakewheels.make_wheel(w, "gs-lib", "2.0", {"gs_lib/__init__.py": ""}),
             fakewheels.make_wheel(w, "gs-app", "1.0", {"gs_app/__init__.py": ""}, requires=["gs-lib<2"])]
    return fakewheels.write_index(root / "pypi", files).as_uri()


def _pass_through_plan(local_index: LocalIndex, others_index: str) -> Plan:
    from resolver.plan import make_plan

    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    torch = PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=local_index.torch_url)
    stack = Stack(target, (torch,), other_requirements=("gs-lib==2.0", "gs-app==1.0"), others_index_url=others_index)
    return make_plan(stack, {})


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_cannot_move_a_pinned_pass_through_package(local_index: LocalIndex, venv: Path, backend: str,
                                                          agreeing_index: str) -> None:
    # The trial's numpy==2.4.6 scipy==1.13.1: scipy's step took numpy down to 2.2.6 and the install said "installed".
    # Every step holds the other pins, so gs-app's step fails, and the run is undone.
    before = freeze(venv)
    plan = _pass_through_plan(local_index, agreeing_index)
    app = next(s for s in plan.steps if s.package == "gs-app")
    assert "gs-lib==2.0" in app.constraints
    with pytest.raises(InstallFailed, match="environment restored"):
        run_plan(plan, venv, backend)
    assert freeze(venv) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_after_step_check_catches_a_moved_pass_through_pin(local_index: LocalIndex, venv: Path, backend: str,
                                                               agreeing_index: str) -> None:
    # A plan whose steps hold nothing but torch (written before the holds, or edited by hand): the check after each
    # step reads every planned pin installed so far, the pass-through ones too.
    before = freeze(venv)
    plan = _pass_through_plan(local_index, agreeing_index)
    bare = Plan(plan.stack, tuple(dataclasses.replace(s, constraints=tuple(c for c in s.constraints
                                                                             if c.startswith("torch")))
                                  for s in plan.steps))
    with pytest.raises(InstallFailed, match=r"gs-lib is 1\.0 instead of the planned 2\.0") as info:
        run_plan(bare, venv, backend)
    assert "environment restored" in str(info.value)
    assert freeze(venv) == before


def test_a_signal_once_the_journal_is_gone_does_not_undo_or_fail_a_landed_install(
        local_index: LocalIndex, venv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C while the committed run deleted its backup ended an install that had landed with "interrupted" (exit
    # 130, no summary). The signal arrives in the middle of the commit here, sent by the process to itself.
    from resolver import journal as journals

    class Signalled(Exception):
        pass

    def raising(signum: int, frame: Any) -> None:  # as the CLI's own SIGTERM handler outside a transaction
        raise Signalled(signum)

    real = journals.Journal.finish

    def finish_signalled(self: journals.Journal) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        real(self)

    monkeypatch.setattr(journals.Journal, "finish", finish_signalled)
    previous = signal.signal(signal.SIGTERM, raising)
    try:
        result = run_plan(make_plan("2.1.0+cu121", [torch_step(local_index, "2.1.0+cu121")]), venv)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert envstate.snapshot(str(venv)).version("torch") == "2.1.0+cu121"
    assert {d.name for d in result.changes.added} == {"torch"}
    state = Path(journals.prefix_of(str(venv))) / journals.STATE_DIR
    assert journals.pending(journals.prefix_of(str(venv))) is None and not (state / "backup").exists()
