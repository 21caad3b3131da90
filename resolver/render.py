"""Human output of plans and refusals (rich tables). No logic: it prints what the stages returned."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from resolver.models import Plan, Target, format_driver

__all__ = ["console", "print_target", "print_plan", "print_refusal", "describe_target"]


def console() -> Console:
    """Return the console human output goes to (stdout, no wrapping of long lines)."""
    return Console(soft_wrap=True)


def describe_target(target: Target) -> str:
    """Return one line naming the target: GPUs, driver, Python, platform."""
    parts = []
    if target.is_cpu:
        parts.append("CPU only")
    else:
        parts.append(", ".join(f"{g.name} ({g.compute_capability.sm})" for g in target.gpus))
        parts.append(f"driver {format_driver(target.driver)}" if target.driver is not None else "driver unknown")
    parts.append(f"Python {target.python}")
    parts.append(target.platform)
    if target.nvcc is not None:
        parts.append(f"nvcc {target.nvcc}")
    return "; ".join(parts) + f" ({target.source})"


def print_target(console: Console, target: Target, lines: Sequence[str] = ()) -> None:
    for line in lines:
        console.print(line, style="yellow", highlight=False)
    console.print(f"Target: {describe_target(target)}", highlight=False)


def print_plan(console: Console, plan: Plan) -> None:
    table = Table(title="Stack", title_justify="left")
    for col in ("package", "version", "how", "from"):
        table.add_column(col)
    for p in plan.stack.packages:
        how = "wheel" if p.method == "wheel" else f"source build ({p.arch_list})"
        table.add_row(p.name, p.version, how, p.url or p.index_url or "PyPI sdist")
    for req in plan.stack.other_requirements:
        table.add_row(req, "", "as asked", "PyPI")
    console.print(table)
    console.print("Steps:")
    for i, step in enumerate(plan.steps, 1):
        console.print(f"  {i}. {step.description or step.requirement}", highlight=False)
        if step.env:
            env = " ".join(f"{k}={v}" for k, v in sorted(step.env.items()))
            console.print(f"     env: {env}", highlight=False)
        if step.prerequisites:
            console.print(f"     needs: {', '.join(step.prerequisites)}", highlight=False)
    notes = list(plan.stack.notes) + list(plan.notes)
    if notes:
        console.print("Notes:")
        for n in notes:
            console.print(f"  - {n}", highlight=False)


def print_refusal(console: Console, reasons: Sequence[str], alternatives: Sequence[str]) -> None:
    console.print("No compatible stack:", style="bold red")
    for r in reasons:
        console.print(f"  - {r}", highlight=False)
    if alternatives:
        console.print("What would work instead:")
        for a in alternatives:
            console.print(f"  - {a}", highlight=False)
