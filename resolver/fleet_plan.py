"""One stack for a whole GPU fleet, or one per class (docs/fleet.md). Pure: every answer comes from ``solve``.

* ``fleet_target``: every class's GPU (so the arch list is the union), the lowest driver of the fleet as the floor,
  the one platform all classes share.
* ``solve_fleet``: the stack for that target, with notes naming the classes that limit it ("Tesla V100 nodes keep
  torch at 2.14.1+cu126; without them: 2.15.0+cu132"), each found by solving the fleet without them. When nothing
  fits, ``NoCompatibleStack`` names the classes that conflict and what would serve each class (solved for it).
* ``class_target`` / ``solve_classes``: one target and one answer per class (``--per-class``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from itertools import combinations

from packaging.version import Version

from resolver.errors import BadInput, NoCompatibleStack
from resolver.fleet import Fleet, GpuClass
from resolver.matrix_types import Matrix
from resolver.models import Plan, Stack, Target, format_driver
from resolver.pipeline import Context, PlanOptions
from resolver.refusal import Alternative, advice, alternative, refusal
from resolver.request import Request
from resolver.solve import solve

__all__ = ["fleet_target", "class_target", "with_glibc", "solve_fleet", "solve_classes", "describe_stack", "solve_fleet_request",
           "plans_per_class"]


def _driver(c: GpuClass, fallback: Version | None) -> Version | None:
    return c.driver if c.driver is not None else fallback


def class_target(c: GpuClass, base: Target) -> Target:
    """Return the target of one class: its GPU, driver (``base.driver`` when the source gives none), platform and
    glibc (``with_glibc``; ``base.glibc`` for a class not yet given one)."""
    glibc, assumed = (c.glibc, c.glibc_assumed) if c.glibc is not None else (base.glibc, base.glibc_assumed)
    return dataclasses.replace(base, gpus=(c.gpu,), driver=_driver(c, base.driver), platform=c.platform,
                               glibc=glibc, glibc_assumed=assumed, source="fleet")


def with_glibc(fleet: Fleet, given: Version | None, matrix: Matrix) -> Fleet:
    """Return ``fleet`` with each class's glibc, decided as for one machine (``pipeline.glibc_for``, a described
    target): ``given`` (--glibc), else the glibc of the OS its nodes name (``Matrix.os_glibc``: platforms.toml, as if
    probed), else the documented assumption, which the plan states."""
    from resolver.fleet import os_release_id
    from resolver.pipeline import glibc_for

    if given is not None and not any(c.platform.startswith("linux_") for c in fleet.classes):
        glibc_for(fleet.classes[0].platform, given, described=True)  # --glibc on no Linux node: bad input
    classes = []
    for c in fleet.classes:
        key = os_release_id(c.os) if c.os else None
        known = matrix.os_glibc(key) if key else None
        glibc, assumed = glibc_for(c.platform, given if c.platform.startswith("linux_") else None,
                                   str(known) if known is not None else None, described=True)
        classes.append(dataclasses.replace(c, glibc=glibc, glibc_assumed=assumed))
    return dataclasses.replace(fleet, classes=tuple(classes))


def _glibc_notes(classes: Sequence[GpuClass], target: Target, given: bool) -> list[str]:
    """Return the note saying whose OS the target's glibc is (a glibc given or assumed has its own note)."""
    if given or target.glibc is None or target.glibc_assumed:
        return []
    from_os = list(dict.fromkeys(c.os for c in classes if c.glibc == target.glibc and not c.glibc_assumed and c.os))
    if not from_os:
        return []
    return [f"glibc {target.glibc}: the nodes' OS ({', '.join(from_os)}; matrices/platforms.toml)"
            + ("" if len(classes) == 1 else ", the lowest of the fleet") + "; pass --glibc X.Y for another"]


def fleet_target(classes: Sequence[GpuClass], base: Target) -> Target:
    """Return the target every class must run: all their GPUs, the lowest driver, their shared platform.

    Raises ``NoCompatibleStack`` when the classes run on different platforms (one wheel set serves one platform).
    """
    platforms = list(dict.fromkeys(c.platform for c in classes))
    if len(platforms) > 1:
        per_class = advice("pass --per-class for one plan per class")
        by = "; ".join(f"{p}: " + ", ".join(c.label for c in classes if c.platform == p) for p in platforms)
        raise NoCompatibleStack([refusal("", "", "platform", "the classes run on different platforms ({by}); one image "
                                         "or lock serves one platform", per_class, by=by, platforms=", ".join(platforms))],
                                [per_class])
    drivers = [d for c in classes if (d := _driver(c, base.driver)) is not None]
    gpus = tuple(dict.fromkeys(c.gpu for c in classes))
    glibc, assumed = base.glibc, base.glibc_assumed
    glibcs = [c.glibc for c in classes if c.glibc is not None]
    if glibcs:  # the lowest C library of the fleet; assumed only when every class at it is
        glibc = min(glibcs)
        assumed = all(c.glibc_assumed for c in classes if c.glibc == glibc)
    return dataclasses.replace(base, gpus=gpus, driver=min(drivers) if drivers else None, platform=platforms[0],
                               glibc=glibc, glibc_assumed=assumed, source="fleet")


def describe_stack(stack: Stack) -> str:
    """Return ``torch 2.14.1+cu126, xformers 0.0.35 (source build)``."""
    return ", ".join(f"{p.name} {p.version}" + (" (source build)" if p.method == "source" else "")
                     for p in stack.packages)


def _try(classes: Sequence[GpuClass], base: Target, matrix: Matrix, request: Request) -> Stack | NoCompatibleStack:
    try:
        return solve(fleet_target(classes, base), matrix, request)
    except NoCompatibleStack as exc:
        return exc


def _names(classes: Sequence[GpuClass]) -> str:
    labels = list(dict.fromkeys(c.label for c in classes))
    return (", ".join(labels[:-1]) + " and " + labels[-1]) if len(labels) > 1 else labels[0]


def _difference(full: Stack, other: Stack) -> str | None:
    """Return what the fleet gives up compared with ``other`` (a solve without some classes), or ``None``."""
    parts = []
    for p in full.packages:
        q = other.get(p.name)
        if q is None:
            continue
        if p.name == "torch" and q.version != p.version:
            parts.append(f"keep torch at {p.version} (without them: {q.version})")
        elif q.version != p.version:
            parts.append(f"hold {p.name} at {p.version} (without them: {q.version})")
        elif q.method != p.method:
            how = "a source build" if p.method == "source" else "a wheel"
            other_how = "a source build" if q.method == "source" else "a wheel"
            parts.append(f"make {p.name} {p.version} {how} (without them: {other_how})")
    return "; ".join(parts) or None


def _limits(fleet: Fleet, full: Stack, base: Target, matrix: Matrix, request: Request) -> list[str]:
    """Return notes naming the classes whose presence changes the fleet's stack, each proven by a solve."""
    classes = fleet.classes
    if len(classes) < 2:
        return []
    groups: list[tuple[GpuClass, ...]] = [(c,) for c in classes]
    drivers = [d for c in classes if (d := _driver(c, base.driver)) is not None]
    if drivers:
        groups.append(tuple(c for c in classes if _driver(c, base.driver) == min(drivers)))
    oldest = min(c.gpu.compute_capability for c in classes)
    groups.append(tuple(c for c in classes if c.gpu.compute_capability == oldest))
    notes: list[str] = []
    seen: set[tuple[GpuClass, ...]] = set()
    for group in groups:
        if group in seen or len(group) == len(classes):
            continue
        seen.add(group)
        if len(group) > 1 and notes:
            break  # single classes already explain it
        rest = [c for c in classes if c not in group]
        other = _try(rest, base, matrix, request)
        if isinstance(other, NoCompatibleStack):
            continue
        diff = _difference(full, other)
        if diff:
            notes.append(f"{_names(group)} nodes {diff}")
    return notes


def solve_fleet(fleet: Fleet, base: Target, matrix: Matrix, request: Request, *, given: bool = False) -> Stack:
    """Return one stack for every class of ``fleet``, its notes naming the driver floor and the limiting classes.

    Raises ``NoCompatibleStack`` naming the classes that conflict and, for each class, the stack that serves it.
    """
    _check_driver(fleet, base)
    try:
        stack = solve(fleet_target(fleet.classes, base), matrix, request)
    except NoCompatibleStack as exc:
        raise _refusal(fleet, base, matrix, request, exc) from None
    notes = list(stack.notes)
    floor = stack.target.driver
    if floor is not None and len(fleet.classes) > 1:
        at_floor = [c for c in fleet.classes if _driver(c, base.driver) == floor]
        who = "every class" if len(at_floor) == len(fleet.classes) else f"{_names(at_floor)} nodes"
        notes.append(f"driver floor {format_driver(floor)}: the lowest in the fleet ({who})")
    notes += _glibc_notes(fleet.classes, stack.target, given)
    notes += _limits(fleet, stack, base, matrix, request)
    return dataclasses.replace(stack, notes=tuple(dict.fromkeys(notes)))


def _check_driver(fleet: Fleet, base: Target) -> None:
    if base.driver is not None and all(c.driver is not None for c in fleet.classes):
        raise BadInput("--driver with --fleet: the fleet's labels give every node's driver; drop --driver "
                       "(it fills in drivers the source does not report, as with Slurm)")


def _refusal(fleet: Fleet, base: Target, matrix: Matrix, request: Request, exc: NoCompatibleStack) -> NoCompatibleStack:
    """Return the fleet's refusal: the solver's reasons, the classes that conflict, and each class's own answer."""
    classes = fleet.classes
    alone = {c: _try([c], base, matrix, request) for c in classes}
    reasons = list(exc.refusals)
    lonely = [c for c, got in alone.items() if isinstance(got, NoCompatibleStack)]
    if lonely and len(classes) > 1:
        reasons.append(refusal("", "", "fleet", "no stack serves {classes} nodes even on their own",
                               classes=_names(lonely)))
    fits = [c for c in classes if c not in lonely]
    conflicts = [f"{a.label} with {b.label}" for a, b in combinations(fits, 2)
                 if isinstance(_try([a, b], base, matrix, request), NoCompatibleStack)]
    if conflicts:
        reasons.append(refusal("", "", "fleet", "classes that cannot share one stack: {conflicts}",
                               conflicts="; ".join(conflicts)))
    elif not lonely and len(classes) > 1:
        reasons.append(refusal("", "", "fleet", "each class has a stack, but no one stack serves {classes} together",
                               classes=_names(list(classes))))
    alternatives: list[Alternative] = []
    for c, got in alone.items():
        if isinstance(got, Stack):
            alternatives.append(alternative("{label} nodes alone: {stack}", label=c.label, stack=describe_stack(got)))
        elif got.alternatives:  # the class's own alternative: its change applies to the class's target
            alternatives.append(Alternative("{label} nodes: {inner}", {"label": c.label}, inner=got.alternatives[0]))
    if len(classes) > 1:
        alternatives.append(advice("pass --per-class for one plan (lock, image) per class"))
    return NoCompatibleStack(reasons, alternatives)


def solve_classes(fleet: Fleet, base: Target, matrix: Matrix, request: Request, *,
                  given: bool = False) -> list[tuple[GpuClass, Stack | NoCompatibleStack]]:
    """Return each class with its own stack, or why it has none (``--per-class``); ``given``: --glibc was."""
    _check_driver(fleet, base)
    out: list[tuple[GpuClass, Stack | NoCompatibleStack]] = []
    for c in fleet.classes:
        try:
            stack = solve(class_target(c, base), matrix, request)
        except NoCompatibleStack as exc:
            out.append((c, exc))
            continue
        notes = _glibc_notes([c], stack.target, given)
        out.append((c, dataclasses.replace(stack, notes=tuple(dict.fromkeys((*stack.notes, *notes))))))
    return out


# --- the pipeline's entry points (resolver.pipeline.solve_request hands --fleet here) -----------------------------

def _fleet_context(requirements: Sequence[str], opts: PlanOptions) -> tuple[Fleet, Target, Context]:
    """Return the fleet, the base target (Python, nvcc, driver for nodes that report none) and the context."""
    import sys

    from resolver.fleet import read_fleet
    from resolver.pipeline import for_target, known_nvcc, load_matrix, request_from, with_index

    assert opts.fleet is not None
    m = load_matrix(opts)
    request = request_from(requirements, opts, m)  # bad requirements first: before running kubectl or scontrol
    # each class's C library, decided as for one machine: --glibc, else its nodes' OS's, else the assumption
    read = Fleet.from_record(opts.fleet_record, opts.fleet) if opts.fleet_record is not None else \
        read_fleet(opts.fleet, m)
    the_fleet = with_glibc(read, opts.glibc, m)
    python = opts.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    platform = the_fleet.classes[0].platform
    first = the_fleet.classes[0]
    glibc, assumed = first.glibc, first.glibc_assumed  # the base's; each class's target takes its own
    base = Target(gpus=(), python=python, platform=platform, driver=opts.driver, nvcc=known_nvcc(opts.nvcc, m),
                  source="fleet", glibc=glibc, glibc_assumed=assumed,
                  from_here=() if opts.python_version else ("python",))  # said in the plans' notes
    if request.marked:  # environment markers read the platform: one answer only when every class shares it
        platforms = sorted({c.platform for c in the_fleet.classes})
        if len(platforms) > 1:
            raise BadInput(f"--fleet: the classes run on {' and '.join(platforms)}, and the request's environment "
                           "markers depend on the platform; plan each platform's nodes separately")
        request = for_target(request, opts, m, base)
    # A fleet's stack starts empty: nothing installed here is kept (it is not on the nodes).
    lines = the_fleet.summary(opts.driver)  # --driver stands in for the nodes that report none
    ctx = Context(m, base, with_index(request, opts), tuple(lines), {}, the_fleet)
    return the_fleet, base, ctx


def solve_fleet_request(requirements: Sequence[str], opts: PlanOptions) -> tuple[Stack, Context]:
    """Return the one stack for the whole fleet of ``opts.fleet`` and its context (``ctx.fleet`` is the fleet)."""
    the_fleet, base, ctx = _fleet_context(requirements, opts)
    stack = solve_fleet(the_fleet, base, ctx.matrix, ctx.request, given=opts.glibc is not None)
    return stack, dataclasses.replace(ctx, target=stack.target)


def plans_per_class(requirements: Sequence[str],
                    opts: PlanOptions) -> tuple[list[tuple[GpuClass, Plan | NoCompatibleStack]], Context]:
    """Return each class of the fleet with its own fresh plan (nothing installed), or why it has none."""
    from resolver.pipeline import fresh_plan

    the_fleet, base, ctx = _fleet_context(requirements, opts)
    out: list[tuple[GpuClass, Plan | NoCompatibleStack]] = []
    for c, got in solve_classes(the_fleet, base, ctx.matrix, ctx.request, given=opts.glibc is not None):
        out.append((c, got if isinstance(got, NoCompatibleStack) else fresh_plan(got, ctx)[0]))
    return out, ctx
