"""An environment's installed set: read it, compare two readings, put an old one back, and lock the environment.

``snapshot`` reads the target interpreter's distributions in a child (``_child/probe_env.py``, which finds them as
``importlib.metadata`` does: it works in venvs without pip, such as uv's). ``restore`` reinstalls what was removed
or changed at its old version (from the file it came from when ``direct_url.json`` names one, else from the run's
own sources, which pip and uv cache) and uninstalls what was added. ``env_lock`` is an inter-process lock file
inside the environment's ``sys.prefix``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from resolver import _subprocess, journal as journals
from resolver.envlock import EnvLock
from resolver.errors import BadInput, GpuStackError  # BadInput: what snapshot raises (via resolver.target)
from resolver.logs import Logger
from resolver.target import TargetFacts, parse_facts, read_again, read_target

__all__ = ["Dist", "Snapshot", "EnvDiff", "Restorer", "snapshot", "snapshot_of", "diff", "restore", "env_lock",
           "EnvironmentLocked"]

log = Logger("gpustack.envstate")

class EnvironmentLocked(GpuStackError):
    """Another gpustack run holds the environment's lock for longer than we were willing to wait: not bad input (the
    world is busy), so exit 1."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Dist:
    """One installed distribution: normalized name, version, and the URL it was installed from (if recorded)."""

    name: str
    version: str
    url: str | None = None
    editable: bool = False

    def requirement(self) -> str:
        """Return what reinstalls exactly this distribution: ``name==version``, ``name @ url`` or ``-e path``."""
        if self.url and self.editable:
            return f"-e {self.url}"
        if self.url and self.url.endswith(".whl"):
            return f"{self.name} @ {self.url}"
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The distributions installed in one environment (``prefix`` is its ``sys.prefix``).

    ``facts`` is the reading it was made from (``None`` for one a journal recorded, which holds only ``prefix`` and
    ``dists``): what else the reading found is read from it, not copied, through the properties below.
    """

    prefix: str
    dists: Mapping[str, Dist]
    facts: TargetFacts | None = field(default=None, compare=False, repr=False)  # the reading (also for read_again)

    @property
    def debris(self) -> tuple[str, ...]:
        """The ``~``-folders a killed pip left in site-packages."""
        return self.facts.debris if self.facts is not None else ()

    @property
    def dist_paths(self) -> Mapping[str, str]:
        """Name -> metadata folder (what a backup links)."""
        return self.facts.dist_paths if self.facts is not None else {}

    @property
    def toplevel(self) -> Mapping[str, tuple[str, ...]]:
        """Site-packages folder -> its entries."""
        return self.facts.toplevel if self.facts is not None else {}

    @property
    def torch_version_py(self) -> str | None:
        """The installed torch's ``version.py`` text (its version and CUDA)."""
        return self.facts.torch_version_py if self.facts is not None else None

    @property
    def python_tag(self) -> str:
        """``cp311``; empty when unknown."""
        return self.facts.python_tag if self.facts is not None else ""

    @property
    def platform(self) -> str:
        """``linux_x86_64``; empty when unknown."""
        return self.facts.platform if self.facts is not None else ""

    @property
    def markers(self) -> Mapping[str, str]:
        """The interpreter's PEP 508 marker environment, as it reported it; empty when unknown."""
        return self.facts.markers if self.facts is not None else {}

    def version(self, name: str) -> str | None:
        """Return the installed version of ``name`` (normalized), or ``None`` when absent."""
        dist = self.dists.get(name)
        return dist.version if dist else None

    def freeze(self) -> list[str]:
        """Return ``name==version`` lines, sorted: the ``pip freeze``-like view tests compare."""
        return sorted(f"{d.name}=={d.version}" for d in self.dists.values())


@dataclass(frozen=True, slots=True)
class EnvDiff:
    """What changed between two snapshots: added names, removed dists, and (old, new) pairs of changed ones."""

    added: tuple[Dist, ...] = ()
    removed: tuple[Dist, ...] = ()
    changed: tuple[tuple[Dist, Dist], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        """Return one line such as ``torch 2.2.0 -> 2.1.0+cu121; removed xformers 0.0.1``; ``unchanged`` if empty."""
        parts = [f"{new.name} {new.version} -> {old.version}" for old, new in self.changed]
        parts += [f"reinstalled {d.name} {d.version}" for d in self.removed]
        parts += [f"removed {d.name} {d.version}" for d in self.added]
        return "; ".join(parts) or "unchanged"

    def remaining(self) -> str:
        """Return, for what a restore could not undo (``diff(before, now)``), how the environment still differs from
        before, as a state: ``torch is 2.2.0, was 2.1.0; ghostpkg 1.0 missing; foo 1.0 not there before``."""
        parts = [f"{new.name} is {new.version}, was {old.version}" for old, new in self.changed]
        parts += [f"{d.name} {d.version} missing" for d in self.removed]
        parts += [f"{d.name} {d.version} not there before" for d in self.added]
        return "; ".join(parts) or "nothing"

    def summary(self) -> str:
        """Return the change in its own direction (``before`` -> ``after``): ``torch 2.1.0 -> 2.2.0; added
        xformers 0.0.24; removed foo 1.0``; ``nothing changed`` if empty."""
        parts = [f"{old.name} {old.version} -> {new.version}" for old, new in self.changed]
        parts += [f"added {d.name} {d.version}" for d in self.added]
        parts += [f"removed {d.name} {d.version}" for d in self.removed]
        return "; ".join(parts) or "nothing changed"


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What ``restore`` undid (``undone``) and what still differs afterwards (``left``, empty on success)."""

    undone: EnvDiff
    left: EnvDiff = field(default_factory=EnvDiff)
    fix: str = ""


class Restorer(Protocol):
    """The installer backend, as ``restore`` needs it: argv lists that install or uninstall, nothing more."""

    def reinstall_argv(self, requirements: Sequence[str]) -> list[str]:
        """Return argv that installs exactly ``requirements`` (``--no-deps``, replacing what is there)."""

    def uninstall_argv(self, names: Sequence[str]) -> list[str]:
        """Return argv that uninstalls ``names`` without asking."""


def snapshot_of(facts: TargetFacts) -> Snapshot:
    """Return the snapshot of an ``installed`` reading."""
    dists = {k: Dist(k, version, url, editable) for k, (version, url, editable) in facts.dists.items()}
    return Snapshot(facts.prefix, dists, facts)


def parse_snapshot(text: str) -> Snapshot:
    """Return the snapshot in the child's answer (``probe_env.py --mode installed``)."""
    return snapshot_of(parse_facts(text, "installed"))


def snapshot(python_exe: str, since: Snapshot | None = None) -> Snapshot:
    """Return what ``python_exe`` has installed (``resolver.target``, mode ``installed``: every distribution with
    the URL it came from and its metadata folder, the ``~``-folders a killed pip left, the site-packages listing and
    torch's ``version.py``), in one child. ``since``, an earlier snapshot of the same interpreter, lets it read
    again in this process while no ``.pth`` file changed (``resolver.target.read_again``). Raises ``BadInput`` when
    it cannot be run as Python."""
    if since is not None and since.facts is not None:
        return snapshot_of(read_again(since.facts))
    return snapshot_of(read_target(python_exe, "installed"))


def diff(before: Snapshot, after: Snapshot) -> EnvDiff:
    """Return how ``after`` differs from ``before``."""
    added = tuple(after.dists[k] for k in sorted(after.dists.keys() - before.dists.keys()))
    removed = tuple(before.dists[k] for k in sorted(before.dists.keys() - after.dists.keys()))
    changed = tuple((before.dists[k], after.dists[k]) for k in sorted(before.dists.keys() & after.dists.keys())
                    if before.dists[k].version != after.dists[k].version)
    return EnvDiff(added, removed, changed)


def snapshot_from(prefix: str, dists: Mapping[str, Sequence[object]]) -> Snapshot:
    """Return the snapshot a journal recorded (name -> [version, url, editable])."""
    return Snapshot(prefix, {k: Dist(k, str(v[0]), v[1] if isinstance(v[1], str) else None, bool(v[2]))
                             for k, v in dists.items()})


def restore(before: Snapshot, python_exe: str, restorer: Restorer,
            journal: journals.Journal | None = None) -> RestoreResult:
    """Return what was undone to bring ``python_exe`` back to ``before``, and whatever still differs.

    Folders a killed installer left behind (``~orch``) are removed. Added and changed dists are uninstalled first
    (so they cannot pull old ones forward again); then removed and changed ones are put back from the
    transaction's backup (``journal``: their files as they were, no network), and only those the backup lacks are
    reinstalled at their old versions with ``--no-deps`` from the run's sources. Failures are logged, not raised:
    the caller reports ``left``.
    """
    now = snapshot(python_exe)
    for path in set(now.debris) - set(before.debris):  # a killed pip's stash: the reinstall below replaces it
        log.info("removing %s, left by an interrupted installer", path)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    undo = diff(before, now)
    if not undo:
        if journal is not None:
            journals.remove_strays(journal)
        return RestoreResult(undo)
    olds = [old for old, _ in undo.changed] + list(undo.removed)
    manifest = journal.manifest if journal is not None else {}  # a copy per access: taken once
    from_disk = [d for d in olds if manifest.get(d.name, {}).get("version") == d.version]
    remove = [d.name for d in undo.added] + [old.name for old, _ in undo.changed if old in from_disk]
    if remove:
        _quiet(restorer.uninstall_argv(remove))
    for d in from_disk:
        assert journal is not None
        try:
            journal.put_back(d.name)
        except OSError as exc:
            log.warning("could not put back %s %s from %s: %s", d.name, d.version, journal.backup, exc)
    back = [d.requirement() for d in olds if d not in from_disk]
    if back:
        _quiet(restorer.reinstall_argv(back))
    if journal is not None:
        for path in journals.remove_strays(journal):
            log.info("removed %s, written by the interrupted installer", path)
    return RestoreResult(undo, diff(before, snapshot(python_exe)))


def _quiet(argv: list[str]) -> None:
    done = _subprocess.run(argv, check=False, timeout=3600, env={"PIP_YES": "1"})
    if done.returncode != 0:
        log.warning("restore step failed (%d): %s\n%s", done.returncode, " ".join(argv), done.stdout + done.stderr)


def lock_path(prefix: str) -> str:
    """Return the lock file of the environment whose ``sys.prefix`` is ``prefix``: inside it (``.gpustack/lock``),
    so installs into one environment exclude each other whatever their user or cache folder."""
    return str(journals.lock_file(prefix))


def env_lock(prefix: str, timeout: float = 600.0, waiting: Callable[[str], None] | None = None) -> EnvLock:
    """Return the acquired lock on environment ``prefix`` (``resolver.envlock``); raises ``EnvironmentLocked`` after
    ``timeout`` s, ``BadInput`` when the lock file cannot be made there. When another run holds it, ``waiting`` is
    told so once (what that run is doing, and for how long this one waits) before the wait.

    Release it with ``.release()`` or use it as a context manager.
    """
    path = lock_path(prefix)
    lock = EnvLock(path)
    try:
        held = lock.acquire(0.0)
        if not held and timeout > 0:
            if waiting is not None:
                running = journals.pending(prefix)
                what = running.describe() if running is not None else f"lock {path}"
                waiting(f"waiting for another gpustack run on {prefix} to finish ({what}); up to {timeout:.0f} s, "
                        f"Ctrl-C stops waiting")
            held = lock.acquire(timeout)
    except OSError as exc:
        raise BadInput(f"{prefix}: cannot lock it ({path}: {exc.strerror}); install into a virtual environment "
                       "(--venv DIR) or run as the environment's owner") from None
    if not held:  # an flock(2) lock goes with the process that holds it: it is never stale, never to be removed
        running = journals.pending(prefix)
        what = running.describe() if running is not None else f"it holds the lock {path}"
        raise EnvironmentLocked(f"{prefix} is being changed by another gpustack run ({what}); waited {timeout:.0f} s: "
                                "run this command again once that run has finished")
    return lock
