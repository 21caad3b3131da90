"""Human output, all of it in one place: the host (``detect``), targets, plans and refusals (``plan``, a fleet's
classes), upgrade reports (``check-upgrade``), verify reports and matrix tables. No logic: it prints what the
stages returned. JSON output is each value's ``to_dict``; the commands print it.

Output to a pipe or file is never cut to fit 80 columns: ``console()`` is as wide as the widest line there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from resolver.models import Plan, Target, format_driver
from resolver.report import Reporter

if TYPE_CHECKING:
    from rich.console import Console
    from resolver.cache import CacheEntry
    from resolver.matrix_types import Matrix
    from resolver.refusal import Alternative, Refusal
    from resolver.install import Command, InstallResult
    from resolver.probes import Host
    from resolver.upgrade import UpgradeReport
    from resolver.verify import VerifyReport

__all__ = ["console", "print_target", "print_plan", "print_refusal", "describe_target", "print_fleet_plans",
           "print_host", "print_upgrade", "print_verify", "print_table", "NO_GPU", "line", "print_dry_run",
           "print_install_result", "print_cache_entries", "InstallReporter", "print_validation"]

# Wide enough for any row we print: a terminal wraps, a pipe or a file keeps each row on one line.
_UNBOUNDED_WIDTH = 10_000


def console(stderr: bool = False) -> Console:
    """Return the console human output goes to: stdout (or stderr), no wrapping of long lines, and when it is not
    a terminal (a pipe, a file, a CI log) no width limit, so tables keep every column whole."""
    from rich.console import Console
    out = Console(soft_wrap=True, stderr=stderr, highlight=False)
    if not out.is_terminal:
        out.width = _UNBOUNDED_WIDTH
    return out


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
    source = target.source
    if target.from_here:  # a described target's Python or platform taken from this machine: not given (its note)
        source += "; " + " and ".join({"python": "Python", "platform": "platform"}[k] for k in target.from_here) \
            + " from this machine"
    return "; ".join(parts) + f" ({source})"


def print_target(console: Console, target: Target, lines: Sequence[str] = ()) -> None:
    for line in lines:
        console.print(line, style="yellow", markup=False, highlight=False)
    console.print(f"Target: {describe_target(target)}", markup=False, highlight=False)


def print_plan(console: Console, plan: Plan) -> None:
    from rich.table import Table
    from rich.text import Text
    table = Table(title="Stack", title_justify="left")
    for col in ("package", "version", "how", "from"):
        table.add_column(col)
    for p in plan.stack.packages:
        how = "wheel" if p.method == "wheel" else f"source build ({p.arch_list})"
        table.add_row(*(Text(c) for c in (p.name, p.version, how, plan.source_of(p.name))))
    for req in plan.stack.other_requirements:
        table.add_row(Text(req), "", "as asked", Text(plan.source_of(_name(req))))
    console.print(table)
    console.print("Steps:" if plan.steps else "Steps: none (everything planned is installed already)")
    for i, step in enumerate(plan.steps, 1):
        console.print(f"  {i}. {step.description or step.requirement}", markup=False, highlight=False)
        if step.env:
            env = " ".join(f"{k}={v}" for k, v in sorted(step.env.items()))
            console.print(f"     env: {env}", markup=False, highlight=False)
        if step.prerequisites:
            console.print(f"     needs: {', '.join(step.prerequisites)}", markup=False, highlight=False)
    _bullets(console, "Notes:", [*plan.stack.notes, *plan.notes])


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name


def _bullets(console: Console, heading: str, items: Sequence[str], style: str | None = None) -> None:
    """Print ``heading`` and one ``  - item`` line each, as text (a ``[cu121]`` in a note is not markup); nothing
    when there are no items."""
    if items:
        console.print(heading, style=style, markup=False, highlight=False)
        for item in items:
            console.print(f"  - {item}", markup=False, highlight=False)


def print_refusal(console: Console, refusals: Sequence[Refusal], alternatives: Sequence[Alternative]) -> None:
    """Print why no stack fits (each refusal's text, rendered from its kind's facts; root blocking fact first, as
    ``NoCompatibleStack`` orders them), then what would work instead."""
    console.print("No compatible stack:", style="bold red")
    for r in refusals:
        console.print(f"  - {r.text}", markup=False, highlight=False)
    _bullets(console, "What would work instead:", [a.text for a in alternatives])


def print_fleet_plans(console: Console, lines: Sequence[str], classes: Sequence[tuple[str, str, Any]]) -> None:
    """Print a fleet's classes, each ``(id, description, Plan or NoCompatibleStack)``: its target and plan, or its
    refusal."""
    from rich.text import Text
    for line in lines:
        console.print(line, style="yellow", markup=False, highlight=False)
    for cid, description, got in classes:
        console.print(f"\n[bold]Class {cid}[/]: ", Text(description), sep="", highlight=False)
        if isinstance(got, Plan):
            print_target(console, got.stack.target)
            print_plan(console, got)
        else:
            print_refusal(console, got.refusals, got.alternatives)


NO_GPU = (
    "No NVIDIA GPU found (no NVML, no nvidia-smi, no /proc/driver/nvidia): this is a CPU target. "
    "Use `gpustack plan --gpu NAME` to plan for another machine."
)


def _or_unknown(value: object | None, unknown: str = "not found") -> str:
    return unknown if value is None else str(value)


def _with_source(host: Host, fact: str, value: object | None) -> str:
    source = host.sources.get(fact, "not found")
    return source if value is None else f"{value}  (from {source})"


def _torch_line(host: Host) -> str:
    env = host.env
    if env.torch is None:
        return "not installed"
    parts = [env.torch, f"CUDA {env.torch_cuda}" if env.torch_cuda else "CPU build"]
    if env.torch_arch_list:
        parts.append("archs " + " ".join(env.torch_arch_list))
    if env.torch_cxx11_abi is not None:
        parts.append(f"cxx11 ABI {'on' if env.torch_cxx11_abi else 'off'}")
    return ", ".join(parts)


def print_host(console: Console, host: Host) -> None:
    """Print ``host`` for a person: the GPU table (or why there is none), then driver, toolkit, Python, packages."""
    from rich.table import Table
    from rich.text import Text
    if host.gpus:
        table = Table(title="NVIDIA GPUs", title_justify="left")
        for column in ("#", "Name", "Compute capability", "Memory"):
            table.add_column(column)
        for gpu in host.gpus:
            cc = str(gpu.compute_capability) if gpu.compute_capability else "not reported (looked up by name when solving)"
            memory = f"{gpu.memory_mib} MiB" if gpu.memory_mib is not None else "unknown"
            table.add_row(*(Text(cell) for cell in (str(gpu.index), gpu.name, cc, memory)))
        console.print(table)
        console.print(f"(from {host.sources.get('gpus', '?')})", markup=False, highlight=False)
    elif host.driver is not None:
        console.print(f"No NVIDIA GPU visible, although driver {format_driver(host.driver)} is loaded "
                      "(check CUDA_VISIBLE_DEVICES or the container's GPU flags): this is a CPU target. "
                      "Use `gpustack plan --gpu NAME` to plan for another machine.", markup=False, highlight=False)
    else:
        console.print(NO_GPU, markup=False, highlight=False)

    env = host.env
    rows = [
        ("Driver", _with_source(host, "driver", format_driver(host.driver) if host.driver else None)),
        ("Newest CUDA it runs", _or_unknown(host.driver_cuda, "unknown")),
        ("nvcc", _with_source(host, "nvcc", host.nvcc)),
        ("Python", f"{env.python}  {env.platform}  glibc {_or_unknown(env.glibc, 'none')}  ({env.python_exe})"),
        ("torch", _torch_line(host)),
        ("xformers", _or_unknown(env.xformers, "not installed")),
        ("flash-attn", _or_unknown(env.flash_attn, "not installed")),
        ("CPU cores", str(host.cpu_count)),
        ("Free memory", "unknown" if host.memory_available_gib is None else f"{host.memory_available_gib:.1f} GiB"),
    ]
    # Two aligned columns as plain lines, not a rich grid: a grid pads every cell to its column's width, so each
    # line of a pipe or file would end in blanks.
    width = max(len(key) for key, _ in rows) + 2
    for key, value in rows:
        console.print(Text.assemble((key, "bold"), " " * (width - len(key)), value))
    for note in env.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def print_upgrade(console: Console, report: UpgradeReport, current: Mapping[str, str]) -> None:
    """Print a ``check-upgrade`` report: the verdict and the moves, each finding, the notes, the nearest safe set."""
    checked = report.checked or {}

    def to(k: str, v: str) -> str:  # the build the solver checked, where the set named none (2.14.1 -> 2.14.1+cpu)
        return f"{v} (checked as {checked[k]})" if checked.get(k) not in (None, v) else v

    moves = ", ".join(f"{k} {current.get(k, '(new)')} -> {to(k, v)}" for k, v in report.proposed.items()
                      if current.get(k) not in (v, checked.get(k)))  # the build installed now is no move
    console.print(f"{report.verdict}: {moves or 'no change'}", markup=False, highlight=False)
    for f in report.findings:
        console.print(f"  - [{f.verdict}] {f.reason}", markup=False, highlight=False)
    for n in report.notes:
        console.print(f"  note: {n}", markup=False, highlight=False)
    def named(versions: Mapping[str, str]) -> str:  # the solved packages, and the others it moves
        return ", ".join(f"{k}=={v}" for k, v in sorted(versions.items())
                         if k in ("torch", "xformers", "flash-attn") or v != report.proposed.get(k))

    if report.nearest:
        console.print(f"nearest safe set: {named(report.nearest)}", markup=False, highlight=False)
    if report.rebuild:
        console.print(f"nearest set once rebuilt: {named(report.rebuild)}", markup=False, highlight=False)
        said = {f.reason for f in report.findings}
        for f in report.rebuild_findings:
            if f.reason not in said:
                console.print(f"  - [{f.verdict}] {f.reason}", markup=False, highlight=False)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_verify(console: Console, report: VerifyReport) -> None:
    """Print a verify report as a table, then the checks, notes and the verdict."""
    from rich.table import Table
    from rich.text import Text
    if report.device:
        d = report.device
        console.print(Text.assemble((str(d.get("name")), "bold"), f" (sm {d.get('compute_capability')}), driver "
                                    f"{d.get('driver')}, torch {d.get('torch')} (CUDA {d.get('cuda')})"))
    table = Table(show_lines=False)
    for col in ("backend", "op", "dtype", "result", "max err", "ms", "TFLOP/s", "detail"):
        table.add_column(col, justify="right" if col in ("max err", "ms", "TFLOP/s") else "left",
                         no_wrap=col != "detail")
    for r in report.results:
        if r.skipped:
            status, detail = "[dim]skip[/]", Text(r.hint or "")
        elif r.passed:
            status, detail = "[green]pass[/]", Text(r.hint or r.case)
        else:
            status, detail = "[red]FAIL[/]", Text.assemble(f"{r.error}", *((("\nfix: ", "yellow"), r.hint) if r.hint else ()))
        table.add_row(Text(r.backend), Text(r.op), Text(r.dtype), status, "-" if r.skipped else f"{r.max_abs_error:.2g}",
                      _fmt(r.ms, ".3f"), _fmt(r.tflops, ".3g"), detail)
    console.print(table)
    for c in report.checks:
        mark = "[green]ok[/]" if c.ok else ("[yellow]warn[/]" if c.severity == "warning" else "[red]FAIL[/]")
        console.print(mark, Text(f"{c.name}: {c.message}" + (f"\n     fix: {c.hint}" if c.hint and not c.ok else "")))
    for note in report.notes:
        console.print(Text(note, style="bold yellow"))
    failed = report.failed_backends()
    verdict = "[bold green]all backends passed[/]" if report.ok else (
        f"[bold red]failed: {', '.join(failed)}[/]" if failed else "[bold red]nothing verified[/]")
    console.print(f"{verdict} ({report.wall_s:.1f} s)")


def print_validation(problems: Sequence[str], m: Matrix, where: str) -> bool:
    """Print ``matrix validate``'s answer: each problem on stdout and their count on stderr, or the summary line;
    return whether the matrix is sound."""
    out = console()
    for p in problems:
        line(out, p)
    if problems:
        line(console(stderr=True), f"{len(problems)} problem(s) in {where}")
        return False
    line(out, f"ok: {len(m.torch)} torch releases, {len(m.xformers)} xformers, {len(m.flash_attn)} flash-attn, "
              f"{len(m.cuda)} CUDA minors, {len(m.gpus)} GPUs, {len(m.profiles)} profiles, {len(m.docker)} images, "
              f"{len(m.pins)} pins ({where})")
    return True


def print_table(console: Console, title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
                show_lines: bool = False) -> None:
    """Print rows under a header as a table (``matrix show``)."""
    from rich.table import Table
    from rich.text import Text
    table = Table(*header, title=title, title_justify="left", show_lines=show_lines)
    for r in rows:
        table.add_row(*(Text(c) for c in r))
    console.print(table)


# --- install, recover, download, cache (``resolver.cmd_install``) -------------------------------------------------


def line(console: Console, text: str, *, exact: bool = False) -> None:
    """Print ``text`` exactly as it is (no markup, emoji codes or highlighting), URL credentials masked unless
    ``exact`` (a command meant to be run: ``resolver.cli`` still masks them on a terminal, never in a pipe)."""
    from rich.text import Text
    from resolver.redact import redact

    console.print(Text(text if exact else redact(text)), soft_wrap=True)


def print_dry_run(console: Console, cmds: Sequence[Command]) -> None:
    """Print what ``install --dry-run`` would run: per step a ``# kind package (note)`` comment and its shell line,
    runnable as printed when piped (``| sh``): credentials in its environment assignments, not in the argv."""
    for c in cmds:
        line(console, f"# {c.kind} {c.package}" + (f" ({c.note})" if c.note else ""))
        for prepared in c.prepare():
            line(console, prepared)
        line(console, c.shell(), exact=True)


def print_install_result(result: InstallResult) -> None:
    """Print, on stderr, the wheels taken from the build cache, then what the install changed and how long it took."""
    for b in result.builds:
        if b.cache_hit:
            status(f"from the build cache: {b.wheel.name}")
    status(f"installed in {result.seconds:.1f}s: {result.changes.summary()}")
    if result.verify is not None:  # --verify ran (a failure would have undone the install)
        results = list(getattr(result.verify, "results", ()))  # one per backend and case (dtype, shape)
        passed = list(dict.fromkeys(r.backend for r in results if r.passed))
        skipped = [b for b in dict.fromkeys(r.backend for r in results if r.skipped) if b not in passed]
        status(f"verified: {len(passed)} attention backend{'s' if len(passed) != 1 else ''} passed"
               + (f" ({', '.join(passed)})" if passed else "")
               + (f"; skipped: {', '.join(skipped)}" if skipped else ""))


def print_cache_entries(console: Console, entries: Sequence[CacheEntry], cache_dir: object) -> None:
    """Print ``cache list``: each cached wheel, its size, key digest and what it was built for and with."""
    if not entries:
        line(console, f"the build cache is empty ({cache_dir})")
    for e in entries:
        k = e.key
        cuda = f"CUDA {k['torch_cuda']}" if k.get("torch_cuda") else "no CUDA"
        archs = f" archs {k['arch_list']}" if k.get("arch_list") else ""
        line(console, f"{e.wheel.name}  {e.size / 1e6:.1f} MB  key {e.digest}  torch {k.get('torch')} ({cuda}){archs}  "
                      f"{k.get('python_tag')} {k.get('platform')}")
        env = k.get("env") or {}
        line(console, "    built with: " + (" ".join(f"{n}={v}" for n, v in sorted(env.items())) or "no build variables"))


class InstallReporter(Reporter):
    """Progress of an install on stderr: ``[i/n] step``, ``[i/n] done in Xs``, and the stages' messages (warnings,
    restores), as plain lines (``status``)."""

    def step_started(self, index: int, total: int, description: str) -> None:
        status(f"[{index}/{total}] {description}")

    def step_finished(self, index: int, total: int, description: str, seconds: float) -> None:
        status(f"[{index}/{total}] done in {seconds:.1f}s")

    def message(self, text: str) -> None:
        status(text)


# --- plain stderr lines, without loading rich (lock and install are measured against uv) -------------------------


def status(text: str) -> None:
    """Print one progress or warning line on stderr, URL credentials masked."""
    import click

    from resolver.redact import redact

    click.echo(redact(text), err=True)


def print_lock_written(path: str, summary: str) -> None:
    status(f"wrote {path} ({summary})")


def print_relocking(path: str, requirements: Sequence[str], profile: str | None, target: str = "") -> None:
    """Say that an existing lock is locked again for the request, profile and target it records."""
    status(f"re-locking {path} for what it was made for: " + (" ".join(requirements) or "(no requirements)")
           + (f" --profile {profile}" if profile else "") + (f" {target}" if target else ""))
