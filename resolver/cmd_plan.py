"""``gpustack plan``: solve for a target and print the stack, the ordered steps and every note."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from resolver.errors import NoCompatibleStack
from resolver.options import fleet_options, target_options
from resolver.pipeline import PlanOptions, plan_for

__all__ = ["plan"]


@click.command()
@click.argument("requirements", nargs=-1, metavar="[REQ]...")
@fleet_options
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (docs/plan-json.md).")
def plan(requirements: tuple[str, ...], as_json: bool, opts: PlanOptions) -> None:
    """Solve torch, its CUDA build, xformers and flash-attn for a target and print the plan.

    REQ are PEP 508 requirements such as 'torch==1.12.1', 'xformers<0.0.23', 'flash-attn'. Exit codes: 0 a stack
    was found, 1 no compatible stack, 2 bad input.
    """
    if opts.per_class:
        _plan_per_class(requirements, as_json, opts)
        return
    try:
        the_plan, ctx = plan_for(requirements, opts)
    except NoCompatibleStack as exc:
        if as_json:
            click.echo(json.dumps(exc.to_dict(), indent=2))
        else:
            from resolver.render import console, print_refusal

            print_refusal(console(), exc.refusals, exc.alternatives)
        sys.exit(1)
    if as_json:
        data = the_plan.to_dict()
        data["detection"] = list(ctx.lines)
        if ctx.fleet is not None:
            data["fleet"] = ctx.fleet.to_dict(opts.driver)
        click.echo(json.dumps(data, indent=2))
        return
    from resolver.render import console, print_plan, print_target

    out = console()
    print_target(out, ctx.target, _lines(ctx.lines))
    print_plan(out, the_plan)


def _lines(lines: tuple[str, ...]) -> list[str]:
    """Return the lines said above a plan: how the target was found, the user's own extra index if any
    (``installers.user_index_note``: install keeps it out of the planned packages' steps) and the user's uv settings
    that those steps ignore (``installers.ignored_settings_note``)."""
    from resolver.installers import ignored_settings_note, user_index_note
    from resolver.redact import redact

    notes = [redact(n) for n in (user_index_note(), ignored_settings_note()) if n]
    return [*lines, *notes]


def _plan_per_class(requirements: tuple[str, ...], as_json: bool, opts: PlanOptions) -> None:
    """Print one plan per GPU class of the fleet; exit 1 when a class has none."""
    from resolver.fleet_plan import plans_per_class

    answers, ctx = plans_per_class(requirements, opts)
    assert ctx.fleet is not None
    ids = ctx.fleet.class_ids()
    failed = any(isinstance(got, NoCompatibleStack) for _, got in answers)
    if as_json:
        classes: list[dict[str, Any]] = []
        for (c, got), cid in zip(answers, ids):
            entry: dict[str, Any] = {"class": dict(c.to_dict(), id=cid)}
            if isinstance(got, NoCompatibleStack):
                entry.update(got.to_dict())
            else:
                entry["plan"] = got.to_dict()
            classes.append(entry)
        click.echo(json.dumps({"ok": not failed, "fleet": ctx.fleet.to_dict(opts.driver), "classes": classes}, indent=2))
    else:
        from resolver.render import console, print_fleet_plans

        print_fleet_plans(console(), _lines(ctx.lines), [(cid, c.describe(opts.driver), got) for (c, got), cid in zip(answers, ids)])
    if failed:
        sys.exit(1)
