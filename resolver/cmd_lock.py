"""``gpustack lock``: a PEP 751 lock (or requirements.txt) of the stack solved for a target, over ``resolver.lock``
and ``resolver.hashes`` (docs/lock.md)."""

from __future__ import annotations

import sys

import click

from resolver.cmd_common import check_output, per_class_plans, write_atomic
from resolver.errors import CommandFailed
from resolver.models import Plan
from resolver.options import fleet_options, target_options
from resolver.pipeline import Context, PlanOptions, fresh_plan_for

__all__ = ["lock"]


@click.command("lock")
@click.argument("requirements", nargs=-1, metavar="[REQ]...")
@fleet_options
@target_options
@click.option("-o", "--output", default="pylock.toml", show_default=True, metavar="FILE",
              help="Where to write the lock (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["pylock", "requirements"]), default="pylock", show_default=True,
              help="PEP 751 pylock.toml, or a requirements.txt with index lines and --hash.")
@click.option("--deps/--no-deps", "with_deps", default=True, show_default=True,
              help="Also lock the dependencies pip resolves for the target (torch's nvidia-* wheels, ...).")
def lock(requirements: tuple[str, ...], output: str, fmt: str, with_deps: bool, opts: PlanOptions) -> None:
    """Write a PEP 751 lock (or requirements.txt) of the stack solved for a target, with every file's sha256.

    Hashes come from the indexes the plan installs from; one that cannot be read is written as missing, with a
    warning, never guessed. Exit codes: 0 written, 1 no compatible stack, 2 bad input.
    """
    if fmt == "requirements" and output == "pylock.toml":
        output = "requirements.txt"
    check_output(output)  # before any solving or network: a bad -o is bad input
    if opts.per_class:
        plans, ctx = per_class_plans(requirements, opts, output)
        for line in ctx.lines:
            click.echo(line, err=True)
        for _, path, _ in plans:
            check_output(path)
        texts = [(path, _lock_text(plan, ctx, fmt, with_deps, opts)) for _, path, plan in plans]
        for path, (text, summary) in texts:  # every class solved and locked before the first file is written
            write_atomic(path, text)
            click.echo(f"wrote {path} ({summary})", err=True)
        return
    plan, ctx = fresh_plan_for(requirements, opts)
    for line in ctx.lines if ctx.fleet is not None else ():
        click.echo(line, err=True)
    text, summary = _lock_text(plan, ctx, fmt, with_deps, opts)
    write_atomic(output, text)
    if output != "-":
        click.echo(f"wrote {output} ({summary})", err=True)


def _lock_text(plan: Plan, ctx: Context, fmt: str, with_deps: bool, opts: PlanOptions) -> tuple[str, str]:
    """Return the lock (or requirements.txt) text of ``plan`` and a summary; warn on stderr about each missing
    hash."""
    from resolver import hashes
    from resolver import lock as lock_mod
    from resolver.lock_install import requirements_text

    pins: dict[str, str] = {}
    if with_deps:
        try:
            pins = hashes.dependency_pins(plan, opts.python_exe or sys.executable)
        except CommandFailed as exc:
            click.echo(f"warning: dependencies not locked (pip could not resolve them: {exc.output_tail.splitlines()[-1:]}); "
                       "the lock holds the plan's packages only", err=True)
    files, warnings = hashes.lookup(plan, pins=pins)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    text = lock_mod.dumps(plan, files, matrix=ctx.matrix)
    if fmt == "requirements":
        text = requirements_text(lock_mod.loads(text))
    return text, f"{len(files)} packages, {len(warnings)} without a hash"
