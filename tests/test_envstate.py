"""Environment snapshots, diffs, restore commands and the inter-process lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from resolver import envstate


def snap(**dists: str) -> envstate.Snapshot:
    return envstate.Snapshot("/env", {k: envstate.Dist(k, v) for k, v in dists.items()})


def test_parse_snapshot() -> None:
    text = json.dumps({"python_exe": "/v/bin/python", "python": "3.11", "python_tag": "cp311",
                       "platform": "linux_x86_64", "prefix": "/v", "dists": {"torch": ["2.1.0+cu121", None, False],
                                                "x": ["1.0", "file:///w/x-1.0-py3-none-any.whl", False],
                                                "me": ["0.1", "file:///src/me", True]}, "debris": ["/v/~orch"]})
    s = envstate.parse_snapshot("noise\n" + text)
    assert s.version("torch") == "2.1.0+cu121" and s.version("nope") is None and s.debris == ("/v/~orch",)
    assert s.dists["torch"].requirement() == "torch==2.1.0+cu121"
    assert s.dists["x"].requirement() == "x @ file:///w/x-1.0-py3-none-any.whl"
    assert s.dists["me"].requirement() == "-e file:///src/me"
    assert s.freeze() == ["me==0.1", "torch==2.1.0+cu121", "x==1.0"]


def test_diff_and_describe() -> None:
    d = envstate.diff(snap(torch="2.1.0", a="1"), snap(torch="2.2.0", b="2"))
    assert [x.name for x in d.added] == ["b"] and [x.name for x in d.removed] == ["a"]
    assert d.describe() == "torch 2.2.0 -> 2.1.0; reinstalled a 1; removed b 2"
    assert d.remaining() == "torch is 2.2.0, was 2.1.0; a 1 missing; b 2 not there before"
    assert not envstate.diff(snap(a="1"), snap(a="1"))


class FakeRestorer:
    def reinstall_argv(self, requirements: Sequence[str]) -> list[str]:
        return ["reinstall", *requirements]

    def uninstall_argv(self, names: Sequence[str]) -> list[str]:
        return ["uninstall", *names]


def test_restore_uninstalls_added_then_reinstalls_old(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([snap(torch="2.2.0", b="2"), snap(torch="2.1.0", a="1")])
    ran: list[list[str]] = []
    monkeypatch.setattr(envstate, "snapshot", lambda exe: next(readings))
    monkeypatch.setattr(envstate, "_quiet", lambda argv: ran.append(argv))
    result = envstate.restore(snap(torch="2.1.0", a="1"), "/env/bin/python", FakeRestorer())
    assert ran == [["uninstall", "b"], ["reinstall", "torch==2.1.0", "a==1"]]
    assert not result.left and "torch 2.2.0 -> 2.1.0" in result.undone.describe()


def test_snapshot_of_this_interpreter() -> None:
    s = envstate.snapshot(sys.executable)
    assert s.prefix == sys.prefix and s.version("click")


def test_snapshot_of_a_non_python_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(envstate.BadInput, match="--python-exe"):
        envstate.snapshot(str(tmp_path / "nope"))


def test_lock_is_exclusive_across_processes_and_cache_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The lock lives inside the environment: another GPUSTACK_CACHE_DIR (another user, sudo) meets the same lock.
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "c1"))
    lock = envstate.env_lock(str(env))
    try:
        code = f"import sys; from resolver import envstate; envstate.env_lock({str(env)!r}, timeout=0.2)"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "GPUSTACK_CACHE_DIR": str(tmp_path / "c2")})
        assert done.returncode != 0 and "EnvironmentLocked" in done.stderr
    finally:
        lock.release()
    assert envstate.lock_path(str(env)) == str(env / ".gpustack" / "lock")
    envstate.env_lock(str(env), timeout=0.2).release()


def test_lock_in_a_missing_or_read_only_prefix_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(envstate.BadInput, match="cannot write there"):
        envstate.env_lock(str(tmp_path / "missing"))


@pytest.mark.parametrize("holder", ["filelock", "gpustack"])
def test_the_environment_lock_and_filelocks_exclude_each_other(tmp_path: Path, holder: str) -> None:
    # Another gpustack (an older one took the lock through filelock) or any filelock user of the file: one flock.
    env = tmp_path / "env"
    env.mkdir()
    path = envstate.lock_path(str(env))
    take = {"filelock": f"import filelock; lock = filelock.FileLock({path!r}); lock.acquire()",
            "gpustack": f"from resolver import envstate; lock = envstate.env_lock({str(env)!r})"}[holder]
    other = {"filelock": f"from resolver import envstate; envstate.env_lock({str(env)!r}, timeout=0.3)",
             "gpustack": f"import filelock; filelock.FileLock({path!r}).acquire(timeout=0.3)"}[holder]
    held = subprocess.Popen([sys.executable, "-c", f"{take}; print('held', flush=True); import time; time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout is not None and held.stdout.readline().strip() == "held"
        done = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and ("EnvironmentLocked" in done.stderr or "Timeout" in done.stderr), done.stderr
    finally:
        held.kill()
        held.wait()
    envstate.env_lock(str(env), timeout=5).release()  # the holder's death let it go


def test_a_lock_file_replaced_while_waiting_is_locked_as_it_is_now(tmp_path: Path) -> None:
    from resolver.envlock import EnvLock

    env = tmp_path / "env"
    env.mkdir()
    first = envstate.env_lock(str(env))
    path = envstate.lock_path(str(env))
    os.replace(path, path + ".old")  # someone removed the held file: a new one at the path is free to lock
    second = EnvLock(path)
    try:
        assert second.acquire(timeout=1)
        assert os.path.samestat(os.stat(path), os.fstat(second._fd))  # type: ignore[arg-type]
        assert not EnvLock(path).acquire(timeout=0)
    finally:
        second.release()
        first.release()


def test_the_lock_file_is_never_opened_through_a_link(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / ".gpustack").mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (env / ".gpustack" / "lock").symlink_to(target)
    with pytest.raises(envstate.BadInput, match="cannot lock it"):
        envstate.env_lock(str(env), timeout=0.2)
    assert target.read_text() == "keep"


@pytest.mark.slow
def test_recover_while_an_install_runs_waits_for_it_and_never_advises_removing_the_lock(tmp_path: Path) -> None:
    # recover waited 10 s, then exited 2 (bad input) advising "remove the lock file if no gpustack is running": an
    # flock is never stale, and removing it lets a second run lock a new file while the first still changes the venv.
    import json

    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    prefix = str(venv)
    journal = venv / ".gpustack" / "transaction.json"
    # a live install: it holds the lock, its journal says it is running; it finishes (journal gone) after ~3 s
    holder = subprocess.Popen([sys.executable, "-c", (
        "import json, os, sys, time; from resolver import envstate; l = envstate.env_lock(sys.argv[1]); "
        "p = sys.argv[2]; open(p, 'w').write(json.dumps({'pid': os.getpid(), 'state': 'running', "
        "'started': time.time(), 'step': '[1/2] install torch'})); print('held', flush=True); time.sleep(3); "
        "os.unlink(p); l.release()"), prefix, str(journal)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(envstate.EnvironmentLocked) as got:
            envstate.env_lock(prefix, timeout=0.2)
        assert got.value.exit_code == 1
        assert f"by pid {holder.pid}, still running, state running" in str(got.value), got.value
        assert "remove" not in str(got.value) and "run this command again" in str(got.value)
        done = subprocess.run([sys.executable, "-m", "resolver", "recover", "--venv", str(venv)], capture_output=True,
                              text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert "waiting for another gpustack run" in done.stderr and "remove" not in done.stderr, done.stderr
    assert "nothing to recover" in done.stdout, done.stdout
    # the same journal left by a killed run says so
    journal.write_text(json.dumps({"pid": holder.pid, "state": "running", "started": 0, "step": "x"}))
    from resolver import journal as journals

    found = journals.pending(prefix)
    assert found is not None and f"by pid {holder.pid}, no longer running, state running" in found.describe()


def test_a_file_where_the_state_folder_goes_is_named(tmp_path: Path) -> None:
    # said "cannot write there (File exists); install into a virtual environment ...", which names no cause
    env = tmp_path / "env"
    env.mkdir()
    (env / ".gpustack").write_text("mine")
    with pytest.raises(envstate.BadInput, match=r"\.gpustack: not a folder, where gpustack keeps .*move that file away"):
        envstate.env_lock(str(env))
    assert (env / ".gpustack").read_text() == "mine"
