"""Transitive resolution for a lock: every file a plan's wheel steps pull in, for the plan's *target* Python and
platform, with each file's URL and sha256.

uv (``uv pip compile --format pylock.toml``) resolves: the plan's packages become the dependencies of a throwaway
``pyproject.toml`` whose ``[tool.uv.sources]`` pin each package to the index the plan takes it from (an explicit
index: nothing else is looked up there), every other package comes from PyPI, and the matrix's known-bad pins
(``matrices/pins.toml``) go in as constraints. Without uv, pip resolves (``--dry-run --report``). Both run isolated
from the user's configuration (``UV_NO_CONFIG``, ``pip --isolated``, no ``PIP_*``/``UV_*`` variables): a lock must
not depend on the machine that made it.

Whatever resolved, ``check_files`` then checks every locked file against the target: its wheel tags, and the
Requires-Python the index publishes for it. A file that fails is an error, never a lock.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

from packaging.markers import Marker
from packaging.tags import Tag
from packaging.pylock import Package, Pylock, PylockValidationError
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from resolver import _subprocess, toml_read
from resolver.errors import GpuStackError
from resolver.hashes import GLIBC_MAX
from resolver.lock import LockedFile
from resolver.lock_uv import UvRun, find_uv, isolated_env, uv_argv
from resolver.matrix_types import Matrix
from resolver.models import PYPI_SIMPLE, Plan, Step

__all__ = ["ResolveError", "check_sources", "start_uv", "declared_requires", "direct_files", "find_uv", "isolated_env", "python_platform", "resolve", "uv_request", "uv_argv", "UvRun", "check_files", "requests_of", "Pages", "names_key",
           "remembered_names", "remember_names"]


class ResolveError(GpuStackError):
    """The dependencies of a plan could not be resolved, or a resolved file does not fit the target."""

    exit_code = 1


def check_sources(plan: Plan, matrix: Matrix | None = None, default_index: str = PYPI_SIMPLE,
                  torch_mirror: str | None = None, answered: set[str] | None = None) -> None:
    """Raise ``installers.SourceUnreachable`` (exit 1; one line naming the host and the next step) when a host the
    resolver would read does not answer: an index a step takes its package from, the default index its dependencies
    come from, or a wheel's direct URL whose dependencies the matrix does not record (``declared_requires``: those
    are never fetched). Called before the resolver runs, which would retry a dead host for seconds and then name no
    host. Whether a host answers is ``installers.silent_hosts``' rule, as for install and download: one probe per
    host, all at once, loopback included, none for ``file://`` indexes."""
    from resolver.installers import SourceUnreachable, origin, silent_hosts
    from resolver.redact import redact

    declared = declared_requires(plan, matrix)
    wanted: list[tuple[str, str, bool]] = [(default_index, "the dependencies", False)]  # (url, for what, direct)
    for s in plan.steps:
        if s.index_url:
            wanted.append((s.index_url, s.requirement, False))
        if s.action == "install" and s.url and not s.url.startswith("git+") and s.package not in declared:
            wanted.append((s.url, s.requirement, True))
    # ``answered``: the hosts that answered this command already (``lock --per-class`` locks one plan per GPU class)
    asked = [item for item in wanted if origin(item[0]) not in (answered or ())]
    silent = set(silent_hosts([url for url, _, _ in asked]))
    for url, needed_by, direct in asked:
        if origin(url) in silent:
            host = urlsplit(url).netloc.rpartition("@")[2].lower()
            what = f"{needed_by}'s wheel" if direct else f"the index of {needed_by}"
            raise SourceUnreachable(redact(
                f"cannot reach {host} ({url}, {what}); {_next_step(url, direct, default_index, torch_mirror)}; "
                "nothing written")) from None
    if answered is not None:
        answered.update(o for o in map(origin, (url for url, _, _ in asked)) if o is not None)


def _next_step(url: str, direct: bool, default_index: str, torch_mirror: str | None) -> str:
    """Return what to do when ``url`` does not answer: name the option that moves it to a mirror."""
    from resolver.installers import mirror_of, on_this_machine

    if direct:
        return "lock with --no-deps (the plan's packages only), or where its host answers"
    if on_this_machine(url):  # a stopped devpi or http.server: started here, not found elsewhere (as install says)
        return "it is on this machine: start its server, or fix the URL"
    if (mirror := mirror_of(url)) is not None:
        return f"lock through {mirror}"
    if torch_mirror and url.startswith(torch_mirror.rstrip("/") + "/"):
        return "check the mirror given by --torch-index-url (or $GPUSTACK_TORCH_INDEX_URL), or lock where it answers"
    if url.rstrip("/") == default_index.rstrip("/"):
        return "check the mirror given by --index-url (or $PIP_INDEX_URL), or lock where it answers"
    return "lock where it answers, or with --no-deps for the plan's packages only"


def declared_requires(plan: Plan, matrix: Matrix | None) -> dict[str, tuple[str, ...]]:
    """Return, by step package, the dependencies the matrix records for a wheel step the plan takes by direct URL
    (flash-attn's GitHub release wheels: ``install_requires`` of setup.py at the release's tag), or for a step that
    builds it from source (flash-attn, and xformers: the wheel the build makes declares them, and ``gpustack
    install`` and the Dockerfile install them with it). The resolver is given these instead of the URL, so it never downloads the wheel to read them, nor builds
    one; a wheel by URL is itself locked from the plan (``direct_files``), a build's sdist by ``hashes.lookup``."""
    if matrix is None:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for s in plan.steps:
        if s.action == "install" and (not s.url or s.url.startswith("git+")):
            continue  # a wheel from an index: the resolver reads its own metadata
        if s.action not in ("install", "build"):
            continue
        choice = plan.stack.get(s.package)
        name = canonicalize_name(s.package)
        if choice is None:
            continue
        version = Version(choice.version)
        if name == "flash-attn":
            release = next((f for f in matrix.flash_attn if f.version == version), None)
            if release is not None and release.requires_dist is not None:
                out[s.package] = release.requires_dist
        elif name == "xformers" and s.action == "build":  # setup.py's install_requires at the tag
            built = next((x for x in matrix.xformers if x.version == version), None)
            if built is not None and built.source_requires_dist is not None:
                out[s.package] = built.source_requires_dist
    return out


def direct_files(plan: Plan, matrix: Matrix | None) -> dict[str, LockedFile]:
    """Return the locked file of each step ``declared_requires`` covers: its wheel URL from the plan (the matrix's
    URL template), with no sha256 (GitHub publishes none, and the lock does not download the wheel to hash it), so
    it is written under ``[[tool.gpustack.missing]]`` and installs only with ``--allow-missing-hashes``."""
    import dataclasses

    from resolver.hashes import _direct

    declared = declared_requires(plan, matrix)
    out: dict[str, LockedFile] = {}
    for s in plan.steps:
        choice = plan.stack.get(s.package)
        if s.action != "install" or s.package not in declared or not s.url or choice is None:
            continue  # declared only holds steps with a choice; a build's sdist is looked up from its index
        out[str(canonicalize_name(s.package))] = dataclasses.replace(
            _direct(s.package, choice.version, s.url), sha256=None, kind="wheel",
            reason=(f"a GitHub release asset: GitHub publishes no sha256 for it, and the lock does not download it "
                    f"(its dependencies are {s.package}'s install_requires, from the matrix)"))
    return out


def python_platform(platform: str, glibc: str | None = None) -> str:
    """Return uv's ``--python-platform`` of a target platform (Linux: manylinux up to the target's glibc)."""
    g = glibc.replace(".", "_") if glibc else "_".join(map(str, GLIBC_MAX))  # no glibc given: the lock's assumed one
    return {"linux_x86_64": f"x86_64-manylinux_{g}", "linux_aarch64": f"aarch64-manylinux_{g}",
            "win_amd64": "x86_64-pc-windows-msvc"}.get(platform, platform)


def _wanted(plan: Plan, matrix: Matrix | None) -> list[tuple[str, str | None, Step | None]]:
    """Return ``(requirement, index, step)`` of what the resolution starts from: every wheel step (pinned to its
    index; a direct URL is its own source), or, for a step whose dependencies the matrix records (a wheel by URL,
    or a build), those dependencies (index ``None``: the default one; no step). Other build steps are left out
    (their metadata needs a build against the locked torch)."""
    declared = declared_requires(plan, matrix)
    out: list[tuple[str, str | None, Step | None]] = []
    for s in plan.steps:
        if s.package in declared:
            out.extend((r, None, None) for r in declared[s.package])
        elif s.action != "install":
            continue
        else:
            out.append((f"{s.package} @ {s.url}" if s.url else s.requirement, s.index_url or PYPI_SIMPLE, s))
    return out


def requests_of(plan: Plan, matrix: Matrix | None = None) -> list[tuple[str, str | None]]:
    """Return ``(requirement, index)`` of what the resolution starts from (``_wanted``; index ``None``: the default
    index)."""
    return [(r, i) for r, i, _ in _wanted(plan, matrix)]


def _pyproject(plan: Plan, default_index: str, matrix: Matrix | None = None) -> dict[str, object]:
    """Return the throwaway project whose dependencies are the plan's wheel steps, each pinned to its index."""
    reqs = _wanted(plan, matrix)
    indexes = list(dict.fromkeys(i for _, i, _ in reqs if i and i.rstrip("/") != default_index.rstrip("/")))
    names = {i: f"gpustack-{n}" for n, i in enumerate(indexes)}
    sources = {}
    for _, index, step in reqs:
        if step is not None and index in names and not step.url:
            sources[str(canonicalize_name(step.package))] = {"index": names[index]}
    tool = {"uv": {"index": [{"name": names[i], "url": i, "explicit": True} for i in indexes],
                   "sources": sources}} if indexes else {}
    return {"project": {"name": "gpustack-lock-request", "version": "0",
                        "dependencies": list(dict.fromkeys(r for r, _, _ in reqs))}, "tool": tool}


def _index_of(plan: Plan, name: str, default_index: str) -> str:
    for s in plan.steps:
        if canonicalize_name(s.package) == canonicalize_name(name) and s.index_url:
            return s.index_url
    return default_index


def python_full_version(python: str) -> str:
    """Return the full version a lock resolves a target's Python ``X.Y`` as: ``X.Y.0``, its patch release not being
    known, as uv takes ``--python-version X.Y`` ("if a patch version is omitted, the minimum patch version is
    assumed", ``uv help pip compile``). The one rule the lock's marker and Requires-Python checks use."""
    return f"{'.'.join(python.split('.')[:2])}.0"


def python_patch_note(python: str) -> str:
    """Return the note a lock whose dependencies were resolved carries about ``python_full_version``."""
    full = python_full_version(python)
    return (f"Python {python} taken as {full} for the dependencies (the target's patch release is not known; uv "
            f"and pip resolve --python-version {python} as {full}): one whose Requires-Python or marker needs a later "
            f"{python}.x is held back or left out")


def marker_env(python: str, platform: str) -> dict[str, str]:
    """The target's marker environment (``models.python_platform_markers``), with ``python_full_version`` taken as
    ``X.Y.0`` (``python_full_version``): uv's lock may write markers on it."""
    from resolver.models import python_platform_markers

    env = python_platform_markers(python, platform)
    return {**env, "python_full_version": python_full_version(env["python_version"])}


def _files_of_pylock(lock: Pylock, plan: Plan, default_index: str) -> dict[str, LockedFile]:
    """Return the file each package of uv's lock installs on the plan's target (a wheel it accepts, else the sdist)."""
    from resolver.hashes import target_tags

    target = plan.stack.target
    accepted = target_tags(target.python, target.platform, target.glibc)
    rank = {t: i for i, t in enumerate(accepted)}
    env = marker_env(target.python, target.platform)
    files: dict[str, LockedFile] = {}
    for p in lock.packages:
        if p.marker is not None and not Marker(str(p.marker)).evaluate(env):
            continue
        files[str(canonicalize_name(p.name))] = _file_of(p, rank, _index_of(plan, str(p.name), default_index))
    return files


def _file_of(p: Package, rank: Mapping[Tag, int], index: str) -> LockedFile:
    version = str(p.version)
    best: tuple[int, LockedFile] | None = None
    for w in p.wheels or ():
        url = w.url or ""
        fname = w.name or unquote(urldefrag(url)[0].rsplit("/", 1)[-1])
        try:
            score = min((rank[t] for t in parse_wheel_filename(fname)[3] if t in rank), default=-1)
        except InvalidWheelFilename:
            continue
        if score >= 0 and (best is None or score < best[0]):
            best = (score, LockedFile(str(p.name), version, fname, url, w.hashes.get("sha256"), index=index,
                                      size=w.size, upload_time=w.upload_time.isoformat() if w.upload_time else None))
    if best is not None:
        return best[1]
    if p.sdist is not None:
        s = p.sdist
        url = s.url or ""
        return LockedFile(str(p.name), version, s.name or unquote(url.rsplit("/", 1)[-1]), url,
                          s.hashes.get("sha256"), index=index, kind="sdist", size=s.size,
                          upload_time=s.upload_time.isoformat() if s.upload_time else None)
    if p.vcs is not None:
        from resolver.lock import vcs_url

        return LockedFile(str(p.name), version, str(p.name), vcs_url(p.vcs), None, kind="vcs")
    raise ResolveError(f"uv locked {p.name} {version} without a file for the target; lock again with --no-deps")


def uv_request(plan: Plan, constraints: Sequence[str], default_index: str = PYPI_SIMPLE,
               matrix: Matrix | None = None) -> dict[str, Any]:
    """Return everything ``uv pip compile`` is given for ``plan``, as plain (JSON) data: the throwaway project, the
    constraints, the target and the default index. Two equal requests are the same uv run (``UvRun``)."""
    t = plan.stack.target
    return {"project": _pyproject(plan, default_index, matrix), "constraints": list(constraints),
            "python_version": t.python, "python_platform": python_platform(t.platform, str(t.glibc) if t.glibc else None),
            "index_url": default_index}


def start_uv(uv: str, plan: Plan, constraints: Sequence[str] = (), default_index: str = PYPI_SIMPLE,
             matrix: Matrix | None = None, started: UvRun | None = None, hint: str | None = None) -> UvRun:
    """Return the uv run of ``plan``'s request: ``started`` when it was begun for the same request (else it is
    cancelled), or one started now and remembered under the ``lock_speculate`` key ``hint`` (the next lock keyed
    so starts uv on it at once). ``resolve`` waits for it; a caller may start it earlier, to work while it runs."""
    request = uv_request(plan, constraints, default_index, matrix)
    if started is not None and started.request == request:
        return started
    if started is not None:
        started.cancel()  # started for another request: its lock is not this plan's
    run = UvRun(uv, request)
    if hint is not None:
        from resolver import lock_speculate

        lock_speculate.remember(hint, request)
    return run


def _resolve_uv(uv: str, plan: Plan, constraints: Sequence[str], default_index: str, matrix: Matrix | None,
                started: UvRun | None = None, hint: str | None = None) -> dict[str, LockedFile]:
    text = start_uv(uv, plan, constraints, default_index, matrix, started, hint).result()
    try:
        lock = Pylock.from_dict(toml_read.loads(text or ""))
    except (toml_read.TOMLDecodeError, PylockValidationError) as exc:
        raise ResolveError(f"uv wrote no valid pylock.toml ({exc}); lock again with --no-deps") from None
    return _files_of_pylock(lock, plan, default_index)


def _resolve_pip(python_exe: str, plan: Plan, constraints: Sequence[str], default_index: str,
                 matrix: Matrix | None) -> dict[str, LockedFile]:
    """Return the files pip's resolver picks (``install --dry-run --report``, isolated) for the plan's target."""
    from resolver.hashes import target_tags

    target = plan.stack.target
    accepted = target_tags(target.python, target.platform, target.glibc)
    platforms = list(dict.fromkeys(t.platform for t in accepted if t.platform != "any"))
    reqs = requests_of(plan, matrix)
    indexes = list(dict.fromkeys([default_index, *(i for _, i in reqs if i)]))
    with tempfile.TemporaryDirectory(prefix="gpustack-lock-") as name:
        tmp = Path(name)
        cons = tmp / "constraints.txt"
        cons.write_text("".join(f"{c}\n" for c in constraints))
        report = tmp / "report.json"
        argv = [python_exe, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed", "--quiet",
                "--target", str(tmp / "t"), "--report", str(report), "--only-binary=:all:", "--implementation", "cp",
                "--python-version", target.python, *[a for p in platforms for a in ("--platform", p)],
                "--index-url", indexes[0], *[a for i in indexes[1:] for a in ("--extra-index-url", i)],
                "-c", str(cons), *[r for r, _ in reqs]]
        _subprocess.run(argv, env=isolated_env(), timeout=900)
        data = json.loads(report.read_text())
    files: dict[str, LockedFile] = {}
    for item in data.get("install", []):
        meta, info = item["metadata"], item["download_info"]
        url = info["url"]
        sha = (info.get("archive_info") or {}).get("hashes", {}).get("sha256")
        fname = unquote(urldefrag(url)[0].rsplit("/", 1)[-1])
        files[str(canonicalize_name(meta["name"]))] = LockedFile(
            meta["name"], meta["version"], fname, urldefrag(url)[0], sha,
            index=_index_of(plan, meta["name"], default_index), kind="wheel" if fname.endswith(".whl") else "sdist",
            reason="" if sha else "pip's report gives no sha256")
    return files


def resolve(plan: Plan, constraints: Sequence[str] = (), *, python_exe: str | None = None,
            default_index: str = PYPI_SIMPLE, uv: str | None = None, use_uv: bool = True,
            started: UvRun | None = None, hint: str | None = None,
            matrix: Matrix | None = None) -> dict[str, LockedFile]:
    """Return the file of every package the plan's wheel steps install on its target (the steps' own packages and
    all their dependencies), keyed by canonical name; ``constraints`` (PEP 508) bound the dependencies. A wheel the
    plan takes by direct URL whose dependencies ``matrix`` records is not given to the resolver: its dependencies
    are, and its own entry comes from the plan (``direct_files``, no sha256).

    uv resolves when present (``uv`` given, or ``find_uv()``) and ``use_uv``, else pip in ``python_exe``. Raises
    ``CommandFailed`` when the resolver fails (an index unreachable, no solution). ``started`` is a uv run begun
    before the plan was known: its lock is used when its request is this plan's, else it is cancelled (and uv
    runs on the plan's request, remembered under the ``lock_speculate`` key ``hint`` when given).
    """
    if not requests_of(plan, matrix):
        return {}
    uv = (uv or find_uv()) if use_uv else None
    if uv:
        files = _resolve_uv(uv, plan, constraints, default_index, matrix, started, hint)
    else:
        files = _resolve_pip(python_exe or sys.executable, plan, constraints, default_index, matrix)
    return {**files, **direct_files(plan, matrix)}


class Pages:
    """Index project pages read in the background, a few connections at a time (a TLS handshake costs more than a
    page): ``prefetch`` starts reading pages whose names are known before the resolver runs (the plan's packages,
    a previous lock's), so the check after it mostly finds them read."""

    def __init__(self, fetch: Callable[[str], str | None] | None = None, workers: int = 2) -> None:
        from resolver import hashes

        self._fetch = fetch or hashes.fetch_text
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpustack-pages")
        self._futures: dict[str, Future[str | None]] = {}

    @staticmethod
    def url(index: str, name: str) -> str:
        return f"{index.rstrip('/')}/{canonicalize_name(name)}/"

    def prefetch(self, urls: Iterable[str]) -> None:
        for u in urls:
            if u not in self._futures:
                self._futures[u] = self._pool.submit(self._fetch, u)

    def warm(self, url: str, connections: int = 2) -> None:
        """Open ``connections`` connections to ``url``'s host now (a HEAD each), so the TLS handshakes happen while
        the resolver runs, not after it."""
        from resolver import hashes

        if self._fetch is not hashes.fetch_text:
            return
        for _ in range(connections):
            self._pool.submit(_head, url)

    def get(self, url: str) -> str | None:
        self.prefetch([url])
        return self._futures[url].result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _head(url: str) -> None:
    from resolver import hashes

    try:
        hashes._session().head(url, timeout=10)
    except Exception:  # a warm-up only: the real request reports any failure
        pass


def names_key(plan: Plan, constraints: Sequence[str], matrix: Matrix | None = None) -> str:
    """Return the key under which the names a resolution locked are remembered (what was asked, for which target)."""
    import hashlib

    t = plan.stack.target
    text = json.dumps([requests_of(plan, matrix), list(constraints), t.python, t.platform, str(t.glibc)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def remembered_names(key: str) -> list[str]:
    """Return the package names the last resolution of ``key`` locked (empty when none is remembered)."""
    from resolver.cache import LOCK_NAMES, cache_dir
    from resolver.safefiles import read_private

    blob = read_private(cache_dir() / LOCK_NAMES / f"{key}.json", limit=1 << 20)  # ours, regular, not a link
    try:
        names = json.loads(blob) if blob is not None else []
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)][:500] if isinstance(names, list) else []


def remember_names(key: str, names: Iterable[str]) -> None:
    """Remember the names a resolution locked, so the next lock of the same request reads their pages early."""
    from resolver.cache import LOCK_NAMES, cache_dir
    from resolver.safefiles import write_private

    # O_EXCL temporary in a private folder, renamed: never through a planted link. A cache that cannot be written
    # costs speed, never correctness. One file per distinct request: the newest NAMES_KEPT stay.
    write_private(cache_dir() / LOCK_NAMES, f"{key}.json", json.dumps(sorted(names)).encode(), keep=NAMES_KEPT)


NAMES_KEPT = 64


def check_files(files: Iterable[LockedFile], python: str, platform: str, *, pages: Pages | None = None,
                glibc: object = None, python_checked: Iterable[LockedFile] = ()) -> list[str]:
    """Return one problem per locked file that does not fit the target: a wheel whose tags the target does not
    accept, or a file whose Requires-Python (as its index publishes it) excludes the target's Python.

    Index pages come from ``pages`` (read in parallel). A file whose index publishes no Requires-Python is not held
    against it; an index that cannot be read leaves only the tag check. ``python_checked`` are files whose
    Requires-Python the resolver itself held against the target (uv, told ``--python-version``, filters files and
    versions by the index's and the metadata's Requires-Python): their pages are not read again, their tags are.
    """
    from resolver import hashes

    own = pages is None
    reader = pages or Pages()
    accepted = set(hashes.target_tags(python, platform, glibc))
    version = python_full_version(python)
    problems: list[str] = []
    indexed = []
    skip = {id(f) for f in python_checked}
    for f in files:
        if f.kind == "wheel" and f.filename:
            try:
                ftags = parse_wheel_filename(f.filename)[3]
            except InvalidWheelFilename:
                problems.append(f"{f.name} {f.version}: {f.filename} is not a valid wheel name")
                continue
            if not ftags & accepted:
                problems.append(f"{f.name} {f.version}: wheel {f.filename} does not run on Python {python} "
                                f"{platform}")
        if f.index and f.kind != "vcs" and f.filename and id(f) not in skip:
            indexed.append(f)
    try:
        reader.prefetch(Pages.url(f.index or "", f.name) for f in indexed)
        for f in indexed:
            page = Pages.url(f.index or "", f.name)
            text = reader.get(page)
            if text is None:
                continue
            entry = next((e for e in hashes.parse_index_page(text, page, only=f.filename)
                          if e.filename == f.filename), None)
            if entry is None or not entry.requires_python:
                continue
            try:
                spec = SpecifierSet(entry.requires_python)
            except InvalidSpecifier:
                continue
            if not spec.contains(version, prereleases=True):
                problems.append(f"{f.name} {f.version}: {f.filename} requires Python {entry.requires_python}; "
                                f"the target is Python {python}")
    finally:
        if own:
            reader.close()
    return problems
