"""An install's transaction journal, kept inside the environment it changes (``<sys.prefix>/.gpustack/``).

Before the first change, ``begin`` makes a backup of every file owned by the installed distributions the run may change
(hard links, per ``RECORD``: no copy of the data, no network needed to put it back, and next to no free space, so a
full disk cannot make the restore impossible), then writes (atomically, one fsync) what the environment held, the
plan and the backup's manifest. ``step`` records the step reached. ``finish`` removes journal and backup once the environment is either
as planned or as before. A journal still there means a gpustack run was killed (SIGKILL, power cut) or could not
finish its restore: ``gpustack recover`` finishes it, every command that targets that environment says so first,
and ``install`` refuses to start on top of it. The environment's lock file lives in the same folder, so two
installs into one environment exclude each other whoever starts them and whatever their cache folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver.errors import BadInput, GpuStackError

__all__ = ["STATE_DIR", "TXN_ENV", "leftovers", "stop_leftovers", "Journal", "JournalPending", "state_dir", "lock_file", "prefix_of", "pending", "unfinished",
           "begin", "notice", "recover_command"]

STATE_DIR = ".gpustack"
# Every process a transaction starts (installers, build backends, compilers: environments are inherited) carries
# ``GPUSTACK_TRANSACTION=<its id>``, so what an interrupted run left running can be found and stopped.
TXN_ENV = "GPUSTACK_TRANSACTION"
_JOURNAL = "transaction.json"
_BACKUP = "backup"
_LOCK = "lock"


def _pid_state(pid: object) -> str:
    """Return whether process ``pid`` (the journal's writer) is alive here, as words: the journal's ``state`` says
    what the run was doing, not whether it still runs (a killed run's journal says "running")."""
    if not isinstance(pid, int) or pid <= 0:
        return ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ", no longer running"
    except OSError:  # another user's process: it exists
        pass
    return ", still running"

class JournalPending(GpuStackError):
    """The environment holds an unfinished transaction; nothing was changed by this command."""

    exit_code = 1


def state_dir(prefix: str) -> Path:
    """Return gpustack's folder inside the environment whose ``sys.prefix`` is ``prefix``."""
    return Path(prefix) / STATE_DIR


def lock_file(prefix: str) -> Path:
    """Return the environment's lock file (created with its folder); ``BadInput`` when the prefix is read-only."""
    folder = state_dir(prefix)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise BadInput(f"{folder}: not a folder, where gpustack keeps the environment's lock and transaction journal; "
                       "move that file away, then run the command again")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{prefix}: cannot write there ({exc.strerror}); install into a virtual environment "
                       "(--venv DIR) or run as the environment's owner") from None
    return folder / _LOCK


_prefixes: dict[str, str] = {}  # interpreter path -> its sys.prefix, once a child or a reading said it


def prefix_of(python_exe: str, reported: str | None = None) -> str:
    """Return ``sys.prefix`` of ``python_exe``: a venv's folder (``pyvenv.cfg``), this one's, ``reported`` (what a
    reading of ``python_exe`` already said), what an earlier call of this process learnt, or asked in a child
    (an install into a conda or system Python asks it before and under the lock: one child, not two)."""
    exe = Path(python_exe)
    if (exe.parent.parent / "pyvenv.cfg").is_file():
        return str(exe.parent.parent.absolute())
    if os.path.abspath(python_exe) == os.path.abspath(sys.executable):
        return sys.prefix
    known = reported if reported is not None else _prefixes.get(python_exe)
    if known is None:
        from resolver.target import read_target  # the one reader of a target interpreter

        known = read_target(python_exe, "light").prefix
    if os.sep in python_exe:  # a bare name is looked up on PATH, which may change
        _prefixes[python_exe] = known
    return known


def recover_command(python_exe: str) -> str:
    """Return the command that finishes an interrupted transaction of ``python_exe``'s environment."""
    return f"gpustack recover --python-exe {python_exe}"


@dataclass
class Journal:
    """One environment's open transaction: the file under ``<prefix>/.gpustack/`` and what it records."""

    prefix: str
    data: dict[str, Any]

    @property
    def path(self) -> Path:
        return state_dir(self.prefix) / _JOURNAL

    @property
    def backup(self) -> Path:
        return state_dir(self.prefix) / _BACKUP

    @property
    def python_exe(self) -> str:
        return str(self.data.get("python_exe", ""))

    @property
    def snapshot(self) -> Mapping[str, Sequence[Any]]:
        """Return the environment before the transaction: name -> [version, direct url, editable]."""
        return dict(self.data.get("snapshot", {}))

    @property
    def manifest(self) -> dict[str, dict[str, Any]]:
        """Return the backed-up distributions: name -> {"version", "files": [paths relative to the prefix]}."""
        return dict(self.data.get("backup", {}))

    @property
    def readable(self) -> bool:
        """Whether the journal file could be read (as JSON, an object)."""
        return "unreadable" not in self.data

    def describe(self) -> str:
        """Return one line: when and what it was doing, and the step reached, as far as the journal says (a journal
        that cannot be read says only that: no start time, pid or step it does not hold)."""
        d = self.data
        if "unreadable" in d:
            return f"an unfinished gpustack transaction in {self.prefix} whose journal {self.path} cannot be read " \
                   f"({d['unreadable']})"
        said = []
        if isinstance(d.get("started"), (int, float)):
            said.append("started " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(d["started"]))))
        if isinstance(d.get("pid"), int):
            said.append(f"by pid {d['pid']}{_pid_state(d['pid'])}")
        said = [" ".join(said)] if said else []
        said.append(f"state {d.get('state', 'running')}")
        if d.get("step"):
            said.append(str(d["step"]))
        elif "snapshot" in d:  # a plan install records each step it starts; a lock install's one run records none
            said.append("before its first step" if d.get("plan") else "installing a lock")
        return f"an unfinished gpustack transaction in {self.prefix} ({', '.join(said)})"

    def by_hand(self) -> str:
        """Return what a person does where ``recover`` has nothing to restore from."""
        return f"compare the environment with `pip freeze`, then remove {self.path}"

    def next_step(self, python_exe: str) -> str:
        """Return what finishes it: ``recover``, or, for a journal that cannot be read (recover has nothing to
        restore from), comparing the environment by hand and removing the journal."""
        if not self.readable:
            return self.by_hand()
        return f"run `{recover_command(python_exe)}`"

    def write(self) -> None:
        """Write the journal atomically (temporary file, fsync, rename, fsync of the folder). A journal whose
        restore arguments hold an index URL with credentials (a reinstall of what the backup lacks needs them) is
        readable by its owner only (0600); any other is made as before (0666 less the umask: whoever shares the
        environment reads it)."""
        from resolver.redact import redact

        text = json.dumps(self.data, separators=(",", ":"))
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.unlink(missing_ok=True)  # a leftover keeps its mode: the file is created anew
            mode = 0o600 if redact(text) != text else 0o666
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:  # a full disk: the journal on disk stays as it was, and no half-written copy beside it
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)

    def step(self, text: str, state: str = "running") -> None:
        """Record the step reached (``[2/3] install xformers ...``) and the state (running, restoring, ...)."""
        self.data["step"] = text
        self.data["state"] = state
        self.write()

    def finish(self) -> None:
        """Remove the journal, then its backup: the environment is as planned or as before."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        _fsync_dir(self.path.parent)
        shutil.rmtree(self.backup, ignore_errors=True)

    def extend_backup(self, dists: Mapping[str, tuple[str, str]]) -> None:
        """Add ``dists`` (name -> (version, metadata folder), as they were before the transaction) to the backup and
        record them (one journal write): done before the step that may change them starts its installer."""
        added, _ = _link_backup(self.backup, self.prefix, dists)
        self.data.setdefault("backup", {}).update(added)
        self.write()

    def put_back(self, name: str) -> bool:
        """Copy ``name``'s backed-up files into the environment (after its current version was uninstalled);
        return whether the backup had it."""
        entry = self.manifest.get(name)
        if entry is None:
            return False
        root = Path(str(self.data.get("backup_prefix") or self.prefix))
        for rel in entry["files"]:
            src, dst = self.backup / rel, root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists() or dst.is_symlink():
                dst.unlink()
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        return True


def leftovers(txn_id: str) -> list[int]:
    """Return the processes (not this one) whose environment says they belong to transaction ``txn_id``: what a
    killed run's installer left running, such as a compiler its build backend started in a session of its own
    (Linux ``/proc``; elsewhere, and for other users' processes, nothing)."""
    needle = f"{TXN_ENV}={txn_id}".encode() + b"\0"
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read() + b"\0":
                    found.append(int(entry))
        except OSError:
            continue
    return found


def stop_leftovers(journal: Journal, wait: float = 10.0) -> list[int]:
    """SIGKILL the processes an interrupted run of ``journal`` left running and wait (up to ``wait`` s) until they
    are gone, so none goes on writing into the environment while it is restored; return their pids."""
    txn_id = str(journal.data.get("id") or "")
    if not txn_id:
        return []
    found = leftovers(txn_id)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    end = time.monotonic() + wait
    while found and time.monotonic() < end and any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in found):
        time.sleep(0.02)
    return found


def _alive(pid: int) -> bool:
    """Return whether ``pid`` still runs (a zombie, waiting for its parent to reap it, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def remove_strays(journal: Journal) -> list[str]:
    """Remove what a killed installer left at the top of site-packages that was not there before the transaction
    (a package folder written before its dist-info); return the paths removed. Call it after the restore."""
    removed = []
    for folder, before in dict(journal.data.get("toplevel", {})).items():
        if not os.path.isdir(folder):
            continue
        for entry in sorted(set(os.listdir(folder)) - set(before)):
            path = os.path.join(folder, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.remove(path)
                except OSError:
                    continue
            removed.append(path)
    return removed


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pending(prefix: str) -> Journal | None:
    """Return the environment's unfinished transaction, or ``None``."""
    path = state_dir(prefix) / _JOURNAL
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        data = {"unreadable": str(exc)}
    return Journal(prefix, data if isinstance(data, dict) else {"unreadable": "not a JSON object"})


def begin(python_exe: str, prefix: str, snapshot: Mapping[str, Sequence[Any]], *, command: str,
          plan: Mapping[str, Any] | None, backend: str, restore_args: Sequence[str],
          backup: Mapping[str, tuple[str, str]] = {}, toplevel: Mapping[str, Sequence[str]] = {}) -> Journal:
    """Return the journal of a new transaction, written (after its backup) before anything changes.

    ``backup`` names the distributions the run may change: name -> (version, metadata folder, as
    ``resolver.target`` reported it); their files inside ``prefix`` are hard-linked into the backup first. A kill
    before the journal is written leaves only a stray backup folder (nothing had changed; the next ``begin`` removes
    it). ``toplevel`` is what the site-packages folders held (``remove_strays`` removes what a killed installer added).
    Raises ``JournalPending`` when an earlier transaction is unfinished, ``GpuStackError`` when the backup cannot be
    made (nothing changed then).
    """
    from resolver.redact import redact

    old = pending(prefix)
    if old is not None:
        raise JournalPending(f"{old.describe()}; {old.next_step(python_exe)} first")
    journal = Journal(prefix, {
        "version": 1, "pid": os.getpid(), "started": time.time(), "python_exe": python_exe, "command": command,
        "id": f"{os.getpid()}-{time.time_ns()}",
        # the plan is for reading (a restore needs only the snapshot, backup and restore_args): no credentials
        "plan": json.loads(redact(json.dumps(dict(plan)))) if plan is not None else None,
        "snapshot": {k: list(v) for k, v in snapshot.items()},
        "backend": backend, "restore_args": list(restore_args), "state": "running", "step": "",
        "toplevel": {k: list(v) for k, v in toplevel.items()},
    })
    shutil.rmtree(journal.backup, ignore_errors=True)
    try:
        journal.data["backup"], journal.data["backup_prefix"] = _link_backup(journal.backup, prefix, backup)
        journal.write()
    except OSError as exc:
        shutil.rmtree(journal.backup, ignore_errors=True)
        raise GpuStackError(f"could not back up {prefix} before installing ({exc}); nothing was changed") from None
    return journal


def _link_backup(dest: Path, prefix: str, dists: Mapping[str, tuple[str, str]]) -> tuple[dict[str, Any], str]:
    """Hard-link (copy where a link is impossible) the files of ``dists`` into ``dest``; return the manifest
    {name: {"version", "files": [paths relative to the real prefix]}} and that real prefix."""
    real = os.path.realpath(prefix)
    dest.mkdir(parents=True, exist_ok=True)
    if not dists:
        return {}, real
    from resolver._child.probe_env import dist_files  # the target reader's own rule for a distribution's files

    made: set[str] = set()
    manifest: dict[str, Any] = {}
    for name, (version, info) in sorted(dists.items()):
        files = []
        for rel in dist_files(info, real):
            src, target = os.path.join(real, rel), os.path.join(dest, rel)
            parent = os.path.dirname(target)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            try:
                os.link(src, target)
            except FileExistsError:
                pass
            except OSError:
                if not os.path.isfile(src):
                    continue
                shutil.copy2(src, target)
            files.append(rel)
        if files:
            manifest[name] = {"version": version, "files": files}
    return manifest, real


def unfinished(prefix: str) -> Journal | None:
    """Return the environment's journal when no gpustack run holds its lock (it was killed, or its restore could
    not finish); ``None`` when there is none or its run is still going (that run will finish or restore it)."""
    found = pending(prefix)
    if found is None:
        return None
    from resolver.envlock import EnvLock

    lock = EnvLock(str(state_dir(prefix) / _LOCK))
    try:
        if not lock.acquire(timeout=0):
            return None
    except OSError:
        return None
    try:
        return pending(prefix)
    finally:
        lock.release()


_noticed: set[str] = set()


def notice(python_exe: str, echo: Any = None, *, prefix: str | None = None) -> Journal | None:
    """Say once per process, on stderr, when ``python_exe``'s environment holds an unfinished transaction;
    ``prefix``: its ``sys.prefix`` when the caller has just read it (``prefix_of`` then starts no child)."""
    try:
        prefix = prefix_of(python_exe, prefix)
    except BadInput:
        return None
    found = unfinished(prefix)
    if found is not None and prefix not in _noticed:
        _noticed.add(prefix)
        line = f"gpustack: warning: {found.describe()}; its packages may be half changed: " \
               f"{found.next_step(python_exe)}"
        (echo or (lambda s: print(s, file=sys.stderr)))(line)
    return found
