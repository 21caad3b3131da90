"""``gpustack verify``: run every installed attention kernel, compare it with an fp32 reference, time it.

A thin click layer over ``resolver.verify.run_verify``; it never imports torch (only the child processes do).
Exit status: 0 when every backend that ran (and every ``--expect``ed one) passed, 1 when one failed, 2 on bad input.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from resolver.verify import VerifyReport, run_verify

__all__ = ["verify", "render"]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(report: VerifyReport, console: Console) -> None:
    """Returns nothing; prints the report as a table, then the checks, notes and the verdict."""
    if report.device:
        d = report.device
        console.print(f"[bold]{d.get('name')}[/] (sm {d.get('compute_capability')}), driver {d.get('driver')}, "
                      f"torch {d.get('torch')} (CUDA {d.get('cuda')})")
    table = Table(show_lines=False)
    for col in ("backend", "op", "dtype", "result", "max err", "ms", "TFLOP/s", "detail"):
        table.add_column(col, justify="right" if col in ("max err", "ms", "TFLOP/s") else "left",
                         no_wrap=col != "detail")
    for r in report.results:
        if r.skipped:
            status, detail = "[dim]skip[/]", r.hint or ""
        elif r.passed:
            status, detail = "[green]pass[/]", r.hint or r.case
        else:
            status, detail = "[red]FAIL[/]", f"{r.error}" + (f"\n[yellow]fix:[/] {r.hint}" if r.hint else "")
        table.add_row(r.backend, r.op, r.dtype, status, "-" if r.skipped else f"{r.max_abs_error:.2g}",
                      _fmt(r.ms, ".3f"), _fmt(r.tflops, ".3g"), detail)
    console.print(table)
    for c in report.checks:
        mark = "[green]ok[/]" if c.ok else ("[yellow]warn[/]" if c.severity == "warning" else "[red]FAIL[/]")
        console.print(f"{mark} {c.name}: {c.message}" + (f"\n     fix: {c.hint}" if c.hint and not c.ok else ""))
    for note in report.notes:
        console.print(f"[bold yellow]{note}[/]")
    failed = report.failed_backends()
    verdict = "[bold green]all backends passed[/]" if report.ok else (
        f"[bold red]failed: {', '.join(failed)}[/]" if failed else "[bold red]nothing verified[/]")
    console.print(f"{verdict} ({report.wall_s:.1f} s)")


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
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 140)
        render(report, console)
    sys.exit(0 if report.ok else 1)
