"""Fault injection: `gpustack install` run as a user runs it (a CLI process), then hit at different points.

Before: torch 2.1.0+cu121 and xformers 0.0.23 (which pins torch==2.1.0). The plan: torch 2.2.0+cu121 (a padded wheel,
so its install takes a moment) from the PyTorch-style index, then xformers 0.0.24 (pins torch==2.2.0) from the
PyPI-style one. After every fault the environment's ``name==version`` set must be exactly as before, or exactly the
planned set with ``pip check`` clean, and no journal may be left (after ``gpustack recover`` where the fault was a
SIGKILL of gpustack). Counts are in docs/install.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import fakewheels
from conftest import Server, freeze, pip
from resolver.models import PackageChoice, Plan, Stack, Step, Target

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Faults:
    torch_url: str
    pypi_url: str
    server: Server
    before_venv: Path
    before: list[str]
    planned: list[str]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, template_venv: Path) -> Iterator[Faults]:
    root = tmp_path_factory.mktemp("faults")
    w = root / "wheels"
    torch_files = [fakewheels.fake_torch(w, "2.1.0+cu121"), fakewheels.fake_torch(w, "2.2.0+cu121", padding_mib=24)]
    pypi_files = [fakewheels.fake_cuda_package(w, "xformers", "0.0.23", "12.1", ["torch==2.1.0"]),
                  fakewheels.fake_cuda_package(w, "xformers", "0.0.24", "12.1", ["torch==2.2.0"])]
    fakewheels.write_flat_index(root / "whl" / "cu121", torch_files)
    fakewheels.write_index(root / "pypi", pypi_files)
    server = Server(root)
    base = f"http://127.0.0.1:{server.port}"
    venv = root / "before-venv"
    shutil.copytree(template_venv, venv, symlinks=True)
    py = venv / "bin" / "python"
    pip(py, "install", "-q", "--index-url", f"{base}/whl/cu121", "--extra-index-url", f"{base}/pypi/simple",
        "torch==2.1.0+cu121", "xformers==0.0.23")
    before = freeze(py)
    planned = sorted([ln for ln in before if not ln.startswith(("torch==", "xformers=="))]
                     + ["torch==2.2.0+cu121", "xformers==0.0.24"])
    yield Faults(f"{base}/whl/cu121", f"{base}/pypi/simple", server, venv, before, planned)
    server.stop()


@pytest.fixture
def env(faults: Faults, tmp_path: Path) -> Path:
    if faults.server._server is None:
        faults.server.start()
    dest = tmp_path / "venv"
    shutil.copytree(faults.before_venv, dest, symlinks=True)
    return dest / "bin" / "python"


def plan_file(f: Faults, tmp_path: Path) -> Path:
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    stack = Stack(target, (PackageChoice("torch", "2.2.0+cu121", "wheel", index_url=f.torch_url, variant="cu121",
                                         cuda="12.1"),
                           PackageChoice("xformers", "0.0.24", "wheel", index_url=f.pypi_url, variant="cu121")))
    steps = (Step("install", "torch", "torch==2.2.0+cu121", index_url=f.torch_url, extra_index_urls=(f.pypi_url,),
                  description="torch 2.2.0+cu121"),
             Step("install", "xformers", "xformers==0.0.24", index_url=f.pypi_url, constraints=("torch==2.2.0+cu121",),
                  description="xformers 0.0.24"))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(Plan(stack, steps).to_dict()))
    return path


def gpustack(*args: str, cache: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", GPUSTACK_CACHE_DIR=str(cache),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONPATH=str(REPO),
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", ""), UV_CACHE_DIR=os.environ.get("UV_CACHE_DIR", ""))
    return subprocess.Popen([sys.executable, "-m", "resolver", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def children(pid: int) -> list[int]:
    """Return the descendants of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        kids = [c for c, pp in parents.items() if pp == cur]
        out += kids
        todo += kids
    return out


def installer_of(pid: int) -> int | None:
    """Return the pid of a running pip/uv install started by ``pid``, if any."""
    for c in children(pid):
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if " install " in cmd and ("pip" in cmd or "uv" in cmd):
            return c
    return None


def journal_step(python: Path) -> str | None:
    path = python.parent.parent / ".gpustack" / "transaction.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("state", "")) + " " + str(data.get("step", ""))


def wait_for(cond: Callable[[], object], timeout: float = 60.0) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


def assert_consistent(f: Faults, python: Path, out: str = "") -> str:
    """Assert the environment is as before or exactly as planned (pip check clean); return which."""
    now = freeze(python)
    assert not (python.parent.parent / ".gpustack" / "transaction.json").exists(), "a journal was left"
    if now == f.before:
        site = next((python.parent.parent / "lib").glob("python3*/site-packages"))
        before_site = next((f.before_venv / "lib").glob("python3*/site-packages"))
        tops = {p.name for p in site.iterdir()} - {"__pycache__"}
        assert tops == {p.name for p in before_site.iterdir()} - {"__pycache__"}, "stray files left"
        return "before"
    assert now == f.planned, f"neither before nor planned: {now}\n{out}"
    assert subprocess.run([str(python), "-m", "pip", "check"], capture_output=True).returncode == 0
    return "planned"


def no_orphans(python: Path) -> None:
    """Assert no pip/uv process still works on this venv."""
    time.sleep(0.3)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            assert not (str(python.parent.parent) in cmd and " install " in cmd), f"orphan installer: {cmd}"


POINTS = {"step1": "[1/2]", "step2": "[2/2]"}


@pytest.mark.parametrize("backend", ["pip", "uv"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("point", ["step1", "step2"])
def test_signal_restores(faults: Faults, env: Path, tmp_path: Path, backend: str, sig: int, point: str) -> None:
    proc = gpustack("install", "--plan", str(plan_file(faults, tmp_path)), "--python-exe", str(env),
                    "--installer", backend, cache=tmp_path / "cache")
    wait_for(lambda: POINTS[point] in (journal_step(env) or "") and installer_of(proc.pid))
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, out
    assert out.count("environment restored") == 1 and "RESTORE INCOMPLETE" not in out, out  # said once
    assert assert_consistent(faults, env, out) == "before", out
    no_orphans(env)


@pytest.mark.parametrize("backend", ["pip", "uv"])
@pytest.mark.parametrize("point", ["backup", "step1", "step2"])
def test_sigkill_then_recover(faults: Faults, env: Path, tmp_path: Path, backend: str, point: str) -> None:
    proc = gpustack("install", "--plan", str(plan_file(faults, tmp_path)), "--python-exe", str(env),
                    "--installer", backend, cache=tmp_path / "cache")
    if point == "backup":  # the backup is made before the journal: a kill now may leave only a stray backup folder
        wait_for(lambda: (env.parent.parent / ".gpustack" / "backup").exists())
    else:
        wait_for(lambda: POINTS[point] in (journal_step(env) or "") and installer_of(proc.pid))
        time.sleep(0.2)
    proc.kill()
    proc.communicate(timeout=60)
    no_orphans(env)  # PR_SET_PDEATHSIG: the installer died with gpustack
    interrupted = journal_step(env) is not None  # else it had finished just before the kill
    # Every command that reads the environment says so; install refuses to start on top of it.
    again = gpustack("install", "--plan", str(plan_file(faults, tmp_path)), "--python-exe", str(env),
                     "--installer", backend, cache=tmp_path / "cache")
    out, _ = again.communicate(timeout=60)
    if interrupted:
        assert again.returncode == 1 and "gpustack recover --python-exe" in out, out
    rec = gpustack("recover", "--python-exe", str(env), cache=tmp_path / "other-cache")
    out, _ = rec.communicate(timeout=120)
    assert rec.returncode == 0, out
    assert assert_consistent(faults, env, out) == ("before" if interrupted else "planned")


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_kill_9_of_the_installer_restores(faults: Faults, env: Path, tmp_path: Path, backend: str) -> None:
    proc = gpustack("install", "--plan", str(plan_file(faults, tmp_path)), "--python-exe", str(env),
                    "--installer", backend, cache=tmp_path / "cache")
    child = wait_for(lambda: "[1/2]" in (journal_step(env) or "") and installer_of(proc.pid))
    time.sleep(0.2)
    try:
        os.kill(int(child), signal.SIGKILL)  # type: ignore[call-overload]
    except ProcessLookupError:
        pass  # it had finished: the run goes on to the planned set
    out, _ = proc.communicate(timeout=120)
    assert assert_consistent(faults, env) in ("before", "planned"), out
    if proc.returncode != 0:
        assert "environment restored" in out


def test_dead_index_at_restore_restores_from_disk(faults: Faults, env: Path, tmp_path: Path) -> None:
    # Step 2 starts, the indexes die: step 2 fails and the restore must put torch 2.1.0 back with no index at all.
    proc = gpustack("install", "--plan", str(plan_file(faults, tmp_path)), "--python-exe", str(env),
                    "--installer", "pip", cache=tmp_path / "cache")
    wait_for(lambda: "[2/2]" in (journal_step(env) or ""))
    faults.server.stop()
    out, _ = proc.communicate(timeout=180)
    faults.server.start()
    if proc.returncode == 0:  # step 2 had already fetched what it needed
        assert assert_consistent(faults, env) == "planned"
        return
    assert "environment restored" in out and "RESTORE INCOMPLETE" not in out, out
    assert assert_consistent(faults, env) == "before"


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_kill_9_of_the_restores_installer_then_recover(faults: Faults, env: Path, tmp_path: Path,
                                                       backend: str) -> None:
    # A plan whose step 2 cannot be found: the restore starts and its uninstaller is killed -9.
    data = json.loads(plan_file(faults, tmp_path).read_text())
    data["steps"][1]["requirement"] = "xformers==9.9.9"
    data["packages"] = data["packages"][:1]
    path = tmp_path / "bad-plan.json"
    path.write_text(json.dumps(data))
    proc = gpustack("install", "--plan", str(path), "--python-exe", str(env), "--installer", backend,
                    cache=tmp_path / "cache")
    killed = []
    end = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < end:
        if "restoring" in (journal_step(env) or ""):
            for c in children(proc.pid):
                try:
                    cmd = Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if "uninstall" in cmd:
                    os.kill(c, signal.SIGKILL)
                    killed.append(cmd)
        time.sleep(0.005)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if journal_step(env) is not None:  # the restore could not finish: it says so, and never "restored"
        assert "RESTORE INCOMPLETE" in out and "environment restored" not in out, out
        assert "gpustack recover --python-exe" in out
        rec = gpustack("recover", "--python-exe", str(env), cache=tmp_path / "cache")
        rout, _ = rec.communicate(timeout=120)
        assert rec.returncode == 0, rout
    assert assert_consistent(faults, env) == "before", (killed, out)


def test_concurrent_installs_with_different_cache_dirs(faults: Faults, env: Path, tmp_path: Path) -> None:
    plan = str(plan_file(faults, tmp_path))
    a = gpustack("install", "--plan", plan, "--python-exe", str(env), "--installer", "pip", cache=tmp_path / "c1")
    b = gpustack("install", "--plan", plan, "--python-exe", str(env), "--installer", "uv", cache=tmp_path / "c2")
    out_a, _ = a.communicate(timeout=300)
    out_b, _ = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, (out_a, out_b)
    assert assert_consistent(faults, env) == "planned"
    # One did the work; the other waited for the lock and found nothing left to change.
    assert sorted(["nothing changed" in out_a, "nothing changed" in out_b]) == [False, True], (out_a, out_b)


def test_failing_build_restores(faults: Faults, env: Path, tmp_path: Path) -> None:
    data = json.loads(plan_file(faults, tmp_path).read_text())
    src = fakewheels.failing_project(tmp_path)
    data["steps"].append(Step("build", "failpkg", "failpkg==0.1.0", url=src.as_uri(), no_deps=True,
                              build_isolation=False).to_dict())
    path = tmp_path / "build-plan.json"
    path.write_text(json.dumps(data))
    proc = gpustack("install", "--plan", str(path), "--python-exe", str(env), "--installer", "pip",
                    cache=tmp_path / "cache")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "environment restored" in out, out
    assert assert_consistent(faults, env) == "before"


def test_full_run_then_sigterm_after_success_changes_nothing(faults: Faults, env: Path, tmp_path: Path) -> None:
    proc = gpustack("install", "--plan", str(plan_file(faults, tmp_path)), "--python-exe", str(env),
                    "--installer", "uv", cache=tmp_path / "cache")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "torch 2.1.0+cu121 -> 2.2.0+cu121" in out and "xformers 0.0.23 -> 0.0.24" in out
    assert assert_consistent(faults, env) == "planned"


_DISK_FULL = r"""
set -u
mount -t tmpfs -o size="$SIZE_K"k gpustack-disk-full "$MNT" || exit 90
cp -a "$BEFORE" "$MNT/venv" || exit 91
PY="$MNT/venv/bin/python"
"$GS_PY" -m resolver install --plan "$PLAN" --python-exe "$PY" --installer "$BACKEND" > "$OUT/install.txt" 2>&1
echo $? > "$OUT/rc"
unset PYTHONPATH  # gpustack's checkout, not the venv's
"$PY" -m pip freeze --all > "$OUT/freeze" 2>&1
"$PY" -m pip check > "$OUT/check" 2>&1; echo $? > "$OUT/check_rc"
ls "$MNT"/venv/lib/python3*/site-packages > "$OUT/tops"
ls -A "$MNT/venv/.gpustack" > "$OUT/state" 2>&1
df -k "$MNT" >> "$OUT/install.txt"
"""


def _namespace() -> list[str] | None:
    """Return the command prefix that runs a shell script in a private mount namespace where it may mount a tmpfs
    (``unshare -m`` as root, ``unshare -rm`` otherwise), or ``None`` when this machine allows neither."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*prefix, "sh", "-c", 'd=$(mktemp -d) && mount -t tmpfs -o size=1m t "$d"; r=$?; '
                                "umount \"$d\" 2>/dev/null; rmdir \"$d\"; exit $r"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_disk_full_mid_step_restores(faults: Faults, tmp_path: Path, backend: str) -> None:
    # The venv lives on a tmpfs with ~8 MiB free: torch 2.2.0's 24 MiB of files cannot fit, so step 1 fails with
    # ENOSPC half way. The backup (hard links beside the journal, on the same full filesystem) needs no free space,
    # and neither does putting it back; the journal's own writes while restoring may fail without stopping it.
    prefix = _namespace()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here (neither `unshare -m` nor `unshare -rm` may mount)")
    used_k = int(subprocess.run(["du", "-sk", str(faults.before_venv)], capture_output=True, text=True,
                                check=True).stdout.split()[0])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "mnt").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", GPUSTACK_CACHE_DIR=str(tmp_path / "cache"),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONPATH=str(REPO),
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", ""), UV_CACHE_DIR=os.environ.get("UV_CACHE_DIR", ""),
               SIZE_K=str(used_k + 8 * 1024), MNT=str(tmp_path / "mnt"), BEFORE=str(faults.before_venv),
               GS_PY=sys.executable, PLAN=str(plan_file(faults, tmp_path)), BACKEND=backend, OUT=str(out_dir))
    done = subprocess.run([*prefix, "bash", "-c", _DISK_FULL], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    out = (out_dir / "install.txt").read_text()
    assert (out_dir / "rc").read_text().strip() != "0", out  # the disk was too small: the install must fail
    assert "No space left" in out or "ENOSPC" in out or "os error 28" in out, out
    assert "environment restored" in out and "RESTORE INCOMPLETE" not in out, out
    assert sorted((out_dir / "freeze").read_text().split()) == faults.before, out
    assert (out_dir / "check_rc").read_text().strip() == "0", (out_dir / "check").read_text()
    before_site = next((faults.before_venv / "lib").glob("python3*/site-packages"))
    tops = set((out_dir / "tops").read_text().split()) - {"__pycache__"}
    assert tops == {p.name for p in before_site.iterdir()} - {"__pycache__"}, "stray files left"
    assert "transaction.json" not in (out_dir / "state").read_text(), "a journal was left"


def _processes_with(marker: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(p.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: signal.Signals(s).name)
def test_a_build_s_compiler_is_stopped_before_the_restore(faults: Faults, env: Path, tmp_path: Path, sig: int) -> None:
    # pip's build backend starts a compiler-like grandchild in a session of its own (as a build tool may): neither
    # the death signal gpustack gives its children nor the stop of the installer's process group reaches it. After a
    # SIGKILL of gpustack, `gpustack recover` must stop it (every process the transaction started carries its id)
    # before restoring; after a SIGTERM, gpustack's own restore must.
    marker = f"gpustack-test-compiler-{os.getpid()}-{time.monotonic_ns()}"
    body = ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {marker!r}], "
            "start_new_session=True)\n"
            "time.sleep(300)\n")
    src = fakewheels.local_project(tmp_path, "slowpkg", setup_body=body)
    data = json.loads(plan_file(faults, tmp_path).read_text())
    data["steps"] = [Step("build", "slowpkg", "slowpkg==0.1.0", url=src.as_uri(), no_deps=True,
                          build_isolation=False, description="build slowpkg").to_dict()]
    data["packages"] = data["packages"][:1]
    data["packages"][0]["version"] = "2.1.0+cu121"
    path = tmp_path / "slow-plan.json"
    path.write_text(json.dumps(data))
    proc = gpustack("install", "--plan", str(path), "--python-exe", str(env), "--installer", "pip",
                    cache=tmp_path / "cache")
    try:
        wait_for(lambda: _processes_with(marker), timeout=120)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        if sig == signal.SIGKILL:
            time.sleep(0.5)
            assert _processes_with(marker), "the grandchild died with gpustack: nothing left to test"
            rec = gpustack("recover", "--python-exe", str(env), cache=tmp_path / "cache")
            out, _ = rec.communicate(timeout=120)
            assert rec.returncode == 0, out
        else:
            assert proc.returncode == 128 + sig and "environment restored" in out, out
        assert "stopped" in out and "left running by the interrupted install" in out, out
        wait_for(lambda: not _processes_with(marker), timeout=10)
        assert assert_consistent(faults, env, out) == "before"
    finally:
        for pid in _processes_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
