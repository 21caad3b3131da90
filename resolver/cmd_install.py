"""``gpustack install``, ``gpustack download`` and ``gpustack cache``: the CLI over ``install``, ``build`` and ``cache``.

``install`` solves and plans (``resolver.pipeline``) or reads a plan (``--plan FILE``, the ``gpustack plan --json``
object), then runs it safely into this interpreter, ``--python-exe PATH`` or ``--venv DIR`` (created if missing).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from resolver import _subprocess, envstate
from resolver.cli import skip_final_collection
from resolver import journal as journals
from resolver.errors import BadInput, GpuStackError
from resolver.inputs import check_argument, check_new_folder, read_text
from resolver.install import (Command, Installer, Sources, choose_backend, commands, execute, restore_args,
                              target_mismatch)
from resolver.installers import ignored_settings_note, mirrors as mirrors_of, user_index_note, with_mirrors
from resolver.models import Plan
from resolver.options import mirror_options, target_options
from resolver.pipeline import PlanOptions, plan_for, read_request
from resolver.render import (InstallReporter, console, line, print_cache_entries, print_dry_run, print_install_result,
                             status)
from resolver.report import Reporter
from resolver.venvs import base_python, create_venv, venv_argv, venv_python

if TYPE_CHECKING:
    from resolver.install import InstallResult
    from resolver.installers import Backend
    from resolver.lock import LockedPlan

__all__ = ["install", "download", "cache", "recover", "plan_from_dict"]



def _err(text: str) -> None:
    """One line of progress or warning on stderr (``resolver.render.status``)."""
    status(text)


def plan_from_dict(data: Any) -> Plan:
    """Return the ``Plan`` written as the ``gpustack plan --json`` object (``Plan.from_dict``, kept for callers)."""
    return Plan.from_dict(data)


def _read_plan(path: str) -> Plan:
    hint = "write one with `gpustack plan --json > FILE`"
    text = read_text(path, f"--plan {path}", hint=hint)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"--plan {path}: not JSON ({exc}); {hint}") from None
    return Plan.from_dict(data, what=f"--plan {path}")


# what install still uses beside a plan or a lock: the interpreter, the PyPI mirror, and --python/--platform, which
# are checked against the interpreter
_WITH_A_PLAN = frozenset({"python_exe", "index_url", "allow_insecure_index", "python_version", "platform_tag"})


def _planning_options_given(also: set[str], keep: frozenset[str] = _WITH_A_PLAN) -> list[str]:
    """Return the planning options and requirements given to this command (on the command line or from the
    environment) that a ``--plan``/``--lock`` run would ignore (all but ``keep``), and the options named in ``also``,
    as the user wrote them (``--gpu``)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    planning = {f.name for f in dataclasses.fields(PlanOptions)} - keep | {"requirements"} | also
    return [p.opts[0] if p.opts[0].startswith("-") else "the requirements" for p in ctx.command.params
            if p.name in planning and ctx.get_parameter_source(p.name) in (ParameterSource.COMMANDLINE,
                                                                          ParameterSource.ENVIRONMENT)]


def _refuse_ignored(what: str, does: str, given_too: list[str], remake: str) -> None:
    """Refuse options and requirements (``given_too``) that a run of ``what`` (a plan or lock file) would ignore."""
    if given_too:
        raise BadInput(f"{what} {does} exactly what it says, so {', '.join(given_too)} would be ignored: drop "
                       f"{'it' if len(given_too) == 1 else 'them'}, or make a new one with "
                       f"{'them' if len(given_too) > 1 else 'it'} (`gpustack {remake}`)")


def _with_configured(find_links: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``find_links`` and the user's own find-links folders of pip's and uv's configuration
    (``installer_config.configured_find_links``): pip would install a planned file from there, so install takes
    them as its own ``--find-links`` (a step whose file lies there needs no index); said once (``_find_links_notes``)."""
    from resolver.installer_config import configured_find_links

    given = {os.path.abspath(d) for d in find_links}
    return (*find_links, *(d for _, d in configured_find_links() if d not in given))


def _find_links_notes(sources: Sources) -> list[str]:
    """Return the line said for each of the user's configured find-links folders that install uses (``_with_configured``)."""
    from resolver.installer_config import configured_find_links

    return [f"your find-links {folder} ({what}) is used as --find-links: a planned file found there is installed "
            "from it" for what, folder in configured_find_links() if folder in sources.find_links]


def _sources(find_links: tuple[str, ...], offline: bool, allow_insecure: bool = False, lock: bool = False) -> Sources:
    for d in find_links:
        if not os.path.isdir(d):
            raise BadInput(f"--find-links {d}: no such folder; fill one with `gpustack download --dest DIR`")
    # a lock's hashes say which file is right wherever it is: installed already, in uv's cache, or in a folder
    if offline and not find_links and not lock:
        raise BadInput("--offline needs --find-links DIR (made by `gpustack download --dest DIR`)")
    return Sources(tuple(os.path.abspath(d) for d in find_links), offline, allow_insecure=allow_insecure)


def _print_dry_run(cmds: list[Command], as_json: bool) -> None:
    if as_json:  # exact in a pipe, as plan --json (resolver.cli masks credentials on a terminal)
        click.echo(json.dumps({"steps": [c.to_dict() for c in cmds]}, indent=2))
        return
    out = console()
    line(out, "set -e")  # run by sh, a failed step stops the rest, as it stops the install
    print_dry_run(out, cmds)


@click.command("install")
@click.argument("requirements", nargs=-1)
@target_options
@click.option("--venv", metavar="DIR", help="Install into this virtual environment (created when missing).")
@click.option("--installer", type=click.Choice(["auto", "pip", "uv"]), default="auto", show_default=True,
              help="Installer backend; auto takes uv when found: the uv installed with gpustack, else uv on PATH.")
@click.option("--dry-run", is_flag=True, help="Print the commands and environment it would run; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print {\"steps\": [{argv, env, package[, files]}]} (files: path -> text to write first).")
@click.option("--find-links", multiple=True, metavar="DIR", help="Folder of wheels/sdists (from `gpustack download`).")
@click.option("--offline", is_flag=True,
              help="No network at all: only --find-links folders (with --lock, also what is installed from the "
                   "locked files and uv's cache, checked against the lock's hashes).")
@click.option("--verify", is_flag=True, help="Run the promised attention backends afterwards; roll back on failure.")
@click.option("--no-cache", is_flag=True, help="Rebuild source packages even when the build cache has them.")
@click.option("--plan", "plan_file", metavar="FILE", help="Run this plan (`gpustack plan --json`) instead of solving.")
@click.option("--lock", "lock_file", metavar="FILE",
              help="Install exactly this pylock.toml (hashes verified; refused when this machine does not match it).")
@click.option("--allow-missing-hashes", is_flag=True,
              help="With --lock: also install the lock's files that have no sha256 ([[tool.gpustack.missing]]), unverified.")
@click.option("--exact", is_flag=True,
              help="With --lock: also remove the installed packages the lock does not list (pip kept), in the same "
                   "transaction, so the environment is the lock.")
@mirror_options
def install(requirements: tuple[str, ...], venv: str | None, installer: str, dry_run: bool, as_json: bool,
            find_links: tuple[str, ...], offline: bool, verify: bool, no_cache: bool, plan_file: str | None,
            lock_file: str | None, allow_missing_hashes: bool, torch_index_url: str | None,
            opts: PlanOptions, exact: bool = False) -> None:
    """Solve, plan and install into an environment; a failure restores the environment as it was."""
    if as_json and not dry_run:
        raise BadInput("--json goes with --dry-run; drop --json to install")
    if allow_missing_hashes and not lock_file:
        raise BadInput("--allow-missing-hashes goes with --lock FILE; drop it or pass --lock")
    if exact and not lock_file:
        raise BadInput("--exact goes with --lock FILE (the lock says what the environment holds); drop it or pass "
                       "--lock")
    if venv and opts.python_exe:
        raise BadInput("--venv and --python-exe together: pass one target environment")
    if lock_file and (requirements or plan_file):
        raise BadInput("--lock FILE installs exactly the lock: drop the requirements and --plan")
    if plan_file or lock_file:
        # a lock names its files by URL: the mirrors go into the lock (`gpustack lock --torch-index-url ...`)
        _refuse_ignored(f"--plan {plan_file}" if plan_file else f"--lock {lock_file}", "installs",
                        _planning_options_given(set() if plan_file else {"index_url", "torch_index_url"}),
                        "plan --json" if plan_file else "lock")
    if find_links or not offline:  # --offline still needs a folder given on the command line (made by download)
        find_links = _with_configured(find_links)
    sources = _sources(find_links, offline, opts.allow_insecure_index, lock=bool(lock_file))
    opts = dataclasses.replace(opts, local_links=sources.find_links, no_index=sources.offline)  # pins from there too
    mirrors = mirrors_of(torch_index_url, opts.index_url, allow_insecure=opts.allow_insecure_index)
    backend = choose_backend(installer)
    # then the files given, read and checked: bad input creates no venv and starts no interpreter
    given = _read_plan(plan_file) if plan_file else None
    locked = _read_lock(lock_file, sources) if lock_file else None
    python_exe = opts.python_exe or sys.executable
    will_create = False
    # What this run made for a new venv, taken back when it fails or is interrupted anywhere from its creation on:
    # the outermost folder it made, and whether that folder was there before, empty (then it is emptied again).
    made: tuple[str, bool] | None = None
    try:
        if venv:
            python_exe = venv_python(os.path.abspath(venv))
            base = sys.executable
            if not os.path.exists(python_exe):
                # every input that can be checked is checked before the venv exists: bad input creates nothing
                _check_new_venv_path(venv)
                if given is None and locked is None:
                    requirements, opts = read_request(requirements, opts)
                _check_platform_here(opts)
                base = base_python(opts.python_version)  # made with the Python asked for, or refused now
                if dry_run:
                    will_create = True
                    _err(f"dry run: would create {venv} (`{shlex.join(venv_argv(venv, backend, base))}`) and install "
                         f"into {python_exe}; planning for the Python "
                         f"{opts.python_version or '%d.%d' % sys.version_info[:2]} it would hold")
                else:
                    outermost = _outermost_missing(os.path.abspath(venv))
                    made = (outermost, os.path.isdir(outermost))
                    _err(f"creating virtual environment {venv}")
                    create_venv(venv, backend, base)
            opts = dataclasses.replace(opts, python_exe=base if will_create else python_exe)
        result = _install_into(python_exe, will_create, opts, requirements, given, locked, lock_file, backend,
                               dry_run, as_json, allow_missing_hashes, sources, mirrors, no_cache, verify, exact)
    except BaseException:
        if made is not None:  # the environment was not there before this run: as it was is not there
            _remove_created(*made)
        raise
    if result is not None:
        print_install_result(result)
    skip_final_collection()


def _install_into(python_exe: str, will_create: bool, opts: PlanOptions, requirements: tuple[str, ...],
                  given: Plan | None, locked: LockedPlan | None, lock_file: str | None, backend: Backend, dry_run: bool,
                  as_json: bool, allow_missing_hashes: bool, sources: Sources, mirrors: tuple[Any, Any],
                  no_cache: bool, verify: bool, exact: bool = False) -> InstallResult | None:
    """Plan (or take the plan or lock given) and install into ``python_exe``; ``None`` for a dry run or a lock."""
    if not will_create:
        _refuse_managed(python_exe)
        _refuse_unfinished(python_exe, dry_run)
    _check_target_interpreter(opts.python_exe or python_exe, opts)
    reporter = InstallReporter()
    if lock_file and locked is not None:
        _install_lock(lock_file, locked, python_exe, backend, dry_run, reporter, allow_missing_hashes, sources, exact)
        return None
    plan = with_mirrors(given if given is not None else plan_for(requirements, opts, reporter)[0], *mirrors)
    for said in (user_index_note(), ignored_settings_note(), *_find_links_notes(sources)):
        if said:
            reporter.message(said)
    inst = Installer(backend, python_exe, restore_args(plan, sources), pip=[python_exe, "-m", "pip"] if will_create
                     and backend == "pip" else None)
    if dry_run:
        cmds = commands(plan, inst, sources)
        if will_create:  # printed first, so that `install --dry-run | sh` makes the venv it installs into
            venv = os.path.dirname(os.path.dirname(python_exe))
            cmds.insert(0, Command(venv_argv(venv, backend, opts.python_exe), {}, venv, "create",
                                   "the new virtual environment"))
        _print_dry_run(cmds, as_json)
        return None
    return execute(plan, python_exe, inst, sources=sources, reporter=reporter, use_cache=not no_cache,
                   verify=verify, progress=sys.stderr.isatty())


def _check_new_venv_path(venv: str) -> None:
    """Refuse a ``--venv`` path that cannot become a new venv: a file, or a folder that holds something but no
    venv (``python -m venv`` would write into it)."""
    hint = "pass the folder of a virtual environment, or a new path to create one"
    if os.path.lexists(venv) and not os.path.isdir(venv):
        raise BadInput(f"--venv {venv}: a file, not a folder; {hint}")
    check_new_folder(venv, "--venv", hint=hint)
    if os.path.isdir(venv) and os.listdir(venv):
        raise BadInput(f"--venv {venv}: a folder that is not a virtual environment (no {venv_python(venv)}); pass a "
                       f"virtual environment, or a new path to create one")


def _check_platform_here(opts: PlanOptions) -> None:
    """Refuse ``--platform`` other than this machine's for a new venv (it is made here, for here)."""
    if opts.platform_tag:
        from resolver.pipeline import this_platform

        here = this_platform()
        if opts.platform_tag != here:
            raise BadInput(f"--platform {opts.platform_tag} does not match this machine ({here}), where the new --venv "
                           f"would be made: drop --platform, or plan for that platform with `gpustack plan` or "
                           f"`gpustack download`")


def _outermost_missing(path: str) -> str:
    """Return the outermost folder of ``path`` that does not exist yet (what creating it makes), or ``path`` itself
    when it exists (an empty folder)."""
    while not os.path.lexists(os.path.dirname(path)) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _remove_created(path: str, keep: bool) -> None:
    """Take back the venv this run created, as the run fails (the environment was not there): remove ``path``, the
    outermost folder it made, or only what is in it when it was there before, empty (``keep``)."""
    import shutil

    if not keep:
        if not os.path.lexists(path):
            return  # interrupted before the creator made anything
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            _err(f"removed {path}, made by this install")
        else:
            _err(f"could not remove {path} (made by this install); remove it by hand")
        return
    try:  # the failure being raised is the one to report: a file that will not go must not replace it
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
    except OSError as exc:
        _err(f"could not empty {path} again ({exc}); remove the venv this install created there by hand")
        return
    _err(f"emptied {path} again (this install created a venv in it)")


def _refuse_managed(python_exe: str) -> None:
    """Refuse an externally managed Python (PEP 668: a distribution's system Python) before anything is written into
    it: pip and uv refuse to change it, after gpustack had begun a transaction in its prefix."""
    from resolver.venvs import externally_managed

    marker = externally_managed(python_exe)
    if marker is not None:
        raise BadInput(f"{python_exe}: an externally managed Python ({marker}, PEP 668), which pip and uv do not "
                       f"change: install into a virtual environment (--venv DIR)")


def _refuse_unfinished(python_exe: str, dry_run: bool) -> None:
    """Refuse to install on top of an unfinished transaction; a dry run refuses it too (exit 1, as the run would:
    what it prints could not run)."""
    found = journals.unfinished(journals.prefix_of(python_exe))
    if found is None:  # none, or its run is still going: the install waits for the lock, then checks again
        return
    raise journals.JournalPending(f"{found.describe()}; {found.next_step(python_exe)} first")


@click.command("recover")
@click.option("--python-exe", metavar="PATH", help="Interpreter of the environment (default: the one running gpustack).")
@click.option("--venv", metavar="DIR", help="The virtual environment to recover.")
@click.option("--installer", type=click.Choice(["auto", "pip", "uv"]), default="auto", show_default=True,
              help="Backend that uninstalls what the interrupted run added (default: the run's own; uv is found as for install).")
def recover(python_exe: str | None, venv: str | None, installer: str) -> None:
    """Finish the restore of an install that was killed (SIGKILL, power cut) or could not finish it."""
    if venv and python_exe:
        raise BadInput("--venv and --python-exe together: pass one target environment")
    if venv:
        python_exe = venv_python(os.path.abspath(venv))
        if not os.path.exists(python_exe):
            raise BadInput(f"--venv {venv}: no such virtual environment ({python_exe} missing); pass the folder "
                           "of the environment to recover")
    exe = python_exe or sys.executable
    prefix = journals.prefix_of(exe)
    nothing = f"nothing to recover: {prefix} has no unfinished gpustack transaction"
    if journals.pending(prefix) is None:
        line(console(), nothing)
        return
    lock = envstate.env_lock(prefix, waiting=_err)  # a live run holds it: wait for it, as install does
    try:
        # Read again under the lock: an install still running held it, and the journal read before it may have
        # been removed since by that install's success. Restoring from it would undo a finished install.
        found = journals.pending(prefix)
        if found is None:
            line(console(), nothing)
            return
        if not found.readable:
            raise journals.JournalPending(f"{found.describe()}: {found.by_hand()}")
        if "snapshot" not in found.data:
            raise journals.JournalPending(f"{found.describe()}: its journal holds no snapshot to restore from; "
                                          f"{found.by_hand()}")
        backend = choose_backend(installer if installer != "auto" else str(found.data.get("backend") or "auto"))
        inst = Installer(backend, exe, list(found.data.get("restore_args", ())))
        _err(f"recovering {found.describe()} ...")
        before = envstate.snapshot_from(prefix, found.snapshot)
        from resolver.install import Transaction, restore_line, restore_transaction

        restored = restore_transaction(Transaction(before, found), exe, inst)
    finally:
        lock.release()
    if restored.left:
        raise journals.JournalPending(restore_line(restored))  # as install says it: what differs, what finishes it
    line(console(), f"recovered {prefix}: {restored.undone.describe()}")


def _check_target_interpreter(python_exe: str, opts: PlanOptions) -> None:
    """Refuse ``--python``/``--platform`` that disagree with the environment being installed into."""
    wanted_py, wanted_plat = opts.python_version, opts.platform_tag
    if not wanted_py and not wanted_plat:
        return
    from resolver.detect import detect_env

    env = detect_env(python_exe)
    other = target_mismatch(wanted_py, wanted_plat, env.python, env.platform)
    if other is not None:
        flag, wanted, actual = other
        raise BadInput(f"{flag} {wanted} does not match {python_exe} ({actual}): install plans for the environment "
                       f"it installs into; drop {flag}, or pass --venv/--python-exe of a matching interpreter")


def _read_lock(lock_file: str, sources: Sources) -> LockedPlan:
    """Return the lock ``--lock FILE`` names, read and checked (``lock.read``), with ``--find-links`` files put in
    where their sha256 is the lock's."""
    from resolver.lock import read

    locked = read(lock_file)
    if sources.find_links:  # a local file is used only when its sha256 is the lock's
        from resolver.local_files import use_local_files

        locked = use_local_files(locked, sources.find_links)
    return locked


def _install_lock(lock_file: str, locked: LockedPlan, python_exe: str, backend: str, dry_run: bool,
                  reporter: Reporter, allow_missing_hashes: bool = False, sources: Sources = Sources(),
                  exact: bool = False) -> None:
    """Install the lock read from ``lock_file`` into ``python_exe`` (``--lock``; with ``exact``, ``--exact``, also
    remove what it does not list); a tampered file or hash changes nothing."""
    from resolver.lock import lock_to_plan
    from resolver.lock_install import detected, for_host, install_locked_safely, refuse_lock, requirements_text

    if dry_run:  # the refusals and notes the install would give, then what it would install
        host, markers = detected(python_exe if os.path.exists(python_exe) else sys.executable)  # a new venv's maker
        locked = for_host(locked, host, markers)  # the files it would take on this target (packaging's PEP 751 selection)
        refuse_lock(locked, host, allow_missing_hashes, note=_err)
        if exact and os.path.exists(python_exe):
            from resolver.envstate import snapshot
            from resolver.lock_install import EXACT_KEEPS, unlisted

            gone = [n for n in unlisted(locked, snapshot(python_exe)) if n not in EXACT_KEEPS]
            _err(f"dry run: --exact would remove {len(gone)} installed package(s) the lock does not list"
                 + (f": {', '.join(gone)}" if gone else ""))
        click.echo(requirements_text(locked), nl=False)
        return
    inst = Installer(backend, python_exe, restore_args(lock_to_plan(locked), sources))  # type: ignore[arg-type]
    done = install_locked_safely(locked, python_exe, inst, reporter=reporter,
                                 allow_missing_hashes=allow_missing_hashes, offline=sources.offline,
                                 find_links=sources.find_links, exact=exact)
    _err(done.describe(locked, lock_file, python_exe))


@click.command("download")
@click.argument("requirements", nargs=-1)
@target_options
@click.option("--dest", required=True, metavar="DIR", help="Folder to fill (then: install --find-links DIR --offline).")
@click.option("--plan", "plan_file", metavar="FILE", help="Download for this plan (`gpustack plan --json`).")
@click.option("--dry-run", is_flag=True, help="Print the pip download commands only.")
@mirror_options
def download(requirements: tuple[str, ...], dest: str, plan_file: str | None, dry_run: bool, opts: PlanOptions,
             torch_index_url: str | None) -> None:
    """Download every wheel and sdist the plan needs for its target, for `install --find-links DIR --offline`."""
    check_argument(dest, "--dest")
    check_new_folder(dest, "--dest", hint="pass a folder (it is created when missing)")
    if plan_file:  # the plan names its target; the mirrors still apply to its indexes
        _refuse_ignored(f"--plan {plan_file}", "downloads",
                        _planning_options_given(set(), keep=frozenset({"index_url", "allow_insecure_index"})),
                        "plan --json")
    from resolver.download import download_argvs, resolve_closure, sdist_dependencies, sdist_only, sdist_said

    from resolver.lock_resolve import declared_requires
    from resolver.pipeline import load_matrix

    mirrors = mirrors_of(torch_index_url, opts.index_url, allow_insecure=opts.allow_insecure_index)
    if plan_file:
        plan, matrix = _read_plan(plan_file), load_matrix(opts)
    else:
        plan, ctx = plan_for(requirements, opts, InstallReporter())
        matrix = ctx.matrix  # the one the plan was solved with
    plan = with_mirrors(plan, *mirrors)
    sources = Sources(allow_insecure=opts.allow_insecure_index)
    if not dry_run:
        _refuse_silent_hosts(plan)  # before anything reads them (the resolution below would retry a dead host)
    sdists = sdist_only(plan)
    from resolver.models import PYPI_SIMPLE

    closure = resolve_closure(plan, matrix, mirrors[1] or PYPI_SIMPLE)  # the lock's answer: its dependency sdists
    deps = sdist_dependencies(plan, closure)
    said = {**sdists, **{s.package: sdist_said(s.package, closure[n].version, plan.stack.target, "a dependency")
                         for n, s in deps.items()}}
    argvs = download_argvs(plan, os.path.abspath(dest), sources, write=not dry_run,
                           requires=declared_requires(plan, matrix), sdists=sdists, closure=closure)
    if dry_run:
        for argv in argvs:
            line(console(), Command(argv, {}, "").shell(), exact=True)
        for text in said.values():
            line(console(), f"# {text} (its build requirements and dependencies, read from the sdist, as wheels "
                            "for the target)")
        return
    os.makedirs(dest, exist_ok=True)
    started = time.monotonic()
    for argv in argvs:
        _err("$ " + " ".join(argv))
        _subprocess.run(argv, timeout=3600)
    for step in [*plan.steps, *deps.values()]:
        if step.action == "install" and step.package in said:
            _download_sdist_needs(plan, os.path.abspath(dest), step, sources)
            _err(said[step.package])
    files = sorted(os.listdir(dest))
    _err(f"{len(files)} files in {dest} ({time.monotonic() - started:.0f}s); copy {dest} to the target"
         + (f" with {plan_file}" if plan_file else "") + " and run there: "
         + _offline_install_command(requirements, opts, dest, plan_file, plan))


def _offline_install_command(requirements: tuple[str, ...], opts: PlanOptions, dest: str,
                             plan_file: str | None, plan: Plan) -> str:
    """Return the ``gpustack install`` that takes what ``download`` put in ``dest``: the same plan (``--plan FILE``),
    or the same request and target (``options.target_flags``; the Python and platform the files are for, where this
    machine's were taken), from the folder, with no network."""
    from resolver.options import target_flags

    target = plan.stack.target
    opts = dataclasses.replace(opts, python_version=opts.python_version or target.python,
                               platform_tag=opts.platform_tag or target.platform)
    if plan_file:
        asked = ["--plan", shlex.quote(plan_file)]
    else:
        asked = [shlex.quote(r) for r in requirements]
        asked += [f"-r {shlex.quote(f)}" for f in opts.requirement_files]
        asked += [f"--profile {shlex.quote(p)}" for p in opts.profiles]
        flags = target_flags(opts)
        asked += [flags] if flags else []
    return " ".join(["gpustack install", *asked, "--find-links", shlex.quote(dest), "--offline"])


def _refuse_silent_hosts(plan: Plan) -> None:
    """Refuse a download whose index (extra indexes too) or file host does not answer a probe, or whose ``file:``
    index is not there (``installers.refuse_unreachable``, install's rule), before pip retries it for many seconds
    and names no host: exit 1, nothing downloaded."""
    from resolver.installers import refuse_unreachable

    needed: dict[str, str] = {}
    for s in plan.steps:
        for url in (s.url, s.index_url, *s.extra_index_urls):
            if url:
                needed.setdefault(url, s.requirement)
    refuse_unreachable(list(needed), needed, verb="download", elsewhere="download where it answers",
                       end="; nothing downloaded")


def _download_sdist_needs(plan: Plan, dest: str, step: Any, sources: Sources) -> None:
    """Download, as wheels for the target, what the sdist of ``step`` (in ``dest``) needs to be built and installed
    there; its dependencies come from a build of it here when its metadata is not static."""
    import tempfile

    from resolver.download import find_sdist, sdist_deps_argv, sdist_needs
    from resolver.install import wheel_requires
    from resolver.installers import source_args

    sdist = find_sdist(dest, step.requirement)
    if sdist is None:  # pip said it downloaded it: the name on the index differs from the file's
        raise GpuStackError(f"{step.requirement}: pip downloaded no sdist of it into {dest} (a file named for another "
                            "project?); download it by hand into the folder")
    build, static = sdist_needs(sdist)
    runtime = static or []
    if static is None:
        with tempfile.TemporaryDirectory(prefix="gpustack-sdist-") as tmp:
            built = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--progress-bar", "off", "-w", tmp,
                     *source_args(step, sources), str(sdist)]
            _err("$ " + " ".join(built) + "  # its dependencies are not static in the sdist: a build says them")
            _subprocess.run(built, timeout=3600)
            wheels = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl")]
            runtime = (wheel_requires(Path(wheels[0])) or []) if wheels else []
    fetch = sdist_deps_argv(plan, dest, step, sources, [*build, *runtime])
    if fetch is not None:
        _err("$ " + " ".join(fetch))
        _subprocess.run(fetch, timeout=3600)


@click.group("cache")
def cache() -> None:
    """List or clear the cache of source-built wheels."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def cache_list(as_json: bool) -> None:
    """List the cached wheels and the keys that built them."""
    from resolver import cache as build_cache

    found = build_cache.entries()
    if as_json:
        click.echo(json.dumps([{"wheel": str(e.wheel), "size": e.size, "digest": e.digest, "key": e.key}
                                for e in found], indent=2))
        return
    print_cache_entries(console(), found, build_cache.cache_dir())
    left = build_cache.left_by_runs()
    if any(left.values()):
        line(console(), f"earlier runs left {left['logs']} build log(s) (logs/) and {left['constraints']} constraints "
                        "file(s) (constraints/)")
    line(console(), "`gpustack cache clear` removes " + ("these wheels, " if found else "") + _LEFT + f" and {_REMEMBERED}")


_REMEMBERED = "what lock remembered of earlier runs (lock-hints, lock-names: they only make a lock start sooner)"
_LEFT = "the build logs and constraints files installs left"


@cache.command("clear")
@click.option("--package", metavar="NAME", help="Remove only this package's wheels.")
def cache_clear(package: str | None) -> None:
    """Remove cached wheels (all, or one package's); without --package also the build logs and constraints files of
    earlier runs and what lock remembered (lock-hints, lock-names). The matrix cache and the index pages stay."""
    from resolver import cache as build_cache

    removed = build_cache.clear(package)
    line(console(), f"removed {len(removed)} cached wheel(s)" + ("" if package else f", {_LEFT} and {_REMEMBERED}")
         + f" from {build_cache.cache_dir()}")

