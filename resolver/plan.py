"""Turn a solved ``Stack`` into ordered install and build steps. Pure: decides, never runs anything.

Order: torch first, from the index the solver chose; then everything else with torch's exact build as a constraint
(so no dependency can swap it); source builds last, with ``--no-build-isolation`` against the installed torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from resolver.compat import build_job, max_jobs, torch_arch_list, torch_pin
from resolver.matrix_types import Matrix, Pin
from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX, PackageChoice, Plan, Stack, Step, exact_pin

__all__ = ["make_plan", "TORCH_FAMILY", "known_pins", "plan_constraints"]

# Packages built per CUDA variant alongside torch and published on the same PyTorch index
# (uv crates/uv-torch routes the same set to torch's index; ANCHORS.md section 1).
TORCH_FAMILY = frozenset({"torchvision", "torchaudio", "torchtext", "torchdata", "torchcodec", "torchao"})

def _torch_pin(stack: Stack) -> str:
    return torch_pin(stack.torch.version, stack.torch.index_url)


def _extra_indexes(index: str | None) -> tuple[str, ...]:
    """Return PyPI as an extra index for a PyTorch-index step: that index mirrors only part of the dependencies."""
    return (PYPI_SIMPLE,) if index and index.startswith(PYTORCH_INDEX) else ()


def _build_step(choice: PackageChoice, stack: Stack, pin: str, matrix: Matrix, held: tuple[str, ...]) -> Step:
    env = dict(choice.build_env)
    if choice.cuda:  # a CUDA build: name its archs and force CUDA, so no build depends on the GPU it runs beside
        env.setdefault("TORCH_CUDA_ARCH_LIST", choice.arch_list or torch_arch_list(stack.target.capabilities))
        env.setdefault("FORCE_CUDA", "1")
    job = build_job(choice.name, matrix)
    if job.nvcc_threads > 1:
        env["NVCC_THREADS"] = str(job.nvcc_threads)
    env["MAX_JOBS"] = str(max_jobs(choice.name, matrix, stack.target.cpu_count, stack.target.memory_gib))
    requirement = choice.requirement
    if choice.url:  # no sdist on PyPI: the solver named the source (a git tag)
        requirement = f"{choice.name} @ {choice.url}"
    torch_cuda = stack.torch.cuda or "?"
    major = torch_cuda.split(".")[0]
    return Step(
        action="build",
        package=choice.name,
        requirement=requirement,
        index_url=PYPI_SIMPLE,
        # the built wheel goes in with the dependencies it declares, its pins held (install, lock, Dockerfile)
        no_deps=False,
        constraints=held,
        env=env,
        build_isolation=False,
        prerequisites=(f"nvcc {major}.x (torch is CUDA {torch_cuda})", "ninja", f"{pin} installed"),
        description=f"build {choice.name} {choice.version} from source for {choice.arch_list} against {stack.torch.version}",
    )


def known_pins(stack: Stack, pins: Sequence[Pin]) -> list[Pin]:
    """Return the known-bad transitive pins (``matrices/pins.toml``) that apply to ``stack`` on its platform
    (``holds.held_pins``: the solver asks the same when it weighs a stack against the request)."""
    from resolver.holds import held_pins

    return held_pins({p.name: p.version for p in stack.packages}, stack.target.platform, pins)


def plan_constraints(plan: Plan) -> list[str]:
    """Return every constraint the plan's steps hold (torch's exact build, the matrix's known-bad pins), once each."""
    return list(dict.fromkeys(c for s in plan.steps for c in s.constraints))


def make_plan(stack: Stack, installed: Mapping[str, str] | None = None, matrix: Matrix | None = None) -> Plan:
    """Return the ordered steps that put ``stack`` onto the target. ``installed`` maps dist name -> version there.

    A PyPI mirror the request was checked on (``Stack.others_index_url``: ``--index-url`` or the environment's,
    ``pipeline.pypi_index``) takes pypi.org's place in every step (``installers.with_mirrors``).

    The matrix's known-bad pins that apply (``known_pins``; ``matrix`` defaults to the shipped one) become
    constraints of every step, so no step can install what breaks the stack, and a note says why.

    ``matrix`` also sizes source builds (``compat.max_jobs``): ``MAX_JOBS`` is for the cores and free RAM of the
    machine that runs the build (``Target.cpu_count`` / ``memory_gib``, filled in by the caller; unknown cores: 1).
    """
    if matrix is None:
        from resolver.matrix import load

        matrix = load()
    plan = _make_plan(stack, installed, matrix)
    if stack.others_index_url:  # the user's PyPI mirror: every step names it for pypi.org (a plan file keeps it)
        from resolver.installers import with_mirrors

        plan = with_mirrors(plan, None, stack.others_index_url, packages=False)
    pins = known_pins(stack, matrix.pins)
    if not pins:
        return plan
    held = tuple(dict.fromkeys(p.requirement for p in pins))
    steps = tuple(dataclasses.replace(s, constraints=tuple(dict.fromkeys((*s.constraints, *held))))
                  for s in plan.steps)
    notes = tuple(f"{p.requirement} held: {p.reason} (matrices/pins.toml)" for p in pins)
    return Plan(plan.stack, steps, plan.notes + notes)


def pass_through_pins(stack: Stack) -> dict[str, str]:
    """Return, by normalized name, the constraint that holds each pass-through requirement pinned to one release
    (``numpy==2.4.6``: the plan pins them from the index): ``name==version`` with its marker, without extras (pip
    refuses extras in a constraint)."""
    out: dict[str, str] = {}
    for req in stack.other_requirements:
        pinned = exact_pin(req)
        if pinned is not None:
            name, version, marker = pinned
            out[name] = f"{name}=={version}" + (f" ; {marker}" if marker else "")
    return out


def _make_plan(stack: Stack, installed: Mapping[str, str] | None, matrix: Matrix) -> Plan:
    installed = installed or {}
    steps: list[Step] = []
    notes: list[str] = []
    pin = _torch_pin(stack)
    t = stack.torch
    # Every step holds the pass-through pins but its own: a later step's dependencies must not move one (scipy 1.13.1
    # took numpy 2.4.6 down to 2.2.6, and the install said nothing); they fail the step instead, and it is undone.
    others = pass_through_pins(stack)

    def held(*first: str, but: str = "") -> tuple[str, ...]:
        return tuple(dict.fromkeys((*first, *(c for n, c in others.items() if n != but))))

    have = installed.get("torch")
    if have is not None and (have == t.version or (t.index_url == PYPI_SIMPLE and have == t.version.split("+")[0])):
        notes.append(f"torch {t.version} is already installed: kept")
    else:
        steps.append(Step("install", "torch", pin, index_url=t.index_url, extra_index_urls=_extra_indexes(t.index_url),
                          constraints=held(), description=f"install torch {t.version} from {t.index_url}"))
    for req in stack.other_requirements:
        name = canonicalize_name(Requirement(req).name)
        index = stack.others_index_url or PYPI_SIMPLE
        if name in TORCH_FAMILY and t.index_url:
            # Same CUDA build as torch, from torch's index: a PyPI torchvision is another CUDA build (uv does the same).
            index = t.index_url
        steps.append(Step("install", str(name), req, index_url=index, extra_index_urls=_extra_indexes(index),
                          constraints=held(pin, but=name), description=f"install {req} from {index} with {pin} held"))
    for choice in stack.packages[1:]:
        if installed.get(choice.name) == choice.version and choice.method == "wheel":
            notes.append(f"{choice.name} {choice.version} is already installed: kept")
            continue
        if choice.method == "source":
            steps.append(_build_step(choice, stack, pin, matrix, held(pin, *choice.constraints)))
            continue
        wheel_index = choice.index_url
        steps.append(Step(
            "install", choice.name, choice.requirement, index_url=None if choice.url else wheel_index,
            extra_index_urls=_extra_indexes(wheel_index),
            url=choice.url, constraints=held(pin, *choice.constraints),
            description=f"install {choice.name} {choice.version} ({choice.variant or 'wheel'}) from "
                        f"{choice.url or wheel_index} with {pin} held",
        ))
    return Plan(stack=stack, steps=tuple(steps), notes=tuple(notes))
