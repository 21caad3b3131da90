"""``gpustack verify``: run every installed attention kernel, compare it with an fp32 reference, time it.

A thin click layer over ``resolver.verify.run_verify``; it never imports torch (only the child processes do).
Exit status: 0 when every backend that ran (and every ``--expect``ed one) passed, 1 when one failed, 2 on bad input.
"""

from __future__ import annotations

import json
import sys

import click

from resolver.verify import run_verify

__all__ = ["verify"]


@click.command()
@click.option("--python-exe", default=None, metavar="PATH",
              help="The target environment's python (default: the one running gpustack).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (docs/verify.md).")
@click.option("--expect", multiple=True, metavar="BACKEND",
              help="A backend that must run and pass (repeat or comma-separate): sdpa, sdpa-flash, xformers, "
                   "flash-attn, flash-attn-3, sageattention ...")
@click.option("--timeout", default="120", show_default=True, metavar="SECONDS", help="Seconds allowed per backend.")
def verify(python_exe: str | None, as_json: bool, expect: tuple[str, ...], timeout: str) -> None:
    """Run every installed attention kernel and check it against an fp32 reference."""
    from resolver.inputs import check_name, positive_seconds

    seconds = positive_seconds(timeout, "--timeout", maximum=86400)
    for item in expect:
        check_name(item, "--expect", hint="name a backend such as sdpa, xformers or flash-attn")
    names = [n.strip() for item in expect for n in item.split(",") if n.strip()]
    from resolver.journal import notice

    notice(python_exe or sys.executable)
    report = run_verify(python_exe, expect=names, timeout=seconds)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        from resolver.render import console, print_verify

        print_verify(console(), report)
    sys.exit(0 if report.ok else 1)
