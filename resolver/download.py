"""What ``gpustack download`` runs: the ``pip download`` commands that fetch every file of a plan for its target
(another Python, another platform), for ``install --find-links DIR --offline``. Deciding only; the command runs them.

A pass-through requirement whose pinned release has no wheel for the target, only an sdist (``sdist_only``: the
index read as ``plan`` reads it), is downloaded as that sdist, then what building and installing it on the target
takes (``sdist_needs``: its ``[build-system] requires`` and its dependencies), as wheels for the target: the offline
install builds it there. (pip's ``--only-binary=:all:``, which a download for another target needs, skipped it.)

A dependency of a pass-through package that is published as an sdist only stopped pip's download of that package
("No matching distribution", ``--only-binary=:all:`` again). Which files the plan's packages pull in on the target
is the lock's question (``lock_resolve.resolve``, which takes an sdist where no wheel fits): when its answer holds
such sdists (``sdist_dependencies``), the pass-through packages are downloaded without their dependencies, the
resolved wheels by their URLs, and each sdist as a pass-through sdist is, with what building it takes."""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from resolver.inputs import check_argument
from resolver.installers import Sources
from resolver.models import Plan, Step, Target

if TYPE_CHECKING:
    from resolver.lock import LockedFile
    from resolver.matrix_types import Matrix

__all__ = ["platform_args", "download_argvs", "sdist_only", "sdist_needs", "sdist_deps_argv", "find_sdist",
           "resolve_closure", "sdist_dependencies", "sdist_said"]


def platform_args(target: Target) -> list[str]:
    """Return ``--platform`` arguments accepting every wheel that installs on ``target``: its platform and glibc,
    the same tags its plan and lock accept (``resolver.hashes.accepted_platforms``)."""
    from resolver.hashes import accepted_platforms

    return [a for t in accepted_platforms(target) for a in ("--platform", t)]


def _pip(dest: str) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--dest", dest, "--progress-bar", "off"]


def _for_target(t: Target) -> list[str]:
    return ["--only-binary=:all:", *platform_args(t), "--python-version", t.python, "--implementation", "cp"]


def _passthrough(plan: Plan, step: Step) -> bool:
    """Whether ``step`` installs a requirement gpustack does not solve (not in the stack), with its dependencies."""
    return step.action == "install" and not step.no_deps and step.package not in {c.name for c in plan.stack.packages}


def resolve_closure(plan: Plan, matrix: Matrix | None, default_index: str) -> dict[str, LockedFile]:
    """Return the file of every package the plan's install steps pull in on its target, as ``gpustack lock``
    resolves them (``lock_resolve.resolve``: uv, an sdist where no wheel fits), when the plan has a pass-through
    step that brings its dependencies (the solved packages' own are wheels pip downloads itself); else, or when the
    resolution fails (pip's download then says what it cannot find), nothing."""
    if not any(_passthrough(plan, s) for s in plan.steps):
        return {}
    from resolver.errors import GpuStackError
    from resolver.lock_resolve import resolve
    from resolver.plan import plan_constraints

    try:
        return resolve(plan, plan_constraints(plan), default_index=default_index, matrix=matrix)
    except GpuStackError:
        return {}


def sdist_dependencies(plan: Plan, files: Mapping[str, LockedFile]) -> dict[str, Step]:
    """Return, by canonical name, a pinned install step (from the index it was resolved on) of each package of
    ``files`` (``resolve_closure``) taken as an sdist that is not a step of the plan: a dependency with no wheel for
    the target."""
    from packaging.utils import canonicalize_name

    steps = {canonicalize_name(s.package) for s in plan.steps}
    return {name: Step("install", f.name, f"{f.name}=={f.version}", index_url=f.index, no_deps=True)
            for name, f in sorted(files.items()) if f.kind == "sdist" and canonicalize_name(name) not in steps}


def download_argvs(plan: Plan, dest: str, sources: Sources, *, write: bool = True,
                   requires: Mapping[str, Sequence[str]] | None = None,
                   sdists: Collection[str] = (), closure: Mapping[str, LockedFile] | None = None) -> list[list[str]]:
    """Return the ``pip download`` commands that put every file of ``plan`` (for its target) into ``dest``
    (constraint files are written only when ``write``: a dry run writes nothing). ``requires`` holds, by build
    step package, what the built wheel will declare (``lock_resolve.declared_requires``, the matrix's record): the
    install takes those with the built wheel, torch held, so they are downloaded for the target too (less torch,
    which its own step brings). A step package in ``sdists`` (``sdist_only``) is downloaded as its sdist alone;
    ``sdist_deps_argv`` then fetches what it needs. ``closure`` (``resolve_closure``) holding a dependency sdist
    (``sdist_dependencies``): the pass-through steps are downloaded ``--no-deps``, the closure's other wheels by
    URL, and each such sdist alone (then ``sdist_deps_argv``)."""
    from resolver.installers import source_args
    t = plan.stack.target
    pip = _pip(dest)
    target = _for_target(t)
    torch = plan.stack.get("torch")
    dep_sdists = sdist_dependencies(plan, closure or {})
    argvs = []
    for step in [*plan.steps, *dep_sdists.values()]:
        where = source_args(step, sources)
        if step.action == "install" and (step.package in sdists or step in dep_sdists.values()):
            # --no-binary of this one name (as for a build step): ':all:' would refuse its build backend's wheel
            # too (pip builds its metadata, in an isolated environment)
            argvs.append([*pip, "--no-deps", "--no-binary", _canonical(step.package), *where,
                          check_argument(step.requirement, "requirement")])
            continue
        if step.action == "build":
            if not os.path.isdir(step.requirement):  # a local source tree: nothing to download
                argvs.append([*pip, "--no-deps", "--no-binary", _canonical(step.package), *where,
                              check_argument(step.url or step.requirement, "requirement")])
            deps = [r for r in (requires or {}).get(step.package, ()) if _name(r) != "torch"]
            if deps:
                held = ["-c", _write_constraint(dest, f"torch=={torch.version}", write)] if torch is not None else []
                argvs.append([*pip, *target, *held, *where, *(check_argument(r, "requirement") for r in deps)])
            continue
        req = f"{step.package} @ {step.url}" if step.url else step.requirement
        constraints = [a for c in step.constraints for a in ("-c", _write_constraint(dest, c, write))]
        no_deps = step.no_deps or bool(dep_sdists) and _passthrough(plan, step)  # its dependencies: the closure's
        argvs.append([*pip, *target, *(["--no-deps"] if no_deps else []), *constraints, *where,
                      check_argument(req, "requirement")])
    if dep_sdists:
        from packaging.utils import canonicalize_name

        steps = {canonicalize_name(s.package) for s in plan.steps}
        wheels = [f.url for n, f in sorted((closure or {}).items()) if f.kind == "wheel" and f.url
                  and canonicalize_name(n) not in steps]
        if wheels:
            argvs.append([*pip, *target, "--no-deps", *(check_argument(u, "requirement") for u in wheels)])
    return argvs


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(check_argument(name, "package")))


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(Requirement(requirement).name))


def _write_constraint(dest: str, line: str, write: bool = True) -> str:
    from resolver.installers import constraints_path
    path = constraints_path([line], write=write)
    assert path is not None
    return path


def _pinned(requirement: str) -> tuple[str, str] | None:
    """Return (canonical name, version) of ``name==version`` (``models.exact_pin``), else ``None``."""
    from resolver.models import exact_pin

    pinned = exact_pin(requirement)
    return pinned[:2] if pinned is not None else None


def sdist_only(plan: Plan) -> dict[str, str]:
    """Return, by step package, the pass-through install steps (a requirement gpustack does not solve: not in the
    stack) whose pinned release has no file on its index that installs on the target but an sdist; the value is
    what to say. The index is read as ``plan`` reads it (``index_lookup.lookup``) and a wheel fits by
    ``hashes.accepted_tags``, as ``passthrough.pin_others`` pinned it."""
    from packaging.version import InvalidVersion, Version

    from resolver.hashes import accepted_tags
    from resolver.index_lookup import lookup

    t = plan.stack.target
    solved = {c.name for c in plan.stack.packages}
    asked: dict[str, dict[str, tuple[str, str]]] = {}  # index -> name -> (package, version)
    for step in plan.steps:
        pinned = _pinned(step.requirement)
        if step.action == "install" and not step.url and step.index_url and step.package not in solved and pinned:
            asked.setdefault(step.index_url, {})[pinned[0]] = (step.package, pinned[1])
    accepted = set(accepted_tags(t))
    found: dict[str, str] = {}
    for index, names in asked.items():
        for name, project in lookup(list(names), index).items():
            package, version = names[name]
            try:
                files = [f for f in project.files if f.version == Version(version) and not f.yanked]
            except InvalidVersion:
                continue
            if any(f.tags is None for f in files) and not any(f.tags and f.tags & accepted for f in files):
                found[package] = sdist_said(name, version, t)
    return found


def sdist_said(name: str, version: str, t: Target, why: str = "") -> str:
    """Return what ``download`` says of an sdist it fetched with what building it takes (``why``: ``"a dependency"``
    for one of ``sdist_dependencies``)."""
    return (f"{name} {version}{f' ({why})' if why else ''} has no wheel for the target (Python {t.python}, "
            f"{t.platform}), only an sdist: downloaded it with what building it takes; the install builds it")


def find_sdist(dest: str, requirement: str) -> Path | None:
    """Return the sdist of the pinned ``requirement`` that lies in ``dest``, else ``None``."""
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename
    from packaging.version import Version

    pinned = _pinned(requirement)
    if pinned is None:
        return None
    for entry in sorted(os.listdir(dest)):
        try:
            name, version = parse_sdist_filename(entry)
        except InvalidSdistFilename:
            continue
        if name == pinned[0] and version == Version(pinned[1]):
            return Path(dest) / entry
    return None


# PEP 517's fallback for an sdist without [build-system] (pip's too): setuptools' legacy backend
_LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")


def sdist_needs(sdist: Path) -> tuple[list[str], list[str] | None]:
    """Return what the sdist needs on the target: its build requirements (``pyproject.toml``'s ``[build-system]
    requires``, or PEP 517's setuptools fallback) and its dependencies from its PKG-INFO when that metadata is
    static (PEP 643: Metadata-Version 2.2 or later, ``Requires-Dist`` not ``Dynamic``), else ``None`` (only a build
    says them)."""
    import email.parser
    import tarfile
    from resolver import toml_read
    import zipfile

    texts: dict[str, str] = {}
    wanted = ("pyproject.toml", "PKG-INFO")
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            for member in zf.namelist():
                if member.count("/") == 1 and member.split("/")[1] in wanted:
                    texts[member.split("/")[1]] = zf.read(member).decode("utf-8", "replace")
    else:
        with tarfile.open(sdist) as tf:
            for info in tf.getmembers():
                parts = info.name.strip("./").split("/")
                if len(parts) == 2 and parts[1] in wanted and info.isfile():
                    handle = tf.extractfile(info)
                    if handle is not None:
                        texts[parts[1]] = handle.read().decode("utf-8", "replace")
    build: list[str] = list(_LEGACY_BUILD_REQUIRES)
    if "pyproject.toml" in texts:
        try:
            system = toml_read.loads(texts["pyproject.toml"]).get("build-system")
        except toml_read.TOMLDecodeError:
            system = None
        if isinstance(system, dict) and isinstance(system.get("requires"), list):
            build = [str(r) for r in system["requires"]]
    meta = email.parser.HeaderParser().parsestr(texts.get("PKG-INFO", ""))
    try:
        static = tuple(int(x) for x in str(meta.get("Metadata-Version", "0")).split(".")[:2]) >= (2, 2)
    except ValueError:
        static = False
    dynamic = {str(d).strip().lower() for d in meta.get_all("Dynamic") or ()}
    runtime = [str(r) for r in meta.get_all("Requires-Dist") or ()] if static and "requires-dist" not in dynamic \
        else None
    return build, runtime


def sdist_deps_argv(plan: Plan, dest: str, step: Step, sources: Sources, needs: Sequence[str], *,
                    write: bool = True) -> list[str] | None:
    """Return the ``pip download`` that fetches, as wheels for the target, what ``step``'s sdist ``needs`` (its
    build requirements and dependencies; those whose markers do not hold on the target left out), torch held to
    the plan's, from the step's indexes; ``None`` when nothing is needed."""
    from packaging.requirements import Requirement

    from resolver.installers import source_args
    from resolver.models import marker_environment

    env = marker_environment(plan.stack.target)
    wanted = [r for r in needs if (m := Requirement(r).marker) is None or m.evaluate({**env, "extra": ""})]
    wanted = [r for r in wanted if _name(r) != "torch"]  # its own step brings it
    if not wanted:
        return None
    torch = plan.stack.get("torch")
    held = ["-c", _write_constraint(dest, f"torch=={torch.version}", write)] if torch is not None else []
    return [*_pip(dest), *_for_target(plan.stack.target), *held, *source_args(step, sources),
            *(check_argument(r, "requirement") for r in wanted)]

