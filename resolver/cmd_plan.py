"""``gpustack plan``: solve for a target and print the stack, the ordered steps and every note."""

from __future__ import annotations

import json
import sys

import click
from resolver.errors import NoCompatibleStack
from resolver.options import target_options
from resolver.pipeline import PlanOptions, plan_for

__all__ = ["plan"]


@click.command()
@click.argument("requirements", nargs=-1, metavar="[REQ]...")
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (docs/plan-json.md).")
def plan(requirements: tuple[str, ...], as_json: bool, opts: PlanOptions) -> None:
    """Solve torch, its CUDA build, xformers and flash-attn for a target and print the plan.

    REQ are PEP 508 requirements such as 'torch==1.12.1', 'xformers<0.0.23', 'flash-attn'. Exit codes: 0 a stack
    was found, 1 no compatible stack, 2 bad input.
    """
    try:
        the_plan, ctx = plan_for(requirements, opts)
    except NoCompatibleStack as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "reasons": exc.reasons, "alternatives": exc.alternatives}, indent=2))
        else:
            from resolver.render import console, print_refusal

            print_refusal(console(), exc.reasons, exc.alternatives)
        sys.exit(1)
    if as_json:
        data = the_plan.to_dict()
        data["detection"] = list(ctx.lines)
        click.echo(json.dumps(data, indent=2))
        return
    from resolver.render import console, print_plan, print_target

    out = console()
    print_target(out, ctx.target, ctx.lines)
    print_plan(out, the_plan)
