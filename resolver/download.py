"""What ``gpustack download`` runs: the ``pip download`` commands that fetch every file of a plan for its target
(another Python, another platform), for ``install --find-links DIR --offline``. Deciding only; the command runs them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from resolver.inputs import check_argument
from resolver.installers import Sources
from resolver.models import Plan, Target

__all__ = ["platform_args", "download_argvs"]


def platform_args(target: Target) -> list[str]:
    """Return ``--platform`` arguments accepting every wheel that installs on ``target``: its platform and glibc,
    the same tags its plan and lock accept (``resolver.hashes.accepted_platforms``)."""
    from resolver.hashes import accepted_platforms

    return [a for t in accepted_platforms(target) for a in ("--platform", t)]


def download_argvs(plan: Plan, dest: str, sources: Sources, *, write: bool = True,
                   requires: Mapping[str, Sequence[str]] | None = None) -> list[list[str]]:
    """Return the ``pip download`` commands that put every file of ``plan`` (for its target) into ``dest``
    (constraint files are written only when ``write``: a dry run writes nothing). ``requires`` holds, by build
    step package, what the built wheel will declare (``lock_resolve.declared_requires``, the matrix's record): the
    install takes those with the built wheel, torch held, so they are downloaded for the target too (less torch,
    which its own step brings)."""
    from resolver.installers import source_args
    t = plan.stack.target
    pip = [sys.executable, "-m", "pip", "download", "--dest", dest, "--progress-bar", "off"]
    target = ["--only-binary=:all:", *platform_args(t), "--python-version", t.python, "--implementation", "cp"]
    torch = plan.stack.get("torch")
    argvs = []
    for step in plan.steps:
        where = source_args(step, sources)
        if step.action == "build":
            if not os.path.isdir(step.requirement):  # a local source tree: nothing to download
                argvs.append([*pip, "--no-deps", "--no-binary", ":all:", *where,
                              check_argument(step.url or step.requirement, "requirement")])
            deps = [r for r in (requires or {}).get(step.package, ()) if _name(r) != "torch"]
            if deps:
                held = ["-c", _write_constraint(dest, f"torch=={torch.version}", write)] if torch is not None else []
                argvs.append([*pip, *target, *held, *where, *(check_argument(r, "requirement") for r in deps)])
            continue
        req = f"{step.package} @ {step.url}" if step.url else step.requirement
        constraints = [a for c in step.constraints for a in ("-c", _write_constraint(dest, c, write))]
        argvs.append([*pip, *target, *(["--no-deps"] if step.no_deps else []), *constraints, *where,
                      check_argument(req, "requirement")])
    return argvs


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(Requirement(requirement).name))


def _write_constraint(dest: str, line: str, write: bool = True) -> str:
    from resolver.installers import constraints_path
    path = constraints_path([line], write=write)
    assert path is not None
    return path
