"""PEP 751 lock files for a plan: ``dumps(plan, files) -> str`` and ``loads(text) -> LockedPlan``.

Pure: the caller looks up the files (``resolver.hashes``) and writes the text. Every lock ``dumps`` returns passes
``packaging.pylock.Pylock.from_dict``. What PEP 751 has no field for (the target machine, build environments, files
whose hash could not be read) lives under ``[tool.gpustack]`` (docs/lock.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast

import tomli_w
from packaging.markers import Environment
from packaging.pylock import Package, PackageSdist, PackageVcs, PackageWheel, Pylock, PylockValidationError
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver import toml_read
from resolver.compat import driver_floor
from resolver.errors import BadInput
from resolver.matrix_types import Matrix
from resolver.models import ArchList, ComputeCapability, Gpu, PackageChoice, Plan, Stack, Step, Target, format_driver, parse_driver

__all__ = [
    "LockedFile",
    "LockedPackage",
    "LockedTarget",
    "LockedPlan",
    "dumps",
    "loads",
    "read",
    "selected",
    "from_data",
    "check_lock_target",
    "lock_to_plan",
    "environment_marker",
    "without_credentials",
    "RECORDED_OPTIONS",
    "recorded_options",
]

FORMAT = 1

# The plan-changing options of `gpustack lock` that a lock records under [tool.gpustack] by their ``PlanOptions``
# name, besides the request, profile, target, driver, glibc and deps it records on their own: written when set
# (``dumps(options=...)``), read back into ``LockedPlan.options`` and replayed by a bare re-lock
# (``cmd_lock.replayed_options``). tests/test_relock.py fails when `lock` gains an option that is neither recorded
# nor listed there as one that does not change what is locked.
RECORDED_OPTIONS = ("nvcc", "verified_only", "prefer_wheels", "upgrade")

@dataclass(frozen=True, slots=True)
class LockedFile:
    """One file a lock pins: where it is, and its sha256 (``None`` when it could not be read, with ``reason``).

    ``kind`` is ``"wheel"``, ``"sdist"`` or ``"vcs"`` (``url`` is then ``git+https://...@commit``).
    """

    name: str
    version: str
    filename: str
    url: str
    sha256: str | None
    index: str | None = None
    kind: Literal["wheel", "sdist", "vcs"] = "wheel"
    size: int | None = None
    upload_time: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """A package as ``loads`` reads it back: the exact file, its hash, and how to install it."""

    name: str
    version: str
    url: str
    sha256: str | None
    index: str | None
    method: Literal["wheel", "source"]
    order: int
    build_env: Mapping[str, str] = field(default_factory=dict)
    arch_list: str | None = None
    kind: Literal["wheel", "sdist", "vcs"] = "wheel"

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, slots=True)
class LockedTarget:
    """The machine a lock was made for, from ``[tool.gpustack.target]``."""

    python: str
    platform: str
    gpus: tuple[Gpu, ...]
    cuda: str | None
    min_driver: Version | None
    arch_list: str | None


@dataclass(frozen=True, slots=True)
class LockedPlan:
    """A parsed, validated lock: the ``Pylock``, its target and its packages in install order.

    ``missing`` holds packages whose file hash was unknown at lock time (``[[tool.gpustack.missing]]``).
    ``request``, ``profile``, ``driver``, ``glibc``, ``deps`` and ``options`` (``RECORDED_OPTIONS``) say what the
    lock was made for (``[tool.gpustack]``), so a re-lock or ``check-upgrade`` keeps them.
    """

    pylock: Pylock
    target: LockedTarget
    packages: tuple[LockedPackage, ...]
    missing: tuple[LockedPackage, ...] = ()
    notes: tuple[str, ...] = ()
    request: tuple[str, ...] = ()  # what the lock was made for: the PEP 508 requirements given
    profile: str | None = None  # the --profile given, if any
    driver: str | None = None  # the target's driver, when known
    glibc: str | None = None  # the target's glibc, when known
    deps: bool = True  # whether the dependencies were locked too (``lock --no-deps``: only the plan's packages)
    options: Mapping[str, str | bool] = field(default_factory=dict)  # RECORDED_OPTIONS the lock was made with
    fleet: Mapping[str, Any] | None = None  # a fleet lock's fleet (``fleet.Fleet.record``): each class it serves

    @property
    def hashes(self) -> dict[str, str]:
        """Return the expected sha256 of every locked file, keyed by its URL."""
        return {p.url: p.sha256 for p in self.packages if p.sha256}


def environment_marker(python: str, platform: str) -> str:
    """Return the PEP 508 marker of a target: ``python_version == "3.11" and sys_platform == "linux" ...``
    (``models.python_platform_markers``)."""
    from resolver.models import python_platform_markers

    env = python_platform_markers(python, platform)
    return " and ".join(f'{k} == "{env[k]}"' for k in ("python_version", "sys_platform", "platform_machine") if k in env)


def without_credentials(url: str | None) -> str | None:
    """Return ``url`` without its ``user:password@`` (or ``token@``): a lock is shared and committed, so it never
    holds a mirror's credentials; the installer reads them from .netrc or a keyring, as uv's own locks expect."""
    if not url or "@" not in url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _upload_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _vcs(f: LockedFile, matrix: Matrix | None) -> PackageVcs:
    """Return the ``[packages.vcs]`` of a git source ``git+URL@REF[#subdirectory=DIR]``: ``requested-revision`` the
    ref asked for (a tag), ``commit-id`` the full commit hash it names, which PEP 751 requires and uv checks (the
    matrices record it: ``Matrix.git_commit``). ``BadInput`` for a git source whose commit is not known: never a
    lock uv cannot read."""
    from resolver.matrix_types import git_ref, is_commit

    bare, _, fragment = f.url.removeprefix("git+").partition("#")
    ref = git_ref(f.url)
    url = bare.rpartition("@")[0] if ref is not None else bare
    subdirectory = next((v for k, _, v in (p.partition("=") for p in fragment.split("&")) if k == "subdirectory"), None)
    commit = matrix.git_commit(f.name, f.version, ref) if matrix is not None and ref else None
    commit = commit or (ref if is_commit(ref) else None)
    if commit is None:
        raise BadInput(f"{f.name} {f.version}: its git source {f.url} names no commit hash the matrices know (a PEP 751 "
                       "lock needs the full hash: uv refuses a tag); lock without it, or install it with `gpustack "
                       "install`; nothing written")
    return PackageVcs(type="git", url=url, requested_revision=ref if ref != commit else None, commit_id=commit,
                      subdirectory=subdirectory)


def _package(f: LockedFile, tool: dict[str, Any], matrix: Matrix | None = None) -> Package:
    """Return the pylock ``Package`` of one hashed file (``matrix``: the commit of a git source)."""
    hashes = {"sha256": f.sha256 or ""}
    common: dict[str, Any] = {"name": canonicalize_name(f.name), "version": Version(f.version), "tool": {"gpustack": tool}}
    if f.kind == "vcs":
        return Package(**common, vcs=_vcs(f, matrix))
    dist: dict[str, Any] = {"name": f.filename, "url": f.url, "hashes": hashes, "size": f.size,
                            "upload_time": _upload_time(f.upload_time)}
    if f.kind == "sdist":
        return Package(**common, index=f.index, sdist=PackageSdist(**dist))
    return Package(**common, index=f.index, wheels=[PackageWheel(**dist)])


def _strip_none(value: Any) -> Any:
    """Return ``value`` without ``None`` entries (TOML has no null)."""
    if isinstance(value, Mapping):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_strip_none(v) for v in value]
    return value


def dumps(plan: Plan, files: Mapping[str, LockedFile], *, matrix: Matrix | None = None,
          request: Sequence[str] = (), profile: str | None = None, driver: str | None = None,
          glibc: str | None = None, deps: bool = True, options: Mapping[str, str | bool] | None = None,
          fleet: Mapping[str, Any] | None = None) -> str:
    """Return the TOML text of the PEP 751 lock of ``plan``, with the files of ``files`` (keyed by package name).

    Packages of ``files`` that no step names are the steps' dependencies and are locked too. A file without a
    sha256 is listed under ``[[tool.gpustack.missing]]`` (PEP 751 requires a hash on every file), never guessed.
    ``matrix`` gives the minimum driver; without it the lock records none. ``request`` (PEP 508 strings),
    ``profile``, ``driver`` and ``glibc`` are recorded as given (``driver`` defaults to the target's); ``deps``
    says whether the dependencies were locked too; ``options`` holds the ``RECORDED_OPTIONS`` set (others are
    refused: a lock records only what a re-lock replays); ``fleet`` the fleet one stack was locked for
    (``fleet.Fleet.record``: its classes, and the --driver/--glibc given for them), which a re-lock plans again.
    The text starts with comments saying what a plain installer (``uv pip install -r``) cannot do with it.
    """
    stack = plan.stack
    target = stack.target
    by_name = {canonicalize_name(k): replace(v, url=without_credentials(v.url) or "", index=without_credentials(v.index))
               for k, v in files.items()}
    order = {canonicalize_name(s.package): i for i, s in enumerate(plan.steps)}
    builds = {canonicalize_name(s.package): s for s in plan.steps if s.action == "build"}
    packages: list[Package] = []
    missing: list[dict[str, Any]] = []
    for name, f in sorted(by_name.items()):
        choice = stack.get(name) or stack.get(f.name)
        tool: dict[str, Any] = {"order": order.get(name, len(plan.steps)), "method": "wheel"}
        if name not in order:
            tool["dependency"] = True
        if name in builds:
            tool["method"] = "source"
            tool["build_env"] = dict(builds[name].env)
        if choice is not None and choice.arch_list:
            tool["arch_list"] = choice.arch_list
        if f.sha256 is None and f.kind != "vcs":
            missing.append({"name": name, "version": f.version, "url": f.url, "index": f.index, "kind": f.kind,
                            "reason": f.reason or "no sha256 published", **tool})
            continue
        packages.append(_package(f, tool, matrix))
    torch = stack.get("torch")
    cuda = torch.cuda if torch is not None else None
    floor = driver_floor(cuda, matrix, target.platform) if matrix is not None else None
    if driver is None and target.driver is not None:
        driver = format_driver(target.driver)
    tool_table: dict[str, Any] = {
        "format": FORMAT,
        "request": list(request),
        "profile": profile,
        "driver": driver,
        "glibc": glibc,
        "deps": deps,
        **_recorded(options or {}),
        "fleet": dict(fleet) if fleet is not None else None,
        "target": {
            "python": ".".join(target.python.split(".")[:2]),
            "platform": target.platform,
            "gpus": [g.to_dict() for g in target.gpus],
            "compute_capabilities": [str(c) for c in target.capabilities],
            "cuda": cuda,
            "min_driver": format_driver(floor) if floor is not None else None,
            "arch_list": torch.arch_list if torch is not None else None,
            "cxx11_abi": stack.torch_cxx11_abi,
        },
        "missing": missing,
        "notes": list(stack.notes) + list(plan.notes),
    }
    lock = Pylock(
        lock_version=Version("1.0"),
        created_by="gpustack",
        requires_python=None,
        environments=None,
        packages=packages,
        tool={"gpustack": tool_table},
    )
    data = dict(lock.to_dict())
    data["environments"] = [environment_marker(target.python, target.platform)]
    data = _strip_none(data)
    _validate(data, "the lock gpustack wrote")
    return _header(packages, missing) + tomli_w.dumps(data)


def recorded_options(table: Mapping[str, Any]) -> dict[str, str | bool]:
    """Return the ``RECORDED_OPTIONS`` set in ``table`` (a lock's ``[tool.gpustack]``, or the options a lock is made
    with), in their order: unset, false and empty ones are left out, so a lock made without them reads as it always
    did. The one rule a lock's options are written and read back by."""
    return {k: v for k in RECORDED_OPTIONS if isinstance(v := table.get(k), (str, bool)) and v}


def _recorded(options: Mapping[str, str | bool]) -> dict[str, str | bool]:
    """Return the ``[tool.gpustack]`` keys of ``options`` (``recorded_options``); a key that is not one of
    ``RECORDED_OPTIONS`` is a bug of the caller."""
    unknown = set(options) - set(RECORDED_OPTIONS)
    if unknown:
        raise ValueError(f"not recorded in a lock: {', '.join(sorted(unknown))}")
    return recorded_options(options)


def _header(packages: Sequence[Package], missing: Sequence[Mapping[str, Any]]) -> str:
    """Return the comments a lock starts with: what ``uv pip install -r pylock.toml`` (which cannot see
    ``[tool.gpustack]``) would get wrong, and that ``gpustack install --lock`` is the way then. Each claim is about
    the files the lock holds: hashed wheels, or also hashed sdists (a pass-through package with no wheel for the
    target), which an installer builds with build requirements the lock does not hold."""
    lines = ["# Written by `gpustack lock`; install it with `gpustack install --lock FILE` (checks this machine first)."]
    builds, sdists = [], []
    for p in packages:
        env = dict(((p.tool or {}).get("gpustack") or {}).get("build_env") or {})
        if env:
            builds.append(f"{p.name} {p.version} ({' '.join(f'{k}={v}' for k, v in sorted(env.items()))})")
        elif p.sdist is not None and not p.wheels:
            sdists.append(f"{p.name} {p.version}")
    files = "hashed wheels and sdists" if sdists else "hashed wheels"
    if builds:
        lines.append("# Source builds need the build environment in [tool.gpustack], which `uv pip install -r` and pip")
        lines.append("# cannot see: " + "; ".join(builds) + ".")
        lines.append("# Only `gpustack install --lock` builds them as locked; other installers build without it.")
    elif missing:
        lines.append(f"# `uv pip install -r pylock.toml` installs the [[packages]] ({files}), not the ones below.")
    elif sdists:
        lines.append("# `uv pip install -r pylock.toml` installs it too (every file is hashed: wheels, and the sdists below).")
    else:
        lines.append("# `uv pip install -r pylock.toml` installs it too (every file is a hashed wheel).")
    if sdists:
        lines.append(f"# Locked as an sdist (no wheel for the target): {', '.join(sdists)}. Installers build it with")
        lines.append("# build requirements from what they are given (`--index-url`; `--find-links DIR` of `gpustack")
        lines.append("# download`), which this lock does not hold.")
    if missing:
        names = ", ".join(f"{m['name']}=={m['version']}" for m in missing)
        lines.append(f"# Not in [[packages]] (no sha256 could be read): {names}; see [[tool.gpustack.missing]].")
        lines.extend(f"#   {m['name']} {m['version']}: {' '.join(str(m['reason']).split())}" for m in missing
                     if m.get("reason"))  # one comment line each, whatever the reason holds
        lines.append("# `gpustack install --lock FILE --allow-missing-hashes` installs them unverified.")
    return "\n".join(lines) + "\n"


def _validate(data: Mapping[str, Any], what: str) -> Pylock:
    """Return ``data`` as a validated ``Pylock``; raise ``BadInput`` naming the field that is wrong."""
    try:
        return Pylock.from_dict(data)
    except PylockValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{what} is not a valid PEP 751 lock: {first}; write one with `gpustack lock`") from None


def vcs_url(vcs: PackageVcs) -> str:
    """Return the requirement URL that installs a ``[packages.vcs]`` at its commit: ``git+URL@COMMIT``, with
    ``#subdirectory=DIR`` when it has one."""
    sub = f"#subdirectory={vcs.subdirectory}" if vcs.subdirectory else ""
    return f"git+{vcs.url}@{vcs.commit_id}{sub}"


def _locked_package(p: Package, tool: Mapping[str, Any], dist: object = None) -> LockedPackage:
    """Return the ``LockedPackage`` of one validated pylock package: ``dist`` (its file ``Pylock.select`` chose for a
    target: ``selected``), else its git source, first wheel or sdist."""
    kind: Literal["wheel", "sdist", "vcs"]
    if dist is None:
        dist = p.vcs or (p.wheels[0] if p.wheels else None) or p.sdist
    if isinstance(dist, PackageVcs):
        url, sha, index, kind = vcs_url(dist), None, None, "vcs"
    elif isinstance(dist, PackageWheel):
        url, sha, index, kind = dist.url or dist.path or "", dist.hashes.get("sha256"), p.index, "wheel"
    elif isinstance(dist, PackageSdist):
        url, sha, index, kind = dist.url or dist.path or "", dist.hashes.get("sha256"), p.index, "sdist"
    else:
        raise BadInput(f"lock package {p.name!r} has no wheel, sdist or vcs source; re-run `gpustack lock`")
    return LockedPackage(
        name=str(p.name),
        version=str(p.version),
        url=url,
        sha256=sha,
        index=index,
        method="source" if tool.get("method") == "source" else "wheel",
        order=int(tool.get("order", 0)),
        build_env={str(k): str(v) for k, v in dict(tool.get("build_env", {})).items()},
        arch_list=tool.get("arch_list"),
        kind=kind,
    )


def selected(locked: LockedPlan, environment: Mapping[str, str], tags: Sequence[Tag]) -> LockedPlan:
    """Return ``locked`` with the packages an installer takes from it for a target (its PEP 508 marker
    ``environment`` and the wheel ``tags`` it accepts), by packaging's own PEP 751 selection (``Pylock.select``), as uv
    selects: a package whose ``marker`` does not hold is left out, and each package installs its first wheel the
    tags accept, else its sdist. ``PylockSelectError`` when the lock does not fit the target (no file for a package,
    or none of its ``environments`` holds). A chosen file with a ``--find-links`` copy is that copy
    (``local_files.use_local_files`` points each listed file of ``locked.pylock`` at its copy, matched by sha256)."""
    chosen = [_locked_package(p, dict((p.tool or {}).get("gpustack", {})), dist)
              for p, dist in locked.pylock.select(environment=cast(Environment, dict(environment)), tags=tags)]
    return replace(locked, packages=tuple(sorted(chosen, key=lambda p: (p.order, p.name))))


def read(path: str, *, hint: str = "write one with `gpustack lock`") -> LockedPlan:
    """Return the ``LockedPlan`` of the file ``--lock FILE`` names (``install``, ``check-upgrade``): read as every
    input file is (``inputs.read_text``) and checked (``loads``), each refusal naming ``--lock FILE``."""
    from resolver.inputs import read_text

    text = read_text(path, f"--lock {path}", hint=hint)
    try:
        return loads(text)
    except BadInput as exc:  # "lock file is not valid TOML ...": say which file
        raise BadInput(f"--lock {path}: {exc}") from None


def loads(text: str) -> LockedPlan:
    """Return the ``LockedPlan`` of a lock's TOML text; raise ``BadInput`` when it is not a valid gpustack lock."""
    try:
        data = toml_read.loads(text)
    except toml_read.TOMLDecodeError as exc:
        raise BadInput(f"lock file is not valid TOML ({exc}); re-run `gpustack lock`") from None
    return from_data(data)


def from_data(data: Mapping[str, Any]) -> LockedPlan:
    """Return the ``LockedPlan`` of a lock's parsed TOML (for a caller that already read the table); raise
    ``BadInput`` when it is not a valid gpustack lock."""
    pylock = _validate(data, "lock file")
    from resolver.lock_schema import check

    check(data, "lock file")  # [tool.gpustack] and what reaches pip, located (docs/input.md)
    tool = dict((pylock.tool or {}).get("gpustack", {}))
    if tool.get("format") != FORMAT or not isinstance(tool.get("target"), Mapping):
        raise BadInput("lock file has no [tool.gpustack] target table: it was not written by `gpustack lock`")
    t = tool["target"]
    try:
        gpus = tuple(Gpu(g["name"], ComputeCapability.parse(g["compute_capability"])) for g in t.get("gpus", []))
        floor = parse_driver(t["min_driver"]) if t.get("min_driver") else None
    except (KeyError, TypeError) as exc:
        raise BadInput(f"lock file: [tool.gpustack.target] is malformed ({exc}); re-run `gpustack lock`") from None
    target = LockedTarget(str(t["python"]), str(t["platform"]), gpus, t.get("cuda"), floor, t.get("arch_list"))
    packages = [_locked_package(p, dict((p.tool or {}).get("gpustack", {}))) for p in pylock.packages]
    missing = [
        LockedPackage(name=m["name"], version=m["version"], url=m.get("url", ""), sha256=None, index=m.get("index"),
                      method="source" if m.get("method") == "source" else "wheel", order=int(m.get("order", 0)),
                      build_env=dict(m.get("build_env", {})), arch_list=m.get("arch_list"), kind=m.get("kind", "wheel"))
        for m in tool.get("missing", [])
    ]
    packages.sort(key=lambda p: (p.order, p.name))
    # request (a list of strings), profile, driver, glibc and nvcc (strings), the flags (booleans) were checked by
    # lock_schema.check above
    return LockedPlan(pylock, target, tuple(packages), tuple(missing), tuple(tool.get("notes", [])),
                      request=tuple(tool.get("request", [])), profile=tool.get("profile"), driver=tool.get("driver"),
                      glibc=tool.get("glibc"), deps=tool.get("deps") is not False,
                      options=recorded_options(tool), fleet=tool.get("fleet"))


def check_lock_target(locked: LockedPlan, host: Any) -> list[str]:
    """Return why ``host`` (a ``Target``) cannot use ``locked``, one reason per problem; empty when it can.

    Checked: the Python minor, the platform, the driver against the lock's CUDA floor, and every GPU of the host
    against the arch list of each CUDA package of the lock.
    """
    reasons: list[str] = []
    want = locked.target
    have_py = ".".join(str(host.python).split(".")[:2])
    if have_py != want.python:
        reasons.append(f"the lock is for Python {want.python}, this interpreter is Python {have_py}: install it into a "
                       f"Python {want.python} environment (--python-exe PATH, or --venv DIR made with Python "
                       f"{want.python}), or lock again for this one (gpustack lock --python-exe PATH)")
    if host.platform != want.platform:
        reasons.append(f"the lock is for {want.platform}, this machine is {host.platform}: lock again for this machine "
                       f"(gpustack lock --python-exe PATH)")
    if want.cuda:
        if host.driver is None:
            if host.gpus:
                reasons.append(f"no NVIDIA driver version found; the lock's CUDA {want.cuda} builds need driver "
                               f">= {format_driver(want.min_driver) if want.min_driver else 'unknown'} (pass --driver to state it)")
        elif want.min_driver is not None and host.driver < want.min_driver:
            reasons.append(f"driver {format_driver(host.driver)} is too old for the lock's CUDA {want.cuda} builds "
                           f"(needs >= {format_driver(want.min_driver)}); update the driver or lock for an older CUDA")
    for gpu in host.gpus:
        for p in (*locked.packages, *locked.missing):
            if p.arch_list and ArchList.parse(p.arch_list).covers(gpu.compute_capability) is None:
                reasons.append(f"{gpu.name} ({gpu.compute_capability.sm}) is not covered by {p.name} {p.version} "
                               f"(built for {p.arch_list}); lock again with --gpu for this GPU")
    return reasons


def lock_target_notes(locked: LockedPlan, host: Any) -> list[str]:
    """Return what installing ``locked`` on ``host`` goes ahead with but the user should know (``check_lock_target``
    refuses what cannot work): CUDA builds on a machine with no NVIDIA GPU or driver (an image built here to run
    elsewhere, say)."""
    want = locked.target
    if want.cuda and not host.gpus and host.driver is None:
        floor = f" (driver >= {format_driver(want.min_driver)})" if want.min_driver else ""
        return [f"this machine has no NVIDIA GPU or driver: installing the lock's CUDA {want.cuda} builds anyway; "
                f"they run only where there is a GPU the lock covers and its driver{floor}"]
    return []


def lock_to_plan(locked: LockedPlan) -> Plan:
    """Return the ``Plan`` that installs exactly the files of ``locked``: one step per package, by URL, no deps.

    The expected sha256 of each step's ``url`` is ``locked.hashes[url]``; source packages become ``build`` steps
    with the locked build environment and no build isolation (torch must already be there).
    """
    t = locked.target
    target = Target(gpus=t.gpus, python=t.python, platform=t.platform, driver=t.min_driver, source="lock")
    everything = sorted((*locked.packages, *locked.missing), key=lambda p: (p.order, p.name))
    choices = tuple(
        PackageChoice(p.name, p.version, p.method, index_url=p.index, url=p.url, build_env=dict(p.build_env),
                      cuda=t.cuda if p.name == "torch" else None, arch_list=p.arch_list)
        for p in everything
    )
    steps = tuple(
        Step(action="build" if p.method == "source" else "install", package=p.name,
             requirement=f"{p.name} @ {p.url}", url=p.url, no_deps=True, env=dict(p.build_env),
             build_isolation=p.method != "source", description=f"{p.name} {p.version} from the lock")
        for p in everything
    )
    return Plan(Stack(target, choices), steps, locked.notes)
