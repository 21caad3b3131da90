"""Executing a plan: its steps through pip or uv, in order, under a lock, undone on any failure.

The plan decides everything (sources, pins, ``--no-deps``, build variables); this module only turns steps into
commands and runs them. Torch's step runs first; after every step the installed torch must still be the planned
build, or the run stops. Before the first change the environment is snapshotted; on any failure (a source that
does not answer, a failed download or build, Ctrl-C, a torch swap, a failed ``--verify``) the snapshot is restored
and the error says what was put back.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from resolver import _subprocess, envstate, journal as journals, read_ahead
from resolver.errors import BadInput, CommandFailed, GpuStackError
from resolver.installers import (Command, Installer, SourceUnreachable, Sources, check_reachable, choose_backend,
                                 constraints_path, index_variant, installs_planned, login_hint, restore_args,
                                 source_args)
from resolver.logs import Logger
from resolver.models import PackageChoice, Plan, Step, exact_pin
from resolver.redact import redact
from resolver.report import Reporter
from resolver.target import parse_torch_version_py

if TYPE_CHECKING:
    from resolver import build

__all__ = ["Installer", "Sources", "Command", "InstallResult", "TorchSwapped", "InstallFailed", "InstallInterrupted",
           "SourceUnreachable", "choose_backend", "restore_args", "restore_line", "execute", "commands", "guarded",
           "target_mismatch", "wheel_requires"]

log = Logger("gpustack.install")


class TorchSwapped(GpuStackError):
    """A step changed the installed torch away from the planned build."""


class WrongBuild(TorchSwapped):
    """After a step, a planned package is not the planned build (version, local label, or torch's CUDA)."""


class InstallFailed(GpuStackError):
    """A step failed and the environment was restored; the message says why and what was put back."""

    def __init__(self, cause: BaseException, restored: envstate.RestoreResult | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.restored = restored
        # 1: the install failed and was undone; 2 only where the cause itself was bad input
        self.exit_code = 2 if isinstance(cause, BadInput) else 1

    def __str__(self) -> str:
        return redact(f"{self.cause}\n{restore_line(self.restored)}")


class InstallInterrupted(InstallFailed):
    """Ctrl-C, SIGTERM or SIGHUP during an install; the environment was restored (or the message says what is left)."""

    exit_code = 130

    def __init__(self, cause: BaseException, restored: envstate.RestoreResult | None) -> None:
        super().__init__(cause, restored)
        self.exit_code = 128 + getattr(cause, "signum", signal.SIGINT)

    def __str__(self) -> str:
        name = signal.Signals(self.exit_code - 128).name if self.exit_code > 128 else "SIGINT"
        return f"interrupted ({name})\n{restore_line(self.restored)}"


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where gpustack is, as Ctrl-C is: stop the installer, restore."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def restore_line(restored: envstate.RestoreResult | None) -> str:
    """Return the one line saying how a restore ended (``None``: none was needed): what it put back, or what still
    differs and the command that finishes it; ``install`` and ``recover`` both say it."""
    if restored is None:
        return "nothing had changed yet"
    if restored.left:
        return (f"RESTORE INCOMPLETE: still different from before: {restored.left.remaining()}"
                + (f"; to finish it run: {restored.fix}" if restored.fix else ""))
    return f"environment restored: {restored.undone.describe()}"


# --- backends, sources and commands ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InstallResult:
    """What a successful run changed, the builds it made or took from the cache, and how long it took."""

    changes: envstate.EnvDiff
    builds: tuple[build.BuildResult, ...] = ()
    seconds: float = 0.0
    verify: Any = None


@dataclass
class _Run:
    plan: Plan
    installer: Installer
    sources: Sources
    reporter: Reporter
    use_cache: bool
    progress: bool
    builds: list[build.BuildResult] = field(default_factory=list)
    txn: Transaction | None = None


def ordered_steps(plan: Plan) -> list[Step]:
    """Return the plan's steps with torch's first (stable otherwise): everything else is built against it."""
    return sorted(plan.steps, key=lambda s: s.package != "torch")


def _choice(plan: Plan, package: str) -> PackageChoice | None:
    return next((p for p in plan.stack.packages if p.name == package), None)


def planned_dist_version(choice: PackageChoice, step: Step | None) -> str:
    """Return the distribution version ``choice`` lands as: its version, with the index's local label when it
    comes from the PyTorch-style index of its own variant (``xformers 0.0.23`` from ``/whl/cu121`` is
    ``0.0.23+cu121``; PyPI's build of the same version has no label)."""
    variant = index_variant(step.index_url if step else choice.index_url)
    if choice.method == "wheel" and "+" not in choice.version and variant and variant == choice.variant:
        return f"{choice.version}+{variant}"
    return choice.version


def exact_requirement(step: Step, plan: Plan) -> str:
    """Return the step's requirement pinned to the exact planned build: ``xformers==0.0.23`` from the cu121 index
    becomes ``xformers==0.0.23+cu121``, so neither pip (equal versions from two indexes) nor uv can take PyPI's
    build of that version."""
    choice = _choice(plan, step.package)
    if choice is None or step.url or step.action != "install":
        return step.requirement
    want = planned_dist_version(choice, step)
    if want != choice.version and step.requirement == f"{choice.name}=={choice.version}":
        return f"{choice.name}=={want}"
    return step.requirement


def _install_requirement(step: Step, local: str | None, plan: Plan | None = None) -> str:
    """Return what the installer is given for an install step: ``local``, its file in a find-links folder
    (``Sources.local_file``), else its URL or exact requirement."""
    if local is not None:
        extras = _extras(step.requirement)  # flash-attn-4[cu13]: the extra's dependencies still come along
        return f"{local}[{','.join(extras)}]" if extras else local
    if step.url:
        return f"{step.package} @ {step.url}"
    return exact_requirement(step, plan) if plan is not None else step.requirement


def _extras(requirement: str) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return sorted(Requirement(requirement).extras)
    except InvalidRequirement:
        return []


def _held(step: Step, plan: Plan) -> tuple[str, ...]:
    """Return the step's constraints, with torch's planned build held when the step has none (a built wheel's
    declared dependencies are installed, and none may move torch)."""
    if step.constraints:
        return step.constraints
    torch = plan.stack.get("torch")
    return (f"torch=={torch.version}",) if torch is not None and step.package != "torch" else ()


def _step_constraints(step: Step, plan: Plan) -> tuple[str, ...]:
    """Return what the install of a step holds: a build's ``_held``, else the step's own constraints."""
    return _held(step, plan) if step.action == "build" else step.constraints


def commands(plan: Plan, installer: Installer, sources: Sources) -> list[Command]:
    """Return the commands a run of ``plan`` would start, in order (``gpustack install --dry-run``).

    A build shows two: ``pip wheel`` into ``<build-dir>`` (skipped at run time on a cache hit; its ``MAX_JOBS``
    is sized to free RAM then) and the install of ``<built wheel>``.
    """
    from resolver import build

    out = []
    for step in ordered_steps(plan):
        cpath = constraints_path(step.constraints)
        if step.action == "build":
            argv = build.wheel_argv(installer.pip, step, step.url or step.requirement, Path("<build-dir>"),
                                    source_args(step, sources))
            out.append(Command(argv, dict(step.env), step.package, "build",
                               "skipped on a build-cache hit; MAX_JOBS capped by free RAM at run time"))
            req = "<built wheel>"
            cpath = constraints_path(_held(step, plan))
            no_deps = False
        else:
            req = _install_requirement(step, sources.local_file(step), plan)
            no_deps = step.no_deps
        argv = installer.install_argv([req], source_args(step, sources), no_deps=no_deps, constraints=cpath,
                                      planned_only=installs_planned(step, plan))
        held = _step_constraints(step, plan)
        note = f"{cpath} holds: {', '.join(held)}" if cpath else ""
        out.append(Command(argv, installer.env_for(step, plan), step.package, "install", note,
                           ((cpath, tuple(held)),) if cpath else ()))
    return out


def planned_torch(plan: Plan) -> str | None:
    """Return the torch version the plan promises (``2.1.0+cu121``), or ``None`` when it has no torch."""
    choice = plan.stack.get("torch")
    return choice.version if choice else None


def torch_matches(planned: str, dist_version: str | None, version_py: str | None) -> bool:
    """Return whether the installed torch (dist version, ``torch.__version__``) is the planned build."""
    def same(a: str, b: str | None) -> bool:
        try:
            return b is not None and Version(a) == Version(b)
        except InvalidVersion:
            return a == b
    return same(planned, dist_version) or same(planned, version_py)


def _same_version(a: str, b: str | None) -> bool:
    try:
        return b is not None and Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _check_planned(run: _Run, python_exe: str, after: str, done: set[str],
                   since: envstate.Snapshot | None = None) -> envstate.Snapshot:
    """Return the environment after a step; raise ``TorchSwapped`` / ``WrongBuild`` unless every planned package
    installed so far (``done``) is the planned build: torch's version and CUDA, the others' versions with their
    local label."""
    snap = envstate.snapshot(python_exe, since)  # the distributions and torch's version.py
    planned = planned_torch(run.plan)
    if planned is not None:
        torch_version, torch_cuda = parse_torch_version_py(snap.torch_version_py or "")
        if not torch_matches(planned, snap.version("torch"), torch_version):
            found = snap.version("torch") or "nothing"
            raise TorchSwapped(f"after {after}, torch is {found} instead of the planned {planned}: the step swapped it")
        cuda = run.plan.stack.torch.cuda if run.plan.stack.get("torch") else None
        if cuda and torch_cuda and not _same_version(cuda, torch_cuda):
            raise WrongBuild(f"after {after}, torch {planned} is a CUDA {torch_cuda} build instead of the "
                             f"planned CUDA {cuda}: it came from another index")
    steps = {s.package: s for s in run.plan.steps}
    for choice in run.plan.stack.packages:
        if choice.name == "torch" or choice.name not in done:
            continue
        want = planned_dist_version(choice, steps.get(choice.name))
        have = snap.version(choice.name)
        ok = (_same_version(want.split("+")[0], have.split("+")[0] if have else None) if choice.method == "source"
              else _same_version(want, have))
        if not ok:
            raise WrongBuild(f"after {after}, {choice.name} is {have or 'not installed'} instead of the planned "
                             f"{want}" + (f" (from {run.plan.source_of(choice.name)})" if choice.name in steps else ""))
    for req in run.plan.stack.other_requirements:  # the pass-through pins installed so far (a marker may skip one)
        pinned = exact_pin(req)
        if pinned is None or pinned[2] or pinned[0] not in done:
            continue
        name, want, _ = pinned
        have = snap.version(name)
        if not _same_version(want, have):
            raise WrongBuild(f"after {after}, {name} is {have or 'not installed'} instead of the planned {want}: "
                             "a step's dependencies moved it (plan a set whose requirements agree: `gpustack lock` "
                             "resolves them and says which conflict)")
    return snap


class MissingDependencies(GpuStackError):
    """After a step, a distribution it added or changed lacks a dependency (the installer was told to skip them)."""


def _check_requirements(step: Step, previous: envstate.Snapshot, after: envstate.Snapshot, where: str) -> None:
    """Raise ``MissingDependencies`` when what ``step`` added or changed needs what the environment does not hold
    (``resolver.requires``); a ``--no-deps`` install step (``install --plan`` may hold one) is left as asked."""
    if step.no_deps and step.action != "build":
        return
    changes = envstate.diff(previous, after)
    names = [d.name for d in changes.added] + [new.name for _, new in changes.changed]
    if not names:
        return
    from resolver.requires import NO_DEPS_HINT, unmet

    missing = unmet(after, names, _extras(step.requirement))
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise MissingDependencies(f"after {where}: {'; '.join(missing[:3])}{more}: {NO_DEPS_HINT}")


def _run_install(run: _Run, python_exe: str, step: Step, req: str) -> None:
    built = step.action == "build"
    argv = run.installer.install_argv(
        [req], source_args(step, run.sources), no_deps=step.no_deps and not built,
        constraints=constraints_path(_step_constraints(step, run.plan), write=True),
        planned_only=installs_planned(step, run.plan))
    tail: list[str] = []

    def on_line(line: str) -> None:
        log.debug("%s: %s", step.package, line)
        tail.append(line)
        del tail[:-40]

    rc = _subprocess.stream(argv, on_line, env=run.installer.env_for(step, run.plan))
    if rc != 0:
        hint = login_hint(step)
        raise CommandFailed(argv, rc, "\n".join(tail[-15:] + ([hint] if hint else [])))


def _run_step(run: _Run, python_exe: str, step: Step, now: envstate.Snapshot, local: str | None) -> None:
    """Run ``step``; ``now`` is the environment's latest reading (a build's cache key needs nothing more), ``local`` its
    file in a find-links folder (looked up once, by ``execute``, which also names it in the progress line)."""
    if step.action == "build":
        from resolver import build

        target = build.target_info(now.python_tag, now.platform, now.prefix, now.torch_version_py)
        result = build.build(step, python_exe, lambda: run.installer.pip, source_args=source_args(step, run.sources),
                             cxx11_abi=run.plan.stack.torch_cxx11_abi, reporter=run.reporter,
                             use_cache=run.use_cache, progress=run.progress, target=target)
        run.builds.append(result)
        if run.txn is not None:  # what installing this wheel can change is known now: back it up first
            run.txn.back_up(step_may_change(step, run.plan, now, result.wheel), now)
        _run_install(run, python_exe, step, str(result.wheel))
    else:
        _run_install(run, python_exe, step, _install_requirement(step, local, run.plan))


_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals(handler: Any) -> Iterator[None]:
    """Set ``handler`` for SIGINT, SIGTERM and SIGHUP in the block (main thread only; elsewhere a no-op)."""
    try:
        previous = {sig: signal.signal(sig, handler) for sig in _HANDLED}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _ignore_signals() -> None:
    """Ignore Ctrl-C, SIGTERM and SIGHUP from here to the end of the enclosing ``_signals`` block."""
    try:
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_IGN)
    except ValueError:  # not the main thread: no handler was set
        pass


def _raise_terminated(signum: int, frame: Any) -> None:
    exc = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
    _subprocess.pending[:] = [exc]  # raised again by stream if this one lands where Python ignores it (at fork)
    raise exc


def _no_signals() -> Any:
    """Ignore Ctrl-C, SIGTERM and SIGHUP while restoring: none may leave the environment half restored."""
    return _signals(signal.SIG_IGN)


def load_verify() -> Callable[..., Any]:
    """Return ``resolver.verify.run_verify``; raises ``GpuStackError`` when this gpustack has none yet."""
    try:
        from resolver.verify import run_verify  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise GpuStackError("--verify needs resolver.verify, which this gpustack does not have yet: "
                            "install without --verify") from None
    return run_verify  # type: ignore[no-any-return,unused-ignore]


def promised_backends(plan: Plan) -> list[str]:
    """Return the ``run_verify`` backends the plan promises: ``sdpa`` for torch, then xformers and flash-attn."""
    names = {"torch": "sdpa", "xformers": "xformers", "flash-attn": "flash-attn"}
    return [names[p.name] for p in plan.stack.packages if p.name in names]


def _verify(python_exe: str, plan: Plan, run_verify: Callable[..., Any]) -> Any:
    """Return the verify report; raise ``GpuStackError`` naming every promised backend that failed."""
    expect = promised_backends(plan)
    report = run_verify(python_exe, expect=expect)
    failed = [r for r in getattr(report, "results", ()) if not r.passed and not r.skipped
              and any(r.backend == e or r.backend.startswith(e + "-") for e in expect)]
    if failed or not getattr(report, "ok", True):
        names = ", ".join(sorted({f"{r.backend} ({r.error or 'wrong result'})" for r in failed})) or "see report"
        raise GpuStackError(f"verify: promised backend(s) failed: {names}")
    return report


def _pins(constraints: Sequence[str]) -> dict[str, str]:
    """Return the ``name==version`` pins among ``constraints`` (normalized name -> version)."""
    pins: dict[str, str] = {}
    for text in constraints:
        pinned = exact_pin(text)
        if pinned is not None and not pinned[2]:
            pins[pinned[0]] = pinned[1]
    return pins


def target_mismatch(python: str | None, platform: str | None, found_python: str,
                    found_platform: str) -> tuple[str, str, str] | None:
    """Return ``(what, wanted, found)`` where the wanted Python (``3.11``) or wheel platform (``linux_x86_64``)
    is not the interpreter's, else ``None``: an install plans for the environment it installs into."""
    for what, wanted, found in (("--python", python, found_python), ("--platform", platform, found_platform)):
        if wanted and wanted != found:
            return what, wanted, found
    return None


def may_change(plan: Plan | None, before: envstate.Snapshot) -> set[str]:
    """Return the installed distributions the transaction backs up before its first step: all of them when there is
    no plan, else what each install step can change (``step_may_change``). A build step's are added once its wheel
    is built (``Transaction.back_up``), before its installer starts."""
    if plan is None:
        return set(before.dists)
    out: set[str] = set()
    for step in plan.steps:
        if step.action != "build":
            out |= step_may_change(step, plan, before)
    return out


def step_may_change(step: Step, plan: Plan, now: envstate.Snapshot, wheel: Path | None = None) -> set[str]:
    """Return the installed distributions ``step`` can change.

    pip and uv (never run with ``--upgrade`` or ``--reinstall`` here) change only what a step asks for and those of
    its dependencies whose installed version does not satisfy it (or its constraints). So a ``--no-deps`` install
    step changes its own package only; so does the install of a built ``wheel`` when every requirement of it and,
    transitively, of what it needs is installed at a version that satisfies it and the step's constraints (nothing
    else has to move). Otherwise anything installed may move (a new dependency's own needs are not known before the
    installer runs), except what the step's constraints pin at its installed version (torch, held under a built
    wheel). A distribution left out that still changed is reinstalled from the run's sources by the restore.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import canonicalize_name

    own = canonicalize_name(step.package)
    if (step.action != "build" and step.no_deps) or (wheel is not None and _needs_nothing_new(step, plan, now, wheel)):
        return {str(own)} & set(now.dists)
    pins = _pins(_step_constraints(step, plan))
    out: set[str] = set()
    for name, dist in now.dists.items():
        pin = pins.get(name)
        try:
            held = pin is not None and SpecifierSet(f"=={pin}").contains(dist.version, prereleases=True)
        except InvalidSpecifier:
            held = False
        if name == own or not held:
            out.add(name)
    return out


def wheel_requires(wheel: Path) -> list[str] | None:
    """Return the ``Requires-Dist`` lines of ``wheel``'s METADATA; ``None`` when it cannot be read."""
    import email.parser
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as zf:
            name = next((n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
            if name is None:
                return None
            meta = email.parser.BytesParser().parsebytes(zf.read(name), headersonly=True)
    except (OSError, zipfile.BadZipFile):
        return None
    return [str(r) for r in meta.get_all("Requires-Dist") or ()]


def _needs_nothing_new(step: Step, plan: Plan, now: envstate.Snapshot, wheel: Path) -> bool:
    """Return whether installing ``wheel`` can change nothing but its own package: each requirement (of the wheel,
    then of what it needs, as installed) is installed at a version that satisfies it and the step's constraints.
    A requirement whose marker names an extra, or any marker when the target's marker environment is unknown
    (``requires.marker_environment``), counts as needed."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import canonicalize_name

    from resolver._child.probe_env import dist_requires
    from resolver.requires import marker_environment

    todo = wheel_requires(wheel)
    if todo is None:
        return False
    own = canonicalize_name(step.package)
    limits: dict[str, SpecifierSet] = {}
    for text in _step_constraints(step, plan):
        try:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            limits[name] = limits.get(name, SpecifierSet()) & req.specifier
        except (InvalidRequirement, InvalidSpecifier):
            return False
    env = marker_environment(now)
    seen: set[str] = set()
    while todo:
        try:
            req = Requirement(todo.pop())
        except InvalidRequirement:
            return False
        if (req.marker is not None and env is not None and "extra" not in str(req.marker)
                and not req.marker.evaluate({**env, "extra": ""})):
            continue
        name = canonicalize_name(req.name)
        dist = now.dists.get(name)
        if dist is None or name == own:
            return False  # to be added (its own needs unknown here), or a package needing itself
        allowed = req.specifier & limits.get(name, SpecifierSet())
        if not allowed.contains(dist.version, prereleases=True):
            return False
        if name not in seen:
            seen.add(name)
            info = now.dist_paths.get(name)
            if info is None:
                return False
            todo += dist_requires(info)
    return True


@dataclass
class Transaction:
    """The environment before the run, and the journal that records it inside the environment."""

    before: envstate.Snapshot
    journal: journals.Journal

    def back_up(self, names: set[str], now: envstate.Snapshot) -> None:
        """Add to the backup the distributions in ``names`` that it lacks and that are still as they were before
        the transaction (one that changed already was backed up by the step that could change it), recording them
        in the journal before the caller's installer starts."""
        have = self.journal.manifest
        new = {k: (self.before.dists[k].version, self.before.dist_paths[k]) for k in sorted(names)
               if k not in have and k in self.before.dist_paths and now.version(k) == self.before.version(k)}
        if new:
            self.journal.extend_backup(new)


def restore_transaction(txn: Transaction, python_exe: str, installer: Installer) -> envstate.RestoreResult:
    """Return the restore of ``txn`` (from its backup on disk first); the journal is removed only when the
    environment is exactly as before, else it stays for ``gpustack recover`` and the result says so.

    The journal's own state writes here are best effort: on a full disk they fail, and the restore (which frees
    space first and then only re-links the backup) must still run; the journal already on disk suffices for
    ``recover``."""
    _note_state(txn.journal, "restoring")
    stopped = journals.stop_leftovers(txn.journal)
    if stopped:
        log.warning("stopped %d process(es) left running by the interrupted install (pids %s)", len(stopped),
                    " ".join(map(str, stopped)))
    restored = envstate.restore(txn.before, python_exe, installer, txn.journal)
    if restored.left:
        _note_state(txn.journal, "restore incomplete")
        return dataclasses.replace(restored, fix=journals.recover_command(python_exe))
    txn.journal.finish()
    return restored


def _note_state(journal: journals.Journal, state: str) -> None:
    try:
        journal.step(journal.data.get("step", ""), state=state)
    except OSError as exc:
        log.warning("could not record '%s' in %s (%s); going on", state, journal.path, exc)


@contextmanager
def guarded(python_exe: str, installer: Installer, reporter: Reporter, *, lock_timeout: float = 600.0,
            passthrough: tuple[type[BaseException], ...] = (), plan: Plan | None = None,
            command: str = "install") -> Iterator[Transaction]:
    """Yield the transaction: the environment's snapshot, taken under its lock (inside the environment), and its
    journal, written with a backup of every installed file before anything changes.

    SIGTERM and SIGHUP act as Ctrl-C. Any exception in the block stops the installer (its process group) and
    restores the snapshot, no signal heeded meanwhile; it becomes ``InstallFailed`` / ``InstallInterrupted``
    naming what was put back, or what is left and the command that finishes it. ``passthrough`` exceptions mean
    nothing changed: re-raised as is. Refuses (``JournalPending``) to start on top of an unfinished transaction.
    """
    prefix = journals.prefix_of(python_exe)
    lock = envstate.env_lock(prefix, timeout=lock_timeout, waiting=reporter.message)
    try:
        early = read_ahead.take(python_exe)  # read while gpustack started, if still true
        before = envstate.snapshot(python_exe) if early is None else envstate.snapshot_of(early)
        if plan is not None and before.facts is not None:
            other = target_mismatch(plan.stack.target.python, plan.stack.target.platform, before.facts.python,
                                    before.facts.platform)
            if other is not None:  # its wheels are another interpreter's (cp312, win_amd64): nothing is changed
                raise BadInput(f"the plan was made for {other[0][2:]} {other[1]}, and {python_exe} is {other[2]}: plan "
                               f"for it (`gpustack plan --python-exe {python_exe} --json`), or install into a "
                               f"matching interpreter")
        if before.facts is not None:
            installer.saw(before.facts.has_pip)  # a pip run, a restore: no reading of its own to find pip
        changing = may_change(plan, before)
        with _no_signals():  # the journal, once written, must say what it backed up
            journal = journals.begin(python_exe, before.prefix, {k: [d.version, d.url, d.editable]
                                                                for k, d in before.dists.items()},
                                     command=command, plan=plan.to_dict() if plan is not None else None,
                                     backend=installer.backend, restore_args=installer.restore_args,
                                     backup={k: (before.dists[k].version, before.dist_paths[k])
                                             for k in changing if k in before.dist_paths},
                                     toplevel=before.toplevel)
        txn = Transaction(before, journal)
        tagged = os.environ.get(journals.TXN_ENV)
        os.environ[journals.TXN_ENV] = str(journal.data["id"])  # inherited by every process the run starts
        committed = False
        try:
            with _signals(_raise_terminated):
                _subprocess.pending.clear()
                yield txn
                _subprocess.raise_pending()  # a signal swallowed during the last step still undoes the run
                # The commit: from removing the journal on, the environment is as planned, and a signal is too
                # late to undo anything. Ignored until the backup is gone (it was: Ctrl-C while the backup was
                # deleted ended an install that had landed with "interrupted", exit 130 and no summary).
                _ignore_signals()
                committed = True
                journal.finish()
        except passthrough:
            if committed:
                raise
            with _no_signals():
                restore_transaction(txn, python_exe, installer)
            raise
        except BaseException as exc:
            if committed:  # the journal is gone: nothing to restore, and nothing may be undone
                raise
            _subprocess.pending.clear()
            with _no_signals():
                reporter.message(f"install failed ({_why(exc)}); restoring {before.prefix} ...")
                restored = restore_transaction(txn, python_exe, installer)
            # how the restore ended is said once, by the error the command prints (InstallFailed's text)
            if isinstance(exc, KeyboardInterrupt):
                raise InstallInterrupted(exc, restored) from exc
            if isinstance(exc, (Exception, SystemExit)):
                raise InstallFailed(exc, restored) from exc
            raise
        finally:
            if tagged is None:
                os.environ.pop(journals.TXN_ENV, None)
            else:
                os.environ[journals.TXN_ENV] = tagged
    finally:
        lock.release()


def _why(exc: BaseException) -> str:
    return exc.args[0] if isinstance(exc, Terminated) else "Ctrl-C" if isinstance(exc, KeyboardInterrupt) \
        else type(exc).__name__


def execute(plan: Plan, python_exe: str, installer: Installer, *, sources: Sources = Sources(),
            reporter: Reporter | None = None, use_cache: bool = True, verify: bool = False,
            progress: bool = True, lock_timeout: float = 600.0) -> InstallResult:
    """Return what running ``plan`` into ``python_exe`` changed; on failure restore the environment and raise.

    ``sources``' find-links folders serve any step whose file lies there, even when its index is unreachable.
    Raises ``SourceUnreachable`` or ``BadInput`` before anything changes; ``InstallFailed`` (or
    ``InstallInterrupted`` on Ctrl-C) after restoring the snapshot taken under the environment's lock.
    """
    reporter = reporter or Reporter()
    started = time.monotonic()
    steps = ordered_steps(plan)
    sources = check_reachable(steps, sources)
    run_verify = load_verify() if verify else None
    run = _Run(plan, installer, sources, reporter, use_cache, progress)
    verified = None
    done = {p.name for p in plan.stack.packages} - {s.package for s in steps}  # kept: must stay as planned
    with guarded(python_exe, installer, reporter, lock_timeout=lock_timeout, plan=plan) as txn:
        before = after = txn.before
        run.txn = txn
        for i, step in enumerate(steps, 1):
            what = step.description or f"{step.action} {step.requirement}"
            local = sources.local_file(step) if step.action == "install" else None
            if local is not None:  # the plan's text names the index; the file comes from --find-links
                what = (what.replace(step.index_url, local) if step.index_url and step.index_url in what
                        else f"{what} (the file {local})")
            txn.journal.step(f"[{i}/{len(steps)}] {what}")
            reporter.step_started(i, len(steps), what)
            t0 = time.monotonic()
            _run_step(run, python_exe, step, after, local)
            done.add(step.package)
            previous, after = after, _check_planned(run, python_exe, f"step {i} ({what})", done, since=after)
            _check_requirements(step, previous, after, f"step {i} ({what})")
            reporter.step_finished(i, len(steps), what, time.monotonic() - t0)
        if run_verify is not None:  # else the last step's check read it (with no step, nothing ran: after is before)
            verified = _verify(python_exe, plan, run_verify)
            after = envstate.snapshot(python_exe, since=after)
        changes = envstate.diff(before, after)  # still under the lock
    return InstallResult(changes, tuple(run.builds), time.monotonic() - started, verified)
