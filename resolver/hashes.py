"""Find the exact file, URL and sha256 of every package a plan installs, for the plan's *target* Python and platform.

Reading an index is one injectable function (``Fetch``: URL -> page text or ``None``); parsing the page (PEP 691
JSON or PEP 503 HTML) and choosing the file are pure. A hash that cannot be read is returned as ``None`` with the
reason and a warning; it is never guessed. The dependencies a plan pulls in are resolved by ``resolver.lock_resolve``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from packaging import tags
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from resolver.errors import BadInput
from resolver.lock import LockedFile
from resolver.logs import Logger
from resolver.models import PYPI_SIMPLE, Plan, Target

__all__ = ["Fetch", "IndexFile", "fetch_text", "parse_index_page", "platform_tags", "target_tags", "accepted_tags",
           "accepted_platforms", "pick", "lookup"]

log = Logger("gpustack.hashes")

Fetch = Callable[[str], "str | None"]

# Newest glibc a lock assumes: Ubuntu 22.04's 2.35, the oldest base image `gpustack dockerfile` uses
# (https://packages.ubuntu.com/jammy/libc6). Wheels needing a newer glibc are not chosen.
GLIBC_MAX = (2, 35)


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One file listed on an index page."""

    filename: str
    url: str
    sha256: str | None
    size: int | None = None
    upload_time: str | None = None
    yanked: bool = False
    requires_python: str | None = None


_SESSION: tuple[str, Any] | None = None


_CACHE_HINT = "remove it (or what is in its way), or set GPUSTACK_CACHE_DIR to another folder"


def _session() -> Any:
    """Return the HTTP session index pages are read with: cached on disk by HTTP's own rules (CacheControl, as pip
    does), so a page PyPI says is fresh for 10 minutes is not asked for again, and a stale one is revalidated."""
    global _SESSION
    from resolver.cache import cache_dir

    where = str(cache_dir() / "index-pages")
    if _SESSION is None or _SESSION[0] != where:
        from resolver.inputs import check_new_folder

        check_new_folder(where, "the index-page cache", hint=_CACHE_HINT)
        import requests
        from cachecontrol import CacheControl
        from cachecontrol.caches.file_cache import SeparateBodyFileCache

        adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
        session = requests.Session()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        _SESSION = (where, CacheControl(session, cache=SeparateBodyFileCache(where)))
    return _SESSION[1]


def fetch_text(url: str) -> str | None:
    """Return the body of an index page (PEP 691 JSON preferred), or ``None`` when it cannot be read. A ``file://``
    index (an air-gapped mirror, as install takes it) is a folder per project with its ``index.html`` (PEP 503)."""
    import requests

    if url.startswith("file:"):
        return _file_page(url)

    headers = {"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    try:
        resp = _session().get(url, headers=headers, timeout=30)
    except requests.RequestException as exc:
        log.warning("cannot read %s: %s", url, exc)
        return None
    except OSError as exc:  # the page cache on disk (a file where a folder of it should be, ...): not the index's fault
        from resolver.cache import cache_dir

        raise BadInput(f"the index-page cache {cache_dir() / 'index-pages'} cannot be used ({exc.strerror}); "
                       f"{_CACHE_HINT}") from None
    if resp.status_code != 200:
        log.warning("cannot read %s: HTTP %d", url, resp.status_code)
        return None
    body: bytes = resp.content
    return body.decode(resp.encoding or "utf-8", errors="replace")  # no charset sniffing of 2 MB pages


def _file_page(url: str) -> str | None:
    import os

    from resolver.inputs import file_url_path

    path = file_url_path(url)
    for candidate in (path.rstrip("/") + "/index.html", path):
        if not os.path.isfile(candidate):  # a regular file only: never a FIFO that would block
            continue
        try:
            with open(candidate, "rb") as f:
                return f.read(64 << 20).decode("utf-8", errors="replace")
        except OSError as exc:
            log.warning("cannot read %s: %s", url, exc.strerror or exc)
            return None
    log.warning("cannot read %s: no such page", url)
    return None


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def parse_index_page(text: str, page_url: str, *, only: str | None = None) -> list[IndexFile]:
    """Return the files of a simple-index project page (PEP 691 JSON or PEP 503 HTML); URLs are made absolute.
    ``only`` keeps just the file of that name (a page lists thousands; joining every URL costs)."""
    if text.lstrip().startswith("{"):
        data: dict[str, Any] = json.loads(text)
        return [
            IndexFile(
                filename=f["filename"],
                url=urljoin(page_url, f["url"]),
                sha256=(f.get("hashes") or {}).get("sha256"),
                size=f.get("size"),
                upload_time=f.get("upload-time"),
                yanked=bool(f.get("yanked")),
                requires_python=f.get("requires-python"),
            )
            for f in data.get("files", [])
            if only is None or f["filename"] == only
        ]
    parser = _Anchors()
    parser.feed(text)
    files = []
    for a in parser.links:
        href = a.get("href")
        if not href:
            continue
        url, frag = urldefrag(urljoin(page_url, href))
        filename = unquote(url.rsplit("/", 1)[-1])
        if only is not None and filename != only:
            continue
        sha = frag.removeprefix("sha256=") if frag.startswith("sha256=") else None
        files.append(IndexFile(filename, url, sha, yanked="data-yanked" in a,
                               requires_python=a.get("data-requires-python")))
    return files


def platform_tags(platform: str, glibc: object = None) -> list[str]:
    """Return the wheel platform tags a target installs, most preferred first: on Linux every manylinux up to the
    target's glibc (``glibc``, e.g. ``Version("2.28")``; by default ``GLIBC_MAX``) and its legacy aliases, then the
    bare platform."""
    if not platform.startswith("linux_"):
        return [platform]
    arch = platform.removeprefix("linux_")
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    top = int(str(glibc).split(".")[1]) if glibc is not None else GLIBC_MAX[1]
    platforms = [p for m in range(top, 4, -1)
                 for p in (f"manylinux_2_{m}_{arch}", *([f"{legacy[m]}_{arch}"] if m in legacy else []))]
    return platforms + [platform]


def accepted_tags(target: Target) -> list[tags.Tag]:
    """Return the wheel tags ``target`` accepts, most preferred first: its Python, its platform and (Linux) its glibc,
    never this machine's. The one answer every command asks (a plan's pass-through pins, lock, download)."""
    return target_tags(target.python, target.platform, target.glibc)


def accepted_platforms(target: Target) -> list[str]:
    """Return the wheel platform tags ``target`` accepts (``accepted_tags``' platforms), most preferred first."""
    return platform_tags(target.platform, target.glibc)


def target_tags(python: str, platform: str, glibc: object = None) -> list[tags.Tag]:
    """Return the wheel tags a target accepts, most preferred first (CPython ``python`` on ``platform``, Linux
    wheels up to ``glibc``)."""
    return list(_target_tags(python, platform, str(glibc) if glibc is not None else None))


@functools.lru_cache(maxsize=8)
def _target_tags(python: str, platform: str, glibc: str | None) -> tuple[tags.Tag, ...]:
    # ~750 tags for a Linux target, asked for 3 times per lock (the resolver's files, the lookup, the check)
    major, minor = (int(x) for x in python.split(".")[:2])
    platforms = platform_tags(platform, glibc)
    interp = f"cp{major}{minor}"
    return (*tags.cpython_tags((major, minor), platforms=platforms),
            *tags.compatible_tags((major, minor), interpreter=interp, platforms=platforms))


def pick(files: Iterable[IndexFile], name: str, spec: SpecifierSet, accepted: Sequence[tags.Tag], *,
         sdist: bool = False) -> IndexFile | None:
    """Return the best file of ``name`` whose version ``spec`` admits: the newest version, then the most preferred
    tag of ``accepted``; with ``sdist`` the source archive instead. Yanked files are skipped."""
    rank = {t: i for i, t in enumerate(accepted)}
    want = canonicalize_name(name)
    best: tuple[Version, int, IndexFile] | None = None
    for f in files:
        if f.yanked:
            continue
        try:
            if sdist:
                if not f.filename.endswith((".tar.gz", ".zip")):
                    continue
                fname, version = parse_sdist_filename(f.filename)
                score = 0
            else:
                if not f.filename.endswith(".whl"):
                    continue
                fname, version, _, ftags = parse_wheel_filename(f.filename)
                score = min((rank[t] for t in ftags if t in rank), default=-1)
                if score < 0:
                    continue
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if fname != want or not spec.contains(version, prereleases=True):
            continue
        if best is None or (version, -score) > (best[0], -best[1]):
            best = (version, score, f)
    return best[2] if best else None


def _spec(requirement: str, pinned: str | None) -> tuple[str, SpecifierSet]:
    """Return the package name and version specifier of a plan requirement; the stack's pin fills in only when the
    requirement has none (PyPI's torch is ``torch==2.6.0`` although the stack calls it ``2.6.0+cu124``)."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return requirement.split("==")[0].strip(), SpecifierSet(f"=={pinned}" if pinned else "")
    if str(req.specifier) or not pinned:
        return req.name, req.specifier
    return req.name, SpecifierSet(f"=={pinned}")


def _direct(name: str, version: str, url: str) -> LockedFile:
    """Return the entry of a direct URL: a VCS checkout needs no hash; a file's hash is read from its fragment."""
    if url.startswith("git+"):
        return LockedFile(name, version, name, url, None, kind="vcs")
    bare, frag = urldefrag(url)
    sha = frag.removeprefix("sha256=") if frag.startswith("sha256=") else None
    return LockedFile(name, version, unquote(bare.rsplit("/", 1)[-1]), bare, sha, kind="wheel" if bare.endswith(".whl") else "sdist",
                      reason="" if sha else f"{bare} is a direct URL with no published sha256")


def lookup(plan: Plan, fetch: Fetch = fetch_text, *,
           known: Mapping[str, LockedFile] | None = None) -> tuple[dict[str, LockedFile], list[str]]:
    """Return the file of every step of ``plan`` and of every dependency in ``known``, plus warnings.

    ``known`` (what the resolver already locked, by canonical name: the dependencies, often the steps too) is taken
    as it is, except for build steps. Every other step's index (then its extra indexes) is asked for a wheel matching
    the plan's target; a ``build`` step gets its sdist. A file that cannot be found still gets an entry, with
    ``sha256=None`` and the reason.
    """
    known = {str(canonicalize_name(k)): v for k, v in (known or {}).items()}
    builds = {str(canonicalize_name(s.package)) for s in plan.steps if s.action == "build"}
    target = plan.stack.target
    accepted = accepted_tags(target)
    pages: dict[str, list[IndexFile] | None] = {}
    found: dict[str, LockedFile] = {}
    warnings: list[str] = []
    wanted: list[tuple[str, SpecifierSet, list[str], bool, str | None]] = []
    for step in plan.steps:
        choice = plan.stack.get(step.package)
        name, spec = _spec(step.requirement, choice.version if choice else None)
        url = step.url or (choice.url if choice else None)
        indexes = [step.index_url or PYPI_SIMPLE, *step.extra_index_urls]
        wanted.append((name, spec, indexes, step.action == "build", url))
    for key, f in known.items():
        if key not in builds:
            found[key] = f
    for name, spec, indexes, sdist, url in wanted:
        key = str(canonicalize_name(name))
        if key in found:
            continue
        version = next((str(s.version) for s in spec if s.operator == "=="), "")
        if url:
            found[key] = _direct(name, version, url)
        else:
            found[key] = _from_indexes(name, spec, indexes, accepted, sdist, fetch, pages)
    for f in found.values():
        if f.sha256 is None and f.kind != "vcs":
            warnings.append(f"{f.name}: no sha256 ({f.reason}); it is written to the lock as missing")
    return found, warnings


def _from_indexes(name: str, spec: SpecifierSet, indexes: Sequence[str], accepted: Sequence[tags.Tag], sdist: bool,
                  fetch: Fetch, pages: dict[str, list[IndexFile] | None]) -> LockedFile:
    """Return the file of ``name`` from the first index of ``indexes`` that has one (``sha256=None`` if none has)."""
    reasons = []
    for index in indexes:
        page_url = f"{index.rstrip('/')}/{canonicalize_name(name)}/"
        if page_url not in pages:
            text = fetch(page_url)
            pages[page_url] = parse_index_page(text, page_url) if text is not None else None
        files = pages[page_url]
        if files is None:
            reasons.append(f"{index} unreachable")
            continue
        f = pick(files, name, spec, accepted, sdist=sdist)
        if f is None:
            reasons.append(f"no {'sdist' if sdist else 'matching wheel'} of {name}{spec} on {index}")
            continue
        version = str(parse_sdist_filename(f.filename)[1] if sdist else parse_wheel_filename(f.filename)[1])
        return LockedFile(name, version, f.filename, f.url, f.sha256, index=index, kind="sdist" if sdist else "wheel",
                          size=f.size, upload_time=f.upload_time, reason="" if f.sha256 else f"{index} lists no sha256")
    version = next((str(s.version) for s in spec if s.operator == "=="), "0")
    return LockedFile(name, version, "", "", None, index=indexes[0], reason="; ".join(reasons))
