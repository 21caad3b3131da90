"""Install exactly what a lock pins: ``install_from_lock(locked, python_exe)``.

Deciding (``requirements_text``, ``check_lock_target``) is pure; doing goes through ``resolver._subprocess``. pip
(or uv) checks every file against the lock's sha256 itself (``--require-hashes``) and downloads and verifies every
file before it installs any, so a tampered lock or file changes nothing.

Without the network (``--offline``, or a host of the lock's files that does not answer), the lock's hashes are
still what decides: a package installed from exactly the locked file (the sha256 its installer recorded in
``direct_url.json``, as pip does) is kept; uv takes the others from its cache, which holds each archive's sha256
and refuses one that is not the lock's; pip, which keeps no such copy, is refused before anything runs, naming the
files and ``--find-links``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from resolver import _subprocess
from resolver.errors import CommandFailed, GpuStackError
from resolver.lock import LockedPackage, LockedPlan, check_lock_target, lock_target_notes
from resolver.models import Gpu, Target
from resolver.report import Reporter

if TYPE_CHECKING:
    from resolver.envstate import Snapshot
    from resolver.installers import Installer

__all__ = ["LockRefused", "LockInstalled", "requirements_text", "installer_argv", "install_argv", "host_target",
           "install_from_lock", "unlisted"]

Runner = Callable[..., _subprocess.CompletedText]


class LockRefused(GpuStackError):
    """This machine does not satisfy the lock (or the lock has unhashed files): nothing was installed."""

    exit_code = 1

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__(list(reasons))
        self.reasons = list(reasons)

    def __str__(self) -> str:
        return "refusing to install the lock; nothing was changed:\n" + "\n".join(f"  - {r}" for r in self.reasons)


def _line(p: LockedPackage, *, direct: bool) -> str:
    """Return one requirements line: ``name==version`` (or ``name @ url``) with ``--hash`` when known."""
    req = f"{p.name} @ {p.url}" if direct and p.url else p.requirement
    return f"{req} \\\n    --hash=sha256:{p.sha256}" if p.sha256 else req


def requirements_text(locked: LockedPlan, *, direct: bool = False,
                      packages: Sequence[LockedPackage] | None = None) -> str:
    """Return a requirements.txt of ``locked``: index lines, then one pinned line per package with its ``--hash``.

    ``direct`` names each file by URL (what ``install_from_lock`` feeds pip) instead of ``name==version`` from the
    indexes. Source-built packages and unhashed files are written as comments saying how to install them.
    """
    chosen = list(packages) if packages is not None else [p for p in locked.packages if p.method == "wheel"]
    t = locked.target
    lines = [f"# gpustack lock for Python {t.python} on {t.platform}"
             + (f", CUDA {t.cuda}, driver >= {t.min_driver}" if t.cuda else ", CPU")]
    if t.gpus:
        lines.append("# GPUs: " + ", ".join(f"{g.name} ({g.compute_capability})" for g in t.gpus))
    if not locked.deps and packages is None:
        lines.append("# Locked with --no-deps (dependencies not listed): install with "
                     "`pip install --no-deps --require-hashes -r FILE`")
    # by name, a file comes from the index the lock names (a direct file only for those it has no URL of: a file
    # whose hash was not read, written under [[tool.gpustack.missing]] with its index and no URL)
    named = chosen if not direct else [p for p in chosen if not p.url]
    if named:
        indexes = list(dict.fromkeys(p.index for p in named if p.index))
        if indexes:
            lines.append(f"--index-url {indexes[0]}")
            lines += [f"--extra-index-url {i}" for i in indexes[1:]]
    lines += [_line(p, direct=direct) for p in chosen]
    if packages is None:
        for p in locked.packages:
            if p.method == "source":
                env = " ".join(f"{k}={v}" for k, v in sorted(p.build_env.items()))
                lines.append(f"# build from source: {env} pip install --no-build-isolation --no-deps "
                             f"'{p.name} @ {p.url}'" + (f" --hash=sha256:{p.sha256}" if p.sha256 else ""))
        for p in locked.missing:
            lines.append(f"# no sha256 known, install unverified: {p.requirement}" + (f" ({p.url})" if p.url else ""))
    return "\n".join(lines) + "\n"


def installer_argv(installer: Installer | Literal["pip", "uv"], python_exe: str) -> list[str]:
    """Return the start of an install command into ``python_exe``: uv's, or the environment's own pip, or this
    one's aimed at it with ``--python`` (a uv venv has no pip). ``installer`` is the install's ``Installer`` (it
    knows its uv, and its pip from the install's snapshot), or a backend, for which one is made here (finding pip
    reads the target once)."""
    from resolver.installers import Installer
    from resolver.uvbin import find_uv, uv_not_found

    if not isinstance(installer, Installer):
        if installer == "uv" and find_uv() is None:
            raise GpuStackError(uv_not_found("--installer uv"))
        installer = Installer(installer, python_exe, pip=None if os.path.exists(python_exe) else
                              [python_exe, "-m", "pip"])
    if installer.backend == "uv":
        return [installer.uv, "pip", "install", "--python", python_exe]
    return [*installer.pip, "install", "--disable-pip-version-check"]


def install_argv(start: Sequence[str], requirements: Path, *, verify: bool = True,
                 build_isolation: bool = True, reinstall: bool = False, offline: bool = False,
                 builds_from: Sequence[str] = ()) -> list[str]:
    """Return the argv that installs ``requirements`` with no dependencies (all are locked), ``start`` being
    ``installer_argv``'s answer for the target; ``reinstall`` (uv's ``--reinstall``) reads every file again, the
    installed ones too; ``offline`` (uv's ``--offline``) reads them from uv's cache, which checks each cached
    archive's recorded sha256 against the lock's (uv's ``--reinstall`` implies ``--refresh``: online, it asks the
    host again). ``builds_from`` (``--no-index``, ``--find-links DIR``) is where the build requirements of a
    locked sdist come from (every locked file is named by URL: indexes serve nothing else)."""
    argv = list(start)
    argv += ["--no-deps", "-r", str(requirements), *builds_from]
    if verify:
        argv.append("--require-hashes")
    if reinstall:
        argv.append("--reinstall")
    if offline:
        argv.append("--offline")
    if not build_isolation:
        argv.append("--no-build-isolation")
    return argv


def host_target(host: object) -> Target:
    """Return the ``Target`` of a detected ``resolver.detect.Host`` (GPUs of unknown capability are left out), with
    its interpreter's glibc (``pipeline.glibc_for``)."""
    from resolver.pipeline import glibc_for
    from resolver.probes import Host

    assert isinstance(host, Host)
    gpus = tuple(Gpu(g.name, g.compute_capability, g.memory_mib) for g in host.gpus if g.compute_capability)
    glibc, _ = glibc_for(host.env.platform, None, host.env.glibc, described=False)
    return Target(gpus=gpus, python=host.env.python, platform=host.env.platform, driver=host.driver, nvcc=host.nvcc,
                  cpu_count=host.cpu_count, glibc=glibc)


def detected_target(python_exe: str) -> Target:
    """Return the ``Target`` of this machine with ``python_exe`` as its interpreter (what a lock is checked against)."""
    return detected(python_exe)[0]


def detected(python_exe: str) -> tuple[Target, dict[str, str]]:
    """Return ``detected_target`` and the interpreter's own PEP 508 marker environment, as its probe read it
    (``probe_env.marker_environment``: ``python_full_version`` with its patch release): what ``for_host`` selects with."""
    from resolver.detect import detect

    host = detect(python_exe)
    return host_target(host), dict(host.env.markers)


def refuse_lock(locked: LockedPlan, host: Target, allow_missing_hashes: bool = False,
                note: Callable[[str], None] | None = None) -> None:
    """Raise ``LockRefused`` when ``host`` does not satisfy the lock's target or a file has no hash (unless
    ``allow_missing_hashes``), else pass ``note`` what the host lacks that a lock may go without
    (``lock_target_notes``: no GPU here): the one check an install of the lock and its dry run both make."""
    reasons = check_lock_target(locked, host)
    if locked.missing and not allow_missing_hashes:
        names = ", ".join(p.requirement for p in locked.missing)
        reasons.append(f"the lock has no sha256 for {names}; lock again where the index is reachable, "
                       "or pass --allow-missing-hashes to `gpustack install --lock` to install them unverified")
    if reasons:
        raise LockRefused(reasons)
    if note is not None:
        for text in lock_target_notes(locked, host):
            note(text)


def for_host(locked: LockedPlan, host: Target, markers: Mapping[str, str] | None = None) -> LockedPlan:
    """Return ``locked`` with the files an installer takes from it on ``host``: packaging's PEP 751 selection
    (``lock.selected``: each package's ``marker``, the first wheel whose tags ``host`` accepts, else the sdist), with
    ``host``'s marker environment (``markers``, the one its interpreter reported: ``detected``; else
    ``lock_resolve.marker_env``, whose ``python_full_version`` is ``X.Y.0``) and wheel tags (``hashes.accepted_tags``: its Python,
    platform and glibc), so gpustack installs what uv installs from the same lock. ``LockRefused`` (nothing changed)
    when a package has no file for ``host``; a lock ``check_lock_target`` refuses is returned as it is (refused by
    ``refuse_lock``, with its reasons)."""
    from packaging.pylock import PylockSelectError

    from resolver.hashes import accepted_tags
    from resolver.lock import selected
    from resolver.lock_resolve import marker_env

    if check_lock_target(locked, host):
        return locked
    try:
        return selected(locked, {**marker_env(host.python, host.platform), **(markers or {})}, accepted_tags(host))
    except PylockSelectError as exc:
        raise LockRefused([f"{str(exc).rstrip('.')} (Python {host.python}, {host.platform}"
                           + (f", glibc {host.glibc}" if host.glibc else "") + "): lock again for this machine "
                           "(gpustack lock --python-exe PATH)"]) from None


def recorded_sha256(metadata_folder: str) -> str | None:
    """Return the sha256 of the archive a distribution was installed from, as its installer recorded it in
    ``direct_url.json`` (PEP 610 ``archive_info.hashes``, or the older ``archive_info.hash``; pip records it, uv
    does not), else ``None``."""
    import json

    try:
        info = json.loads((Path(metadata_folder) / "direct_url.json").read_text()).get("archive_info")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(info, dict):
        return None
    hashes = info.get("hashes")
    if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
        return str(hashes["sha256"]).lower()
    old = info.get("hash")
    if isinstance(old, str) and old.startswith("sha256="):
        return old.split("=", 1)[1].lower()
    return None


def installed_as_locked(packages: Sequence[LockedPackage], installed: Snapshot) -> list[LockedPackage]:
    """Return the hashed ``packages`` that ``installed`` holds at their locked version, installed from a file whose
    recorded sha256 (``recorded_sha256``) is the lock's: exactly the locked file, checked when it went in."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    kept = []
    for p in packages:
        name = canonicalize_name(p.name)
        dist, folder = installed.dists.get(name), installed.dist_paths.get(name)
        if not p.sha256 or dist is None or folder is None:
            continue
        try:
            same = Version(dist.version) == Version(p.version)
        except InvalidVersion:
            same = dist.version == p.version
        if same and recorded_sha256(folder) == p.sha256.lower():
            kept.append(p)
    return kept


def _hosts(p: LockedPackage) -> list[str]:
    """Return the hosts (``installers.origin``) ``p`` is fetched from: its file's, or its index's when it is
    named by version; none for a local file."""
    from resolver.installers import origin

    return [o for o in map(origin, [p.url] if p.url else [p.index] if p.index else []) if o is not None]


def install_from_lock(locked: LockedPlan, python_exe: str, *, installer: Installer | Literal["pip", "uv"] = "pip",
                      host: Target | None = None, allow_missing_hashes: bool = False,
                      run: Runner = _subprocess.run, note: Callable[[str], None] | None = None,
                      installed: Snapshot | None = None, offline: bool = False, find_links: Sequence[str] = (),
                      probe: Callable[[Sequence[str]], list[str]] | None = None) -> list[str]:
    """Return the commands run to install exactly ``locked`` into ``python_exe``; raise ``LockRefused`` first when
    ``host`` (detected when ``None``) does not satisfy the lock's target or a file has no hash.

    Order: every wheel in one verified install, then each source package built with its locked environment (no
    build isolation, so it builds against the locked torch), then, only with ``allow_missing_hashes``, unhashed files.
    A package ``installed`` (read here when ``None``) from exactly its locked file is kept (``installed_as_locked``).
    Without the network (``offline``, or hosts that ``probe`` finds silent: ``installers.silent_hosts``) uv reads
    the files from its cache (``--offline``: each checked against the lock's sha256); pip is refused before anything
    runs. A locked sdist is built with its build requirements from the ``find_links`` folders (only them when
    ``offline``), where ``gpustack download`` puts them.
    """
    from resolver.installers import Sources

    if host is None:
        host = detected_target(python_exe)
    refuse_lock(locked, host, allow_missing_hashes, note)
    if installed is None and os.path.exists(python_exe):
        from resolver.envstate import snapshot

        installed = snapshot(python_exe)
    kept = {p.name for p in installed_as_locked(locked.packages, installed)} if installed is not None else set()
    if kept and note is not None:
        note(f"kept {', '.join(sorted(kept))}: installed from exactly the locked files (the sha256 their installer "
             "recorded is the lock's)")
    done: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gpustack-install-") as tmp:
        batches: list[tuple[list[LockedPackage], bool, dict[str, str]]] = []
        wheels = [p for p in locked.packages if p.method == "wheel" and p.name not in kept]
        if wheels:
            batches.append((wheels, True, {}))
        batches += [([p], True, dict(p.build_env)) for p in locked.packages if p.method == "source"
                    and p.name not in kept]
        if allow_missing_hashes and locked.missing:
            # by URL in one batch; by name (no URL was read) one batch per index, so each is asked only its own
            # index (uv would take a package from the first index that has its name: PyPI's torch for a +cpu one)
            by_url = [p for p in locked.missing if p.url]
            batches += [(by_url, False, {})] if by_url else []
            for index in dict.fromkeys(p.index for p in locked.missing if not p.url):
                batches.append(([p for p in locked.missing if not p.url and p.index == index], False, {}))
        uv = (installer.backend if not isinstance(installer, str) else installer) == "uv"
        silent = _offline_hosts([p for packages, _, _ in batches for p in packages], offline, uv, note, probe)
        start = installer_argv(installer, python_exe) if batches else []  # one reading of the target for all
        builds_from = (["--no-index"] if offline else []) + Sources(tuple(find_links)).links()
        # uv keeps a package installed at the locked version without reading its file, so the lock's hash was
        # never checked for it (a tampered lock installed "exactly"); pip reads a direct URL's file whatever is
        # installed. So uv reads the hashed wheels again (from its cache). Not the source builds: that would build
        # them again; their hash is checked when they are built.
        for i, (packages, verify, env) in enumerate(batches):
            path = Path(tmp) / f"requirements-{i}.txt"
            path.write_text(requirements_text(locked, direct=True, packages=packages))
            argv = install_argv(start, path, verify=verify, build_isolation=not env,
                                reinstall=uv and verify and not env, offline=bool(silent),
                                builds_from=[*_build_index(packages, offline), *builds_from])
            try:
                run(argv, env=env or None)
            except CommandFailed as exc:
                if not silent:
                    raise
                raise CommandFailed(exc.argv, exc.returncode, exc.output_tail.rstrip() + "\nhint: " + _no_copy(
                    silent, offline, "uv could read only its cache"), exc.log_path) from None
            done.append(" ".join(argv))
    return done


def _build_index(packages: Sequence[LockedPackage], offline: bool) -> list[str]:
    """Return the index options a batch's pass-through sdists (``kind`` sdist, built in isolation) are built with:
    the indexes the lock names for them, so their build requirements come from there (a mirror the lock was made
    with), not from the installer's default index (pypi.org); none ``offline`` (``--find-links`` only)."""
    indexes = list(dict.fromkeys(p.index for p in packages if p.kind == "sdist" and p.method == "wheel" and p.index))
    if offline or not indexes:
        return []
    return ["--index-url", indexes[0], *[a for i in indexes[1:] for a in ("--extra-index-url", i)]]


def _unused(silent: Sequence[str], offline: bool) -> str:
    """Return why the lock's files are not fetched from the ``silent`` hosts: ``A, B not used (--offline)`` or
    ``A, B did not answer`` (what the refusal and the note both start with)."""
    return f"{', '.join(silent)} {'not used (--offline)' if offline else 'did not answer'}"


def _no_copy(silent: Sequence[str], offline: bool, why: str) -> str:
    """Return what to do when the lock's files are needed from ``silent`` hosts (not used: ``offline``, or they
    did not answer) and ``why`` they are not here."""
    from resolver.redact import redact

    return redact(f"{_unused(silent, offline)} and {why}: on a "
                  "connected machine download the lock's files (`gpustack download` of the same request, or `pip "
                  "download --no-deps --require-hashes -r` of `gpustack lock --format requirements`), copy the folder "
                  "here and pass --find-links DIR (a file is used only when its sha256 is the lock's)")


def _offline_hosts(packages: Sequence[LockedPackage], offline: bool, uv: bool, note: Callable[[str], None] | None,
                   probe: Callable[[Sequence[str]], list[str]] | None = None) -> list[str]:
    """Return the hosts of ``packages``' files that cannot be used (all of them with ``offline``, else those that
    do not answer ``probe``); uv then installs from its cache, and pip is refused (``LockRefused``): it has no copy."""
    from resolver.installers import silent_hosts
    from resolver.redact import redact

    hosts = list(dict.fromkeys(h for p in packages for h in _hosts(p)))
    silent = hosts if offline or not hosts else (probe or silent_hosts)(hosts)
    if not silent:
        return []
    if not uv:
        names = ", ".join(sorted({p.requirement for p in packages if set(_hosts(p)) & set(silent)}))
        raise LockRefused([_no_copy(silent, offline, f"pip keeps no copy of {names}")])
    if note is not None:
        note(redact(f"{_unused(silent, offline)}: uv installs the lock's files from its cache, each checked "
                    "against the lock's sha256"))
    return silent


def unlisted(locked: LockedPlan, installed: Snapshot) -> list[str]:
    """Return the distributions ``installed`` holds that ``locked`` does not list (its packages and, installed
    unverified with ``--allow-missing-hashes``, its files without a sha256), sorted by name: what an install of
    the lock leaves as it found them (it installs with ``--no-deps``, and removes nothing)."""
    from packaging.utils import canonicalize_name

    listed = {canonicalize_name(p.name) for p in (*locked.packages, *locked.missing)}
    return sorted(d.name for k, d in installed.dists.items() if canonicalize_name(k) not in listed)


@dataclass(frozen=True)
class LockInstalled:
    """What ``install_locked_safely`` did: the ``commands`` it ran, the installed distributions the lock does not
    list that it left as they were (``left``), and those it removed (``removed``: ``--exact``)."""

    commands: list[str]
    left: list[str]
    selected: LockedPlan | None = None  # the packages installed: the lock's, as selected for the target (for_host)
    removed: list[str] = field(default_factory=list)

    def describe(self, locked: LockedPlan, lock_file: str, python_exe: str) -> str:
        """Return the one line saying what the environment now holds: the lock's packages, exactly (those without
        a sha256 counted apart: unverified), and what else it held, named (the first few): removed, or left."""
        locked = self.selected or locked
        n = len(locked.packages)
        said = f"installed the {n} package{'s' if n != 1 else ''} of {lock_file} exactly"
        if locked.missing:
            said += f" (and {len(locked.missing)} without a sha256, unverified)"
        said += f" into {python_exe}"
        if self.removed:
            said += f"; removed {_count(self.removed, 'other package')} it held, which the lock does not list: " \
                    + _names(self.removed)
        if not self.left:
            return said + "; it holds nothing else"
        if self.removed:  # what --exact keeps
            return said + f"; kept {', '.join(self.left)} (the environment's installer)"
        return (f"{said}; left {_count(self.left, 'other package')} it holds, which the lock does not list: "
                f"{_names(self.left)} (--exact removes them)")


_SHOWN = 5  # unlisted packages named in the closing line; the rest counted
EXACT_KEEPS = ("pip",)  # what `install --lock --exact` never removes: `python -m pip` (an install, a restore)


def _count(names: Sequence[str], what: str) -> str:
    return f"the {len(names)} {what}{'s' if len(names) != 1 else ''}"


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def install_locked_safely(locked: LockedPlan, python_exe: str, installer: Installer, *, reporter: Reporter | None = None,
                          allow_missing_hashes: bool = False, lock_timeout: float = 600.0,
                          offline: bool = False, find_links: Sequence[str] = (),
                          exact: bool = False) -> LockInstalled:
    """Return the commands ``install_from_lock`` ran and what else the environment holds (``LockInstalled``),
    under the environment's inter-process lock; on any failure after the target check (a build failing after the
    wheels went in, Ctrl-C) restore the snapshot and raise. ``exact`` (``--exact``) then uninstalls, in the same
    transaction (backed up with the rest, put back by a restore), what the lock does not list (``unlisted``) but
    ``EXACT_KEEPS``: the environment is then the lock, as after ``uv pip sync``.

    ``installer`` is a ``resolver.install.Installer`` (it knows how to reinstall and uninstall for a restore).
    A refused lock (``LockRefused``) or a hash mismatch changes nothing: pip checks every hash before installing.
    ``offline`` (``--offline``): no network at all; ``find_links``: the ``--find-links`` folders
    (``install_from_lock``).
    """
    from resolver.install import guarded

    with guarded(python_exe, installer, reporter or Reporter(), lock_timeout=lock_timeout,
                 passthrough=(LockRefused,)) as txn:
        host, markers = detected(python_exe)
        chosen = for_host(locked, host, markers)
        done = install_from_lock(chosen, python_exe, installer=installer, allow_missing_hashes=allow_missing_hashes,
                                 host=host, note=(reporter or Reporter()).message, installed=txn.before,
                                 offline=offline, find_links=find_links)
        left = unlisted(locked, txn.before)  # --no-deps: nothing else came or went
        removed = [n for n in left if n not in EXACT_KEEPS] if exact else []
        if removed:
            argv = installer.uninstall_argv(removed)
            _subprocess.run(argv)
            done.append(" ".join(argv))
        return LockInstalled(done, [n for n in left if n not in removed], chosen, removed)
