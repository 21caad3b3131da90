"""Ask a package index what it holds for pass-through names, before solving: ``lookup(names, index) ->
{name: IndexProject}``. The simple API (PEP 691 JSON, else PEP 503 HTML) over http(s), or a local folder (flat,
as ``--find-links``, or laid out as a simple index); ``lookup_or_folders`` reads install's ``--find-links`` folders
where the index gives no answer, or is not asked (``--offline``). Never raises for one name: a failure becomes that project's
``error``, and ``resolver.passthrough`` turns it into the plan's reason to refuse.
"""

from __future__ import annotations

import html.parser
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from resolver.inputs import file_url_path
from resolver.passthrough import IndexFile, IndexProject
from resolver.redact import redact

__all__ = ["lookup", "lookup_or_folders", "login_advice"]

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


def _file(filename: str, yanked: Any = False, requires_python: Any = None) -> IndexFile | None:
    name = unquote(filename.rsplit("/", 1)[-1].split("#")[0])
    try:
        if name.endswith(".whl"):
            _, version, _, wheel_tags = parse_wheel_filename(name)
            return IndexFile(name, version, bool(yanked) or yanked == "", requires_python or None, frozenset(wheel_tags))
        if name.endswith((".tar.gz", ".zip")):
            _, version = parse_sdist_filename(name)
            return IndexFile(name, version, bool(yanked) or yanked == "", requires_python or None, None)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


class _Anchors(html.parser.HTMLParser):
    """The ``<a>`` elements of a PEP 503 page: (text or href, data-yanked or None, data-requires-python)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, Any, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            a = dict(attrs)
            href = a.get("href") or ""
            self.found.append((href, a.get("data-yanked", False) if "data-yanked" in a else False,
                               a.get("data-requires-python")))


def _parse(body: str, content_type: str) -> list[IndexFile]:
    files: list[IndexFile] = []
    if "json" in content_type:
        import json

        data = json.loads(body)
        for f in data.get("files", []):
            got = _file(str(f.get("filename", "")), f.get("yanked", False), f.get("requires-python"))
            if got is not None:
                files.append(got)
        return files
    parser = _Anchors()
    parser.feed(body)
    for href, yanked, rp in parser.found:
        got = _file(urlsplit(href).path or href, "" if yanked is None else yanked, rp)
        if got is not None:
            files.append(got)
    return files


def _local(name: str, folder: Path, shown: str) -> IndexProject:
    page = folder / name / "index.html"
    if page.is_file():
        return IndexProject(name, shown, tuple(_parse(page.read_text(encoding="utf-8", errors="replace"), "html")))
    if not folder.is_dir():
        return IndexProject(name, shown, error=f"index folder {shown} does not exist")
    files = [f for f in (_file(p) for p in sorted(os.listdir(folder))) if f is not None]
    mine = tuple(f for f in files if _dist_name(f.filename) == name)
    return IndexProject(name, shown, mine, None if mine else f"{name} is not on {shown}")


def _dist_name(filename: str) -> str:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return ""


def login_advice(url: str, status: int) -> str:
    """Return what to do when ``url`` answered ``status`` (401/403): it refused the credentials in the URL, or wants
    a login it did not get; credentials masked. The one wording of it: the plan's pass-through lookup (``_remote``)
    and an install's failed step (``installers.login_hint``)."""
    if urlsplit(url).username is not None:
        return redact(f"{url} refused the credentials in its URL ({status}): check the user and token")
    return (f"{redact(url)} wants a login (it answered {status}): give the credentials in the URL (user:token@ before "
            f"the host), in ~/.netrc, or through keyring")


def _remote(name: str, index: str, timeout: float) -> IndexProject:
    import requests

    shown = redact(index)
    url = urljoin(index.rstrip("/") + "/", f"{name}/")
    try:
        resp = requests.get(url, headers={"Accept": ACCEPT}, timeout=timeout)
    except requests.RequestException as exc:
        return IndexProject(name, shown, error=f"could not check {name} on {shown} ({type(exc).__name__}); "
                                               "pass --index-url of a reachable index, or drop it", unreachable=True)
    if resp.status_code == 404:
        return IndexProject(name, shown, error=f"{name} does not exist on {shown}")
    if resp.status_code in (401, 403):  # the index's answer, not the name's: no "check the spelling"
        return IndexProject(name, shown, error=f"could not check {name}: {login_advice(index, resp.status_code)}",
                            unreachable=True)
    if resp.status_code != 200:
        return IndexProject(name, shown, error=f"{shown} answered HTTP {resp.status_code} for {name}")
    try:
        files = _parse(resp.text, resp.headers.get("Content-Type", ""))
    except ValueError as exc:
        return IndexProject(name, shown, error=f"{shown} sent an unreadable page for {name} ({exc})")
    return IndexProject(name, shown, tuple(files))


def lookup(names: list[str], index: str, timeout: float = 10.0) -> dict[str, IndexProject]:
    """Return what ``index`` (a simple-API URL, ``file://`` URL or folder) holds for each name, looked up at once."""
    names = [str(canonicalize_name(n)) for n in names]
    if not names:
        return {}
    if index.startswith("file://") or "://" not in index:
        folder = Path(file_url_path(index) if index.startswith("file://") else index)
        return {n: _local(n, folder, index) for n in names}
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return dict(zip(names, pool.map(lambda n: _remote(n, index, timeout), names)))


def _in_folders(name: str, folders: tuple[str, ...], missing: str) -> IndexProject:
    """Return the files the ``--find-links`` folders hold for ``name`` (``missing``: why there is no answer when they
    hold none)."""
    shown = "--find-links " + ", ".join(folders)
    files = [f for d in folders for f in _local(name, Path(d), d).files]
    if files:
        return IndexProject(name, shown, tuple(files))
    return IndexProject(name, shown, error=missing, unreachable=True)


def lookup_or_folders(names: list[str], index: str, folders: tuple[str, ...] = (), offline: bool = False,
                      timeout: float = 10.0) -> dict[str, IndexProject]:
    """Return ``lookup(names, index)``, with what the ``--find-links`` ``folders`` hold for each name the index gave
    no answer for, or for every name when ``offline`` (the index is not asked). An install takes a step's file from
    the folders when its index does not answer (``installers.check_reachable``, by ``installers.silent_hosts``' rule), so the pin is chosen from the files
    it will install from; a name the folders lack is refused naming them and how to fill them."""
    names = [str(canonicalize_name(n)) for n in names]
    if not folders:
        return lookup(names, index, timeout)
    shown = "--find-links " + ", ".join(folders)
    fill = "fill it with `gpustack download` of the same request (--dest DIR) where the index answers"
    if offline:
        return {n: _in_folders(n, folders, f"{n} is not in {shown} (--offline asks no index); {fill}") for n in names}
    projects = lookup(names, index, timeout)
    for n, p in projects.items():
        if p.unreachable:
            why = (p.error or "").split(";")[0]
            projects[n] = _in_folders(n, folders, f"{why}, and {n} is not in {shown}; pass --index-url of a reachable "
                                                  f"index, or {fill}")
    return projects
