"""``gpustack lock``: a PEP 751 lock (or requirements.txt) of the stack solved for a target, over ``resolver.lock``,
``resolver.lock_resolve`` and ``resolver.hashes`` (docs/lock.md)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from resolver import render, toml_read
from resolver.cli import skip_final_collection
from resolver.cmd_common import check_output, per_class_plans, write_atomic
from resolver.errors import BadInput, CommandFailed
from resolver.models import PYPI_SIMPLE, Plan, parse_glibc
from resolver.options import fleet_options, mirror_options, target_flags, target_options
from resolver.pipeline import Context, PlanOptions, fresh_plan_for, parse_driver_option

if TYPE_CHECKING:
    from resolver.lock_uv import UvRun

__all__ = ["lock"]


def _previous(output: str) -> tuple[list[str], Any, str | None]:
    """Return the package names and the ``LockedPlan`` of the lock at ``output`` (``[], None`` when there is none
    or it is not a gpustack lock: it is then simply replaced), and why a file there that claims to be a gpustack lock
    (a ``[tool.gpustack]`` table) cannot be read (``None`` when it can, or makes no such claim)."""
    from resolver.lock import from_data

    if output == "-":
        return [], None, None
    try:
        text = Path(output).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return [], None, None
    try:
        data = toml_read.loads(text)  # parsed once: the names and the plan
    except toml_read.TOMLDecodeError as exc:
        claims = re.search(r"^\s*(\[\[?\s*)?tool\s*\.\s*gpustack\b", text, re.MULTILINE) is not None
        return [], None, f"not valid TOML ({exc})" if claims else None
    packages = data.get("packages")
    names = [p["name"] for p in (packages if isinstance(packages, list) else [])[:500]
             if isinstance(p, dict) and isinstance(p.get("name"), str)]
    try:
        return names, from_data(data), None
    except BadInput as exc:
        tool = data.get("tool")
        claims = isinstance(tool, dict) and "gpustack" in tool
        reason, _, hint = str(exc).rpartition("; ")  # its own hint ("re-run `gpustack lock`") is not the step here
        return names, None, (reason if "gpustack lock" in hint else str(exc)) if claims else None


def _lock_target(previous: Any, opts: PlanOptions) -> dict[str, Any]:
    """Return the target options a re-lock takes from the lock it replaces (a ``LockedPlan``): its GPUs (none: a CPU
    lock), Python and platform, each unless given. A lock is for its own target, not for the machine that happens
    to re-lock it: an H100 lock re-locked on a CPU box stays an H100 lock. With ``--gpu``/``--cpu`` or ``--fleet``
    the target is the one given; with ``--python-exe``, that interpreter's Python and platform."""
    if opts.target_given or opts.fleet:
        return {}
    from resolver.pipeline import load_matrix

    t = previous.target
    matrix = load_matrix(opts) if t.gpus else None
    keep: dict[str, Any] = {"gpus": tuple(_gpu_option(g, matrix) for g in t.gpus), "cpu": not t.gpus}
    if opts.python_exe is None:
        keep["python_version"] = opts.python_version or t.python
        keep["platform_tag"] = opts.platform_tag or t.platform
    return keep


def _gpu_option(gpu: Any, matrix: Any) -> str:
    """Return the ``--gpu`` text of a locked GPU: its name where the GPU table (``matrix``'s) gives it the locked
    compute capability, else the capability itself (a lock made with ``--gpu 9.0``)."""
    from resolver.gpus import lookup_gpu

    try:
        if lookup_gpu(gpu.name, matrix).compute_capability == gpu.compute_capability:
            return str(gpu.name)
    except BadInput:
        pass
    return str(gpu.compute_capability)


def replayed_options(previous: Any, opts: PlanOptions) -> PlanOptions:
    """Return ``opts`` with what the lock ``previous`` (a ``LockedPlan``) was made for, each unless given: its profile,
    driver, glibc and target (``_lock_target``), and its ``lock.RECORDED_OPTIONS`` (``--nvcc``, ``--verified-only``,
    ``--prefer-wheels``, ``--upgrade``), read back through ``PlanOptions.from_cli`` as the command line is."""
    from resolver.lock import recorded_options

    keep: dict[str, Any] = {"profiles": tuple(previous.profile.split(",")) if previous.profile else ()}
    if opts.driver is None and previous.driver:
        keep["driver"] = parse_driver_option(previous.driver)
    if opts.glibc is None and previous.glibc:
        keep["glibc"] = parse_glibc(previous.glibc)
    options = recorded_options(previous.options)
    recorded = PlanOptions.from_cli(options)
    keep.update({k: getattr(recorded, k) for k in options if not getattr(opts, k)})
    if previous.fleet is not None and not (opts.target_given or opts.fleet):
        # A fleet lock: each class planned again for its own GPU, driver, platform and OS (fleet.Fleet.from_record),
        # not every GPU for the fleet's lowest driver; the --driver and --glibc given for the fleet, if any.
        fleet = previous.fleet
        keep.update(fleet="the lock", fleet_record=fleet,
                    driver=opts.driver or (parse_driver_option(fleet["driver"]) if fleet.get("driver") else None),
                    glibc=opts.glibc or (parse_glibc(fleet["glibc"]) if fleet.get("glibc") else None))
        if opts.python_exe is None:
            keep["python_version"] = opts.python_version or previous.target.python
        return dataclasses.replace(opts, **keep)
    keep.update(_lock_target(previous, opts))
    return dataclasses.replace(opts, **keep)


def _recorded_options(opts: PlanOptions, plan: Plan) -> dict[str, str | bool]:
    """Return the ``lock.RECORDED_OPTIONS`` a lock made with ``opts`` records: the flags given, and the target's nvcc
    (``--nvcc``, or detected: the plan's source builds were chosen for it)."""
    from resolver.lock import RECORDED_OPTIONS, recorded_options

    nvcc = plan.stack.target.nvcc
    given = {k: getattr(opts, k) for k in RECORDED_OPTIONS}
    return recorded_options(given | {"nvcc": str(nvcc) if nvcc is not None else None})


def _fleet_record(ctx: Context, opts: PlanOptions) -> dict[str, Any] | None:
    """Return what a lock of one stack for a fleet records of it (``fleet.Fleet.record``, with the --driver and
    --glibc given for its classes); ``None`` for any other lock (a --per-class lock is one class's target)."""
    from resolver.models import format_driver

    if ctx.fleet is None or opts.per_class:
        return None
    given = {"driver": format_driver(opts.driver) if opts.driver is not None else None,
             "glibc": str(opts.glibc) if opts.glibc is not None else None}
    return ctx.fleet.record() | {k: v for k, v in given.items() if v is not None}


@click.command("lock")
@click.argument("requirements", nargs=-1, metavar="[REQ]...")
@fleet_options
@target_options
@click.option("-o", "--output", default="pylock.toml", show_default=True, metavar="FILE",
              help="Where to write the lock (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["pylock", "requirements"]), default="pylock", show_default=True,
              help="PEP 751 pylock.toml, or a requirements.txt with index lines and --hash.")
@click.option("--deps/--no-deps", "with_deps", default=None,
              help="Also lock the dependencies uv (else pip) resolves for the target (torch's nvidia-* wheels, ...). "
                   "Default: on, or what the lock -o replaces was made with when re-locking it.")
@mirror_options
def lock(requirements: tuple[str, ...], output: str, fmt: str, with_deps: bool | None, opts: PlanOptions,
         torch_index_url: str | None = None) -> None:
    """Write a PEP 751 lock (or requirements.txt) of the stack solved for a target, with every file's sha256.

    Hashes come from the indexes the plan installs from; one that cannot be read is written as missing, with a
    warning, never guessed. Exit codes: 0 written, 1 no compatible stack, 2 bad input.
    """
    if fmt == "requirements" and output == "pylock.toml":
        output = "requirements.txt"
    check_output(output)  # before any solving or network: a bad -o is bad input
    check_lock_name(output, fmt, per_class=opts.per_class)  # and a name its reader refuses
    from resolver import lock_speculate
    from resolver.installers import mirrors as mirrors_of

    # the mirrors install takes, read by the same code (bad input before any solving)
    mirrors = mirrors_of(torch_index_url, opts.index_url, allow_insecure=opts.allow_insecure_index)

    # uv already runs on the request this command line asked for last time (resolver.cli started it); the plan
    # decides below whether its lock is used.
    hint, started = lock_speculate.current() if with_deps is not False and not opts.per_class else (None, None)
    _lock(requirements, output, fmt, with_deps, opts, mirrors, started, hint)  # resolver.cli stops an unused run afterwards
    skip_final_collection()


def _pep751_name(path: str) -> bool:
    """Return whether PEP 751 allows ``path``'s file name (``pylock.toml`` or ``pylock.<name>.toml``, the name
    without dots), by packaging's own rule, which uv applies too."""
    from packaging.pylock import is_valid_pylock_path

    return is_valid_pylock_path(Path(path))


def check_lock_name(path: str, fmt: str, *, per_class: bool = False) -> None:
    """Refuse an ``-o`` name the file's reader refuses, before any work: a PEP 751 lock not named ``pylock.toml`` or
    ``pylock.<name>.toml`` (``_pep751_name``; uv 0.13 stops at ``a.toml``: "not a valid PEP 751 filename"), and a
    requirements file named as one (uv reads ``pylock.*.toml`` as PEP 751 and stops at its first line)."""
    if path == "-":
        return
    if fmt == "pylock" and not _pep751_name(path):
        why = "--per-class names each class's lock after the -o name, and " if per_class else ""
        raise BadInput(f"-o {path}: {why}PEP 751 allows only pylock.toml or pylock.<name>.toml (no dots in <name>), "
                       "and uv will not read any other name; pass -o pylock.toml or -o pylock.<name>.toml")
    if fmt == "requirements" and _pep751_name(path):
        raise BadInput(f"-o {path}: a PEP 751 lock's name, but --format requirements writes a requirements file (uv "
                       "would read it as PEP 751 and fail); pass -o requirements.txt")


def _lock(requirements: tuple[str, ...], output: str, fmt: str, with_deps: bool | None, opts: PlanOptions,
          mirrors: tuple[str | None, str | None], started: UvRun | None, hint: str | None) -> None:
    if opts.per_class:
        with_deps = with_deps is not False
        plans, ctx = per_class_plans(requirements, opts, output)
        for line in ctx.lines:
            render.status(line)
        for _, path, _ in plans:
            check_output(path)
            check_lock_name(path, fmt, per_class=True)
        request = list(ctx.request.asked)  # the arguments and -r lines as solved (each file read once)
        answered: set[str] = set()  # each host probed once for all the classes
        texts = [(path, _lock_text(plan, ctx, fmt, with_deps, opts, request, _previous(path)[0], mirrors,
                                   answered=answered)) for _, path, plan in plans]
        for path, (text, summary) in texts:  # every class solved and locked before the first file is written
            write_atomic(path, text)
            render.print_lock_written(path, summary)
        return
    previous_names, previous, unreadable = _previous(output)
    bare = not requirements and not opts.requirement_files and not opts.profiles
    if unreadable is not None and bare:
        # A bare re-lock locks what FILE records: never, silently, this machine's default stack instead.
        raise BadInput(f"-o {output}: a gpustack lock that cannot be read: {unreadable}; a bare re-lock locks what it "
                       f"records: fix it, or name the request to lock anew (gpustack lock REQ... -o {output}); "
                       "nothing written")
    if previous is not None and bare:
        # Re-locking an existing lock with no new request: lock what it was made for.
        requirements = previous.request
        opts = replayed_options(previous, opts)
        with_deps = previous.deps if with_deps is None else with_deps
        render.print_relocking(output, requirements, previous.profile, target_flags(opts, with_deps))
    with_deps = with_deps is not False
    plan, ctx = fresh_plan_for(requirements, opts)
    request = list(ctx.request.asked)  # the arguments and -r lines as solved (each file read once)
    for line in ctx.lines if ctx.fleet is not None else ():
        render.status(line)
    text, summary = _lock_text(plan, ctx, fmt, with_deps, opts, request, previous_names, mirrors, started, hint)
    write_atomic(output, text)
    if output != "-":
        render.print_lock_written(output, summary)


def _lock_text(plan: Plan, ctx: Context, fmt: str, with_deps: bool, opts: PlanOptions, request: list[str],
               previous_names: list[str], mirrors: tuple[str | None, str | None] = (None, None),
               started: UvRun | None = None, hint: str | None = None,
               answered: set[str] | None = None) -> tuple[str, str]:
    """Return the lock (or requirements.txt) text of ``plan`` and a summary; warn on stderr about each missing
    hash. ``ResolveError`` (exit 1) when a resolved file does not fit the target.

    ``mirrors`` (``installers.torch_mirror``, ``pypi_mirror``) move the plan's indexes as install moves them
    (``installers.with_mirrors``); the PyPI mirror is then also the index every dependency is resolved from."""
    from resolver import hashes, lock_resolve
    from resolver import lock as lock_mod
    from resolver.installers import with_mirrors
    from resolver.lock_install import requirements_text
    from resolver.plan import plan_constraints

    plan = with_mirrors(plan, *mirrors)
    default_index = mirrors[1] or PYPI_SIMPLE

    pages = lock_resolve.Pages()
    key = lock_resolve.names_key(plan, plan_constraints(plan), ctx.matrix)
    uv = lock_resolve.find_uv() if with_deps else None
    try:
        # Read, while the resolver runs, the index pages the lookup and the check will want. uv holds what it locks
        # against the target's Requires-Python and tags itself, so with uv only the pages of what it does not lock
        # (build steps' sdists) are read; with pip (or --no-deps), the plan's packages, those of the lock this run
        # replaces and those the last lock of the same request had (a re-lock mostly locks the same names).
        if uv:
            pages.prefetch(lock_resolve.Pages.url(s.index_url or default_index, s.package)
                           for s in plan.steps if s.action != "install")
        else:
            pages.prefetch(lock_resolve.Pages.url(s.index_url or default_index, s.package) for s in plan.steps)
            pages.prefetch(lock_resolve.Pages.url(default_index, n)
                           for n in [*previous_names, *lock_resolve.remembered_names(key)])
            pages.warm(f"{default_index}/")
        resolved: dict[str, Any] = {}
        if with_deps:
            if uv and lock_resolve.requests_of(plan, ctx.matrix):  # uv runs while its hosts are probed
                started = lock_resolve.start_uv(uv, plan, plan_constraints(plan), default_index, ctx.matrix,
                                                started, hint)
            try:
                # a dead host fails now, named, not after uv's retries
                lock_resolve.check_sources(plan, ctx.matrix, default_index, mirrors[0], answered)
                resolved = lock_resolve.resolve(plan, plan_constraints(plan), python_exe=opts.python_exe, uv=uv,
                                                started=started, hint=hint, matrix=ctx.matrix,
                                                default_index=default_index)
                if not uv:
                    lock_resolve.remember_names(key, resolved)
            except CommandFailed as exc:
                # Never a partial lock: a lock that silently holds only the plan's packages would install
                # whatever the dependencies' indexes serve on the day.
                last = (exc.output_tail.strip().splitlines() or ["no output"])[-1].strip()
                from resolver.redact import redact

                # remote indexes answered a probe just now (check_sources): most often one lacks a version
                raise lock_resolve.ResolveError(redact(
                    f"dependencies not resolved from {default_index} ({'uv' if uv else 'pip'}: {last}); lock "
                    f"from an index that answers and holds them (--index-url URL, else $PIP_INDEX_URL), or with "
                    f"--no-deps for the plan's packages only; nothing written")) from None
            finally:
                if started is not None:
                    started.cancel()  # waited for by resolve (which removes it), or not needed: stopped, removed
        files, warnings = hashes.lookup(plan, fetch=pages.get, known=resolved)
        target = plan.stack.target
        checked = [files[k] for k in resolved if uv and k in files and files[k] is resolved[k]]
        problems = lock_resolve.check_files(files.values(), target.python, target.platform, pages=pages,
                                            glibc=target.glibc, python_checked=checked)
    finally:
        pages.close()
    if problems:
        raise lock_resolve.ResolveError("refusing to write a lock with files that do not fit the target:\n"
                                        + "\n".join(f"  - {p}" for p in problems))
    for w in warnings:
        render.status(f"warning: {w}")
    t = plan.stack.target
    if with_deps and resolved:  # resolved as on X.Y.0: said in the lock, as the glibc assumed is
        plan = dataclasses.replace(plan, notes=(*plan.notes, lock_resolve.python_patch_note(t.python)))
    glibc = t.glibc if not t.glibc_assumed else None  # recorded only when known (given or detected)
    text = lock_mod.dumps(plan, files, matrix=ctx.matrix, request=request, profile=",".join(opts.profiles) or None,
                          glibc=str(glibc) if glibc else None, deps=with_deps and bool(resolved),
                          options=_recorded_options(opts, plan), fleet=_fleet_record(ctx, opts))
    if fmt == "requirements":
        text = requirements_text(lock_mod.loads(text))
    return text, (f"{len(files)} package{'s' if len(files) != 1 else ''}, {len(warnings)} without a hash")
