"""``gpustack lock``, ``gpustack dockerfile`` and ``gpustack check-upgrade``: thin click commands over
``resolver.lock`` / ``hashes``, ``resolver.dockerfile`` and ``resolver.upgrade`` (docs/lock.md, docs/dockerfile.md,
docs/check-upgrade.md)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from resolver.errors import BadInput, CommandFailed
from resolver.models import PYPI_SIMPLE, Plan
from resolver.options import fleet_options, target_options
from resolver.pipeline import Context, PlanOptions, fresh_plan_for, parse_driver_option

__all__ = ["lock", "dockerfile", "check_upgrade", "write_atomic"]


def _check_output(path: str) -> None:
    """Refuse a bad ``-o`` (missing folder, a folder, a device) before any solving or network: bad input first."""
    if path != "-":
        from resolver.safefiles import check_output

        check_output(path, "-o")


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (``-`` is stdout) safely: ``resolver.safefiles.write_output`` (docs/input.md)."""
    if path == "-":
        click.echo(text, nl=False)
        return
    from resolver.safefiles import write_output

    write_output(path, text, "-o")


def class_path(output: str, class_id: str) -> str:
    """Return the file of one class beside ``output``: ``pylock.toml`` -> ``pylock.<id>.toml`` (PEP 751's
    ``pylock.<name>.toml``), ``Dockerfile`` -> ``Dockerfile.<id>``."""
    path = Path(output)
    if path.suffix in (".toml", ".txt", ".yaml", ".yml"):
        return str(path.with_name(f"{path.stem}.{class_id}{path.suffix}"))
    return str(path.with_name(f"{path.name}.{class_id}"))


def _per_class_plans(requirements: tuple[str, ...], opts: PlanOptions,
                     output: str) -> tuple[list[tuple[Any, str, Plan]], Context]:
    """Return ``(class, file, plan)`` for every class of the fleet; exit 1 (nothing written) when one has no stack."""
    from resolver.errors import NoCompatibleStack
    from resolver.fleet_plan import plans_per_class

    if output == "-":
        raise BadInput("--per-class writes one file per class: pass -o FILE (each class's file is named after it)")
    answers, ctx = plans_per_class(requirements, opts)
    assert ctx.fleet is not None
    out: list[tuple[Any, str, Plan]] = []
    refused: list[str] = []
    for (c, got), cid in zip(answers, ctx.fleet.class_ids()):
        if isinstance(got, NoCompatibleStack):
            refused.append(f"class {cid} ({c.label}): " + "; ".join(got.reasons)
                           + (f" (instead: {got.alternatives[0]})" if got.alternatives else ""))
        else:
            out.append((c, class_path(output, cid), got))
    if refused:
        raise NoCompatibleStack(refused, ["leave the class's nodes out of the fleet file, or change the request"])
    return out, ctx


def _previous(output: str) -> tuple[list[str], Any]:
    """Return the package names and the ``LockedPlan`` of the lock at ``output`` (``[], None`` when there is none
    or it is not a gpustack lock: it is then simply replaced)."""
    from resolver.lock import loads

    if output == "-":
        return [], None
    try:
        text = Path(output).read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return [], None
    packages = data.get("packages")
    names = [p["name"] for p in (packages if isinstance(packages, list) else [])[:500]
             if isinstance(p, dict) and isinstance(p.get("name"), str)]
    try:
        return names, loads(text)
    except BadInput:
        return names, None


@click.command("lock")
@click.argument("requirements", nargs=-1, metavar="[REQ]...")
@fleet_options
@target_options
@click.option("-o", "--output", default="pylock.toml", show_default=True, metavar="FILE",
              help="Where to write the lock (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["pylock", "requirements"]), default="pylock", show_default=True,
              help="PEP 751 pylock.toml, or a requirements.txt with index lines and --hash.")
@click.option("--deps/--no-deps", "with_deps", default=True, show_default=True,
              help="Also lock the dependencies uv (else pip) resolves for the target (torch's nvidia-* wheels, ...).")
def lock(requirements: tuple[str, ...], output: str, fmt: str, with_deps: bool, opts: PlanOptions) -> None:
    """Write a PEP 751 lock (or requirements.txt) of the stack solved for a target, with every file's sha256.

    Hashes come from the indexes the plan installs from; one that cannot be read is written as missing, with a
    warning, never guessed. Exit codes: 0 written, 1 no compatible stack, 2 bad input.
    """
    if fmt == "requirements" and output == "pylock.toml":
        output = "requirements.txt"
    _check_output(output)  # before any solving or network: a bad -o is bad input
    from resolver.pipeline import _read_requirement_files

    if opts.per_class:
        plans, ctx = _per_class_plans(requirements, opts, output)
        for line in ctx.lines:
            click.echo(line, err=True)
        for _, path, _ in plans:
            _check_output(path)
        request = [*requirements, *_read_requirement_files(opts.requirement_files)]
        texts = [(path, _lock_text(plan, ctx, fmt, with_deps, opts, request, _previous(path)[0]))
                 for _, path, plan in plans]
        for path, (text, summary) in texts:  # every class solved and locked before the first file is written
            write_atomic(path, text)
            click.echo(f"wrote {path} ({summary})", err=True)
        return
    previous_names, previous = _previous(output)
    if previous is not None and not requirements and not opts.requirement_files and not opts.profiles:
        # Re-locking an existing lock with no new request: lock what it was made for.
        requirements = previous.request
        keep: dict[str, Any] = {"profiles": tuple(previous.profile.split(",")) if previous.profile else ()}
        if opts.driver is None and previous.driver:
            keep["driver"] = parse_driver_option(previous.driver)
        if hasattr(opts, "glibc") and not getattr(opts, "glibc") and previous.glibc:
            keep["glibc"] = previous.glibc
        opts = dataclasses.replace(opts, **keep)
        click.echo(f"re-locking {output} for what it was made for: "
                   + (" ".join(requirements) or "(no requirements)")
                   + (f" --profile {previous.profile}" if previous.profile else ""), err=True)
    request = [*requirements, *_read_requirement_files(opts.requirement_files)]
    plan, ctx = fresh_plan_for(requirements, opts)
    for line in ctx.lines if ctx.fleet is not None else ():
        click.echo(line, err=True)
    text, summary = _lock_text(plan, ctx, fmt, with_deps, opts, request, previous_names)
    write_atomic(output, text)
    if output != "-":
        click.echo(f"wrote {output} ({summary})", err=True)


def _lock_text(plan: Plan, ctx: Context, fmt: str, with_deps: bool, opts: PlanOptions, request: list[str],
               previous_names: list[str]) -> tuple[str, str]:
    """Return the lock (or requirements.txt) text of ``plan`` and a summary; warn on stderr about each missing
    hash. ``ResolveError`` (exit 1) when a resolved file does not fit the target."""
    from resolver import hashes, lock_resolve
    from resolver import lock as lock_mod
    from resolver.lock_install import requirements_text
    from resolver.plan import plan_constraints

    pages = lock_resolve.Pages()
    try:
        # Read, while the resolver runs, the index pages the check will want: the plan's packages, and those of
        # the lock this run replaces (a re-lock mostly locks the same names).
        pages.prefetch(lock_resolve.Pages.url(s.index_url or PYPI_SIMPLE, s.package) for s in plan.steps)
        pages.prefetch(lock_resolve.Pages.url(PYPI_SIMPLE, n) for n in previous_names)
        resolved: dict[str, Any] = {}
        if with_deps:
            try:
                resolved = lock_resolve.resolve(plan, plan_constraints(plan), python_exe=opts.python_exe)
            except CommandFailed as exc:
                click.echo(f"warning: dependencies not locked (the resolver failed: "
                           f"{exc.output_tail.strip().splitlines()[-1:]}); the lock holds the plan's packages only",
                           err=True)
        files, warnings = hashes.lookup(plan, known=resolved)
        target = plan.stack.target
        problems = lock_resolve.check_files(files.values(), target.python, target.platform, pages=pages)
    finally:
        pages.close()
    if problems:
        raise lock_resolve.ResolveError("refusing to write a lock with files that do not fit the target:\n"
                                        + "\n".join(f"  - {p}" for p in problems))
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    glibc = getattr(opts, "glibc", None)  # --glibc, where the target options have it
    text = lock_mod.dumps(plan, files, matrix=ctx.matrix, request=request, profile=",".join(opts.profiles) or None,
                          glibc=str(glibc) if glibc else None)
    if fmt == "requirements":
        text = requirements_text(lock_mod.loads(text))
    return text, f"{len(files)} packages, {len(warnings)} without a hash"


@click.command("dockerfile")
@click.argument("requirements", nargs=-1, metavar="[REQ]...")
@fleet_options
@target_options
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE", help="Where to write it (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["dockerfile", "k8s"]), default="dockerfile", show_default=True,
              help="With --fleet: k8s prints node-affinity snippets (GPU Feature Discovery labels) for the image(s).")
def dockerfile(requirements: tuple[str, ...], output: str, fmt: str, opts: PlanOptions) -> None:
    """Print a Dockerfile for the stack solved for a target: the nvidia/cuda image of torch's CUDA, a devel stage for
    source builds, pinned installs from the right indexes. With --fleet: one image for every GPU class of a cluster
    (or one per class with --per-class) that checks its backends with `gpustack verify` at start.
    Exit codes: 0 written, 1 no compatible stack, 2 bad input."""
    from resolver.dockerfile import render

    if fmt == "k8s" and not opts.fleet:
        raise BadInput("--format k8s needs --fleet: node affinity is written on the fleet's node labels")
    _check_output(output)
    if opts.fleet:
        _fleet_dockerfile(requirements, output, fmt, opts)
        return
    plan, ctx = fresh_plan_for(requirements, opts)
    write_atomic(output, render(plan, ctx.matrix))


def _fleet_dockerfile(requirements: tuple[str, ...], output: str, fmt: str, opts: PlanOptions) -> None:
    """Write the fleet's image (or one per class), or with ``--format k8s`` the node affinity of each image."""
    from resolver.dockerfile_fleet import affinity_yaml, render_fleet

    if opts.per_class:  # with --format k8s, the images are named after the Dockerfiles --per-class writes
        plans, ctx = _per_class_plans(requirements, opts, "Dockerfile" if fmt == "k8s" else output)
    else:
        plan, ctx = fresh_plan_for(requirements, opts)
        assert ctx.fleet is not None
        plans = [(None, output, plan)]
    fleet = ctx.fleet
    assert fleet is not None
    for line in ctx.lines:
        click.echo(line, err=True)
    if fmt == "k8s":
        if fleet.kind != "kubernetes":
            raise BadInput(f"--format k8s: the fleet of {fleet.origin} is {fleet.kind}, without Kubernetes node "
                           "labels; pass a kubectl node list")
        groups = [(f"the image of {Path(path).name}", [c]) for c, path, _ in plans] if opts.per_class else \
            [("the fleet's image", list(fleet.classes))]
        write_atomic(output, affinity_yaml(fleet, groups))
        return
    for _, path, _ in plans:
        _check_output(path)
    texts = [(path, render_fleet(plan, ctx.matrix, fleet, [c] if c is not None else None)) for c, path, plan in plans]
    for path, text in texts:  # every image rendered before the first file is written
        write_atomic(path, text)
        if path != "-":
            click.echo(f"wrote {path}", err=True)


def _current_from_lock(path: str) -> Any:
    """Return the ``Installed`` set a lock file describes."""
    from resolver.lock import loads
    from resolver.models import Target
    from resolver.upgrade import Installed

    from resolver.inputs import read_text

    text = read_text(path, f"--lock {path}", hint="pass a file written by `gpustack lock`")
    locked = loads(text)
    t = locked.target
    target = Target(gpus=t.gpus, python=t.python, platform=t.platform, driver=None, source="lock")
    built = {}
    for p in locked.packages:
        m = re.search(r"torch(\d+\.\d+)", p.url.rsplit("/", 1)[-1])
        if p.name == "flash-attn" and m:
            built["flash-attn"] = m.group(1)
    versions = {p.name: p.version for p in (*locked.packages, *locked.missing)}
    source = frozenset(p.name for p in locked.packages if p.method == "source")
    return Installed(target, versions, built, source)


def _current_from_env(python_exe: str | None, driver: str | None) -> Any:
    """Return the ``Installed`` set of the target interpreter and this machine's GPUs."""
    from resolver.detect import detect
    from resolver.lock_install import host_target
    from resolver.upgrade import Installed

    host = detect(python_exe, driver_override=driver)
    if host.env.torch is None:
        raise BadInput("no torch is installed in the target interpreter; pass --python-exe or --lock FILE")
    versions = dict(host.env.packages)
    versions["torch"] = host.env.torch
    return Installed(host_target(host), versions)


@click.command("check-upgrade")
@click.argument("requirements", nargs=-1, required=True, metavar="REQ...")
@click.option("--lock", "lock_file", metavar="FILE", help="Compare against this lock instead of the environment.")
@click.option("--python-exe", metavar="PATH", help="Interpreter whose packages are the current set.")
@click.option("--driver", metavar="VERSION", help="Driver of the target (default: detected; a lock records none).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_upgrade(requirements: tuple[str, ...], lock_file: str | None, python_exe: str | None, driver: str | None,
                  as_json: bool) -> None:
    """Say whether moving to REQ (e.g. torch==2.2.0) is safe, needs a rebuild, or breaks something, and the nearest
    safe set of versions. Exit codes: 0 safe, 1 not safe, 2 bad input."""
    from dataclasses import replace

    from resolver.matrix import load
    from resolver.upgrade import check_upgrade as check, proposed_versions
    from resolver.request import parse_requirement

    for req in requirements:  # bad input first: before reading any lock or environment
        parse_requirement(req)
    given_driver = parse_driver_option(driver) if driver else None
    matrix = load()
    current = _current_from_lock(lock_file) if lock_file else _current_from_env(python_exe, driver)
    if given_driver is not None:
        current = replace(current, target=replace(current.target, driver=given_driver))
    proposed = proposed_versions(current, requirements, matrix)
    report = check(current, proposed, matrix, requirements=requirements)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        moves = ", ".join(f"{k} {current.versions.get(k, '(new)')} -> {v}" for k, v in report.proposed.items()
                          if current.versions.get(k) != v)
        click.echo(f"{report.verdict}: {moves or 'no change'}")
        for f in report.findings:
            click.echo(f"  - [{f.verdict}] {f.reason}")
        for n in report.notes:
            click.echo(f"  note: {n}")
        if report.nearest:
            click.echo("nearest safe set: " + ", ".join(f"{k}=={v}" for k, v in sorted(report.nearest.items())
                                                        if k in ("torch", "xformers", "flash-attn")))
    sys.exit(0 if report.verdict == "safe" else 1)
