"""``gpustack matrix refresh``: read what PyPI publishes and show how ``matrices/wheels.toml`` would change.

A maintainer command. For each package it reads PyPI's simple API (PEP 691 JSON, whose file URLs are absolute),
groups the wheels by release and platform with ``packaging.utils.parse_wheel_filename``, and records per
(release, platform) the CPython minors, the manylinux floor, requires-python, upload time and yanked state. With
``metadata=True`` it also reads each release's ``METADATA`` (PEP 658 ``.metadata`` when PyPI has it, else a few HTTP
range requests on the wheel's zip directory) for torch's CUDA pins (``nvidia-*-cuXX`` / ``cuda-toolkit``) and
xformers' torch pin; with ``arch=True`` the compiled arch list from inside the wheel (range reads of one member).

Nothing is rewritten silently: ``refresh()`` returns the new file text and a list of review lines (facts that
disagree with the hand-curated files); the command prints a unified diff and writes only with ``--write``. Rows
whose facts are unchanged keep their ``source`` and ``unverified`` flag; new or changed rows are ``unverified``
until a maintainer reviews them. A response that is not what PyPI serves raises ``RefreshError`` (exit 2); an index
that does not answer ``IndexUnreachable`` (exit 1).
"""

from __future__ import annotations

import difflib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from resolver.errors import BadInput, GpuStackError
from resolver.redact import redact

__all__ = ["PACKAGES", "DEFAULT_SINCE", "RefreshError", "IndexUnreachable", "Refresh", "refresh", "render", "diff",
           "glibc_of", "HttpRangeFile", "check_index", "parse_since", "check_packages"]

SIMPLE = "https://pypi.org/simple"
PACKAGES = ("torch", "xformers", "flash-attn", "flash-attn-4", "sageattention")
ACCEPT_JSON = "application/vnd.pypi.simple.v1+json"
TIMEOUT = 30.0
# The oldest release each package's rows cover unless --since says otherwise (the matrix plans nothing older).
DEFAULT_SINCE = {"torch": Version("1.12.0"), "xformers": Version("0.0.16")}

# PEP 600: the legacy manylinux aliases and the glibc each stands for.
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_ARCH = {"x86_64": "linux_x86_64", "aarch64": "linux_aarch64", "win_amd64": "win_amd64"}


class RefreshError(GpuStackError):
    """PyPI answered with something that is not a simple-API page or a wheel: nothing is written."""


class IndexUnreachable(RefreshError):
    """The index did not answer (no connection, a timeout, a 5xx): the network's fault, not the input's."""

    exit_code = 1


def check_index(url: str) -> str:
    """Return ``url`` when refresh can read it: a PEP 691 simple API over ``https://`` (``http://`` only on
    loopback, as every index gpustack takes). ``BadInput`` otherwise: ``requests`` reads no ``file:`` or ``ftp:``."""
    from urllib.parse import urlsplit

    from resolver.inputs import check_argument, check_index_url, is_loopback

    check_argument(url, "--index")  # one argument, no control characters
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or (parts.scheme == "http" and not is_loopback(parts.hostname)):
        # before check_index_url, whose plain-http refusal points to --allow-insecure-index: refresh has none
        raise BadInput(f"--index {redact(url)}: refresh reads a simple API over https:// (http:// only on this "
                       "machine); pass https://pypi.org/simple or your mirror's https:// URL")
    return check_index_url(url, "--index")


def check_packages(packages: Iterable[str]) -> tuple[str, ...]:
    """Return ``packages`` as canonical names (``flash_attn`` -> ``flash-attn``); ``BadInput`` for one refresh does
    not track."""
    out = []
    for p in packages:
        name = canonicalize_name(p)
        if name not in PACKAGES:
            raise BadInput(f"--package {p!r}: the matrix does not track it; refresh reads {', '.join(PACKAGES)}")
        out.append(name)
    return tuple(dict.fromkeys(out))


def parse_since(items: Iterable[str]) -> dict[str, Version]:
    """Return ``--since NAME=VERSION`` values by canonical name; ``BadInput`` for a malformed item or a package the
    matrix does not track. Whether the index lists that release is checked when its page is read."""
    out: dict[str, Version] = {}
    for item in items:
        name, sep, ver = item.partition("=")
        try:
            if not sep:
                raise InvalidVersion(item)
            version = Version(ver.strip())
        except InvalidVersion:
            raise BadInput(f"--since {item!r}: expected NAME=VERSION such as torch=2.5.0") from None
        canonical = canonicalize_name(name.strip())
        if canonical not in PACKAGES:
            raise BadInput(f"--since {item!r}: the matrix does not track {name.strip()!r}; name one of "
                           f"{', '.join(PACKAGES)}")
        out[canonical] = version
    return out


if TYPE_CHECKING:
    from requests import Session


def glibc_of(platform_tag: str) -> tuple[int, int] | None:
    """Return the glibc a manylinux platform tag needs (``manylinux_2_28_x86_64`` -> (2, 28)), or ``None``."""
    m = re.match(r"manylinux_(\d+)_(\d+)_", platform_tag)
    if m:
        return int(m.group(1)), int(m.group(2))
    return _LEGACY.get(platform_tag.split("_", 1)[0])


def _platform(platform_tag: str) -> str | None:
    if platform_tag == "any":
        return "any"
    if platform_tag == "win_amd64":
        return "win_amd64"
    if platform_tag.startswith("manylinux"):
        return _ARCH.get(platform_tag.split("_", 3)[-1] if platform_tag.startswith("manylinux_") else platform_tag.split("_", 1)[1])
    return None  # macOS, musllinux, win32, ...: not a platform gpustack plans for


# --- reading PyPI --------------------------------------------------------------------------------------------------


def _get(session: Session, url: str, what: str, not_found: str = "", **kwargs: Any) -> Any:
    import requests

    try:
        resp = session.get(url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise IndexUnreachable(f"{what}: {redact(url)}: {type(exc).__name__}: no answer; check the network and "
                               "retry") from None
    if resp.status_code >= 500:
        raise IndexUnreachable(f"{what}: {redact(url)}: HTTP {resp.status_code} (the server failed); retry later")
    if resp.status_code == 404 and not_found:
        raise RefreshError(f"{what}: {redact(url)}: HTTP 404: {not_found}")
    if resp.status_code not in (200, 206):
        raise RefreshError(f"{what}: {redact(url)}: HTTP {resp.status_code}")
    return resp


def simple_page(session: Session, package: str, index: str = SIMPLE) -> dict[str, Any]:
    """Return the PEP 691 JSON page of ``package``, checked for the keys refresh reads."""
    url = f"{index.rstrip('/')}/{package}/"
    resp = _get(session, url, f"simple API page of {package}", headers={"Accept": ACCEPT_JSON},
                not_found=f"the index has no {package}; name the packages it serves with --package")
    try:
        page = json.loads(resp.content)
    except ValueError:
        raise RefreshError(f"simple API page of {package}: {url}: not JSON (expected {ACCEPT_JSON})") from None
    files = page.get("files") if isinstance(page, dict) else None
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) and isinstance(f.get("url"), str) for f in files
    ):
        raise RefreshError(f"simple API page of {package}: {url}: malformed: 'files' must list objects with filename and url")
    return dict(page)


class HttpRangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file through HTTP range requests (for ``zipfile``)."""

    def __init__(self, session: Session, url: str, size: int) -> None:
        self.session, self.url, self.size, self.pos = session, url, size, 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self.pos)
        if n <= 0:
            return 0
        resp = _get(self.session, self.url, "wheel range read", headers={"Range": f"bytes={self.pos}-{self.pos + n - 1}"})
        data = resp.content
        if resp.status_code != 206 or len(data) != n:
            raise RefreshError(f"wheel range read: {self.url}: the server ignored the Range header")
        self.requests += 1
        view[:n] = data
        self.pos += n
        return n


def _open_wheel(session: Session, url: str, size: int) -> zipfile.ZipFile:
    raw = HttpRangeFile(session, url, size)
    try:
        return zipfile.ZipFile(io.BufferedReader(raw, buffer_size=1 << 20))
    except zipfile.BadZipFile:
        raise RefreshError(f"wheel range read: {url}: not a zip file") from None


def read_metadata(session: Session, file: Mapping[str, Any]) -> Metadata:
    """Return a wheel's core metadata: PEP 658 ``.metadata`` when served, else read from the zip by range requests."""
    url = str(file["url"])
    if file.get("core-metadata") or file.get("data-dist-info-metadata"):
        text = _get(session, url + ".metadata", "PEP 658 metadata").content
    else:
        with _open_wheel(session, url, int(file.get("size") or 0)) as zf:
            name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1), None)
            if name is None:
                raise RefreshError(f"wheel range read: {url}: no .dist-info/METADATA")
            text = zf.read(name)
    try:
        return Metadata.from_email(text, validate=False)
    except Exception as exc:  # packaging raises several types for broken headers
        raise RefreshError(f"METADATA of {file['filename']}: not core metadata: {exc}") from None


_ARCH_STRING = re.compile(rb"\x00((?:sm|compute)_\d+[af]?(?: (?:sm|compute)_\d+[af]?)+)\x00")


def read_arch_list(session: Session, file: Mapping[str, Any]) -> str | None:
    """Return the arch list compiled into a torch or xformers wheel, read from one member by range requests.

    torch: the ``CUDA_ARCH_FLAGS`` string in ``torch/lib/libtorch_python.so`` (what ``get_arch_list()`` returns);
    xformers: ``TORCH_CUDA_ARCH_LIST`` in ``xformers/cpp_lib.json``.
    """
    url = str(file["url"])
    with _open_wheel(session, url, int(file.get("size") or 0)) as zf:
        names = zf.namelist()
        if "xformers/cpp_lib.json" in names:
            info = json.loads(zf.read("xformers/cpp_lib.json"))
            env = info.get("env", {}) if isinstance(info, dict) else {}
            value = env.get("TORCH_CUDA_ARCH_LIST") if isinstance(env, dict) else None
            return str(value) if value else None
        member = next((n for n in names if n.endswith("torch/lib/libtorch_python.so")), None)
        if member is None:
            return None
        best = b""
        tail = b""
        with zf.open(member) as f:
            while chunk := f.read(1 << 22):
                buf = tail + chunk
                for m in _ARCH_STRING.finditer(buf):
                    if len(m.group(1)) > len(best):
                        best = m.group(1)
                tail = buf[-256:]
        return best.decode() or None


# --- rows ----------------------------------------------------------------------------------------------------------


@dataclass
class _Group:
    files: list[dict[str, Any]] = field(default_factory=list)
    pythons: set[str] = field(default_factory=set)
    abi3: set[str] = field(default_factory=set)
    floors: dict[str, tuple[tuple[int, int], str]] = field(default_factory=dict)  # python -> lowest floor, its tag
    tag: str = ""


def _groups(package: str, page: Mapping[str, Any], since: Version | None) -> dict[tuple[Version, str], _Group]:
    out: dict[tuple[Version, str], _Group] = {}
    for f in page["files"]:
        name = f["filename"]
        if not name.endswith(".whl"):
            continue
        try:
            _, version, _, tags = parse_wheel_filename(name)
        except (InvalidWheelFilename, InvalidVersion):
            raise RefreshError(f"simple API page of {package}: malformed wheel file name {name!r}") from None
        if version.is_prerelease or version.is_devrelease or version.local or (since and version < since):
            continue
        for tag in tags:
            plat = _platform(tag.platform)
            if plat is None or tag.abi.endswith("t"):  # free-threaded builds are not a separate target here
                continue
            g = out.setdefault((version, plat), _Group())
            if f not in g.files:
                g.files.append(f)
            m = re.fullmatch(r"cp3(\d+)", tag.interpreter)
            pure = re.fullmatch(r"py3(\d*)", tag.interpreter)
            if m and tag.abi == "abi3":
                g.abi3.add(f"3.{m.group(1)}")
                key = "abi3"
            elif m:
                g.pythons.add(f"3.{m.group(1)}")
                key = f"3.{m.group(1)}"
            elif pure:
                if pure.group(1):
                    g.abi3.add(f"3.{pure.group(1)}")  # py39-none-...: every Python from 3.9
                key = "py3"
            else:
                continue
            floor = glibc_of(tag.platform) or (0, 0)
            if key not in g.floors or floor < g.floors[key][0]:
                g.floors[key] = (floor, tag.platform)
    return out


def _releases(page: Mapping[str, Any]) -> set[Version]:
    """Return the releases a simple-API page lists: PEP 700 ``versions`` when served, and every file's version."""
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    out: set[Version] = set()
    for v in page.get("versions") or []:
        try:
            out.add(Version(str(v)))
        except InvalidVersion:
            continue
    for f in page["files"]:
        name = f["filename"]
        try:
            out.add(parse_wheel_filename(name)[1] if name.endswith(".whl") else parse_sdist_filename(name)[1])
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
    return out


def _py_key(p: str) -> int:
    return int(p.split(".")[1])


_MACHINE = {"linux_x86_64": "x86_64", "linux_aarch64": "aarch64", "win_amd64": "AMD64"}


def _cuda_pin(meta: Metadata, platform: str) -> str | None:
    """Return torch's CUDA build on ``platform`` from its Requires-Dist (``nvidia-cuda-runtime-cu12==12.4.127``
    -> ``cu124``; none that applies there -> ``cpu``). Markers are evaluated for that platform."""
    env = {"platform_machine": _MACHINE[platform], "platform_system": "Windows" if platform == "win_amd64" else "Linux",
           "sys_platform": "win32" if platform == "win_amd64" else "linux", "extra": ""}
    for req in meta.requires_dist or []:
        r = Requirement(str(req))
        if r.marker is not None and not r.marker.evaluate(env):
            continue
        if r.name in ("nvidia-cuda-runtime-cu11", "nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime", "cuda-toolkit") \
                or re.fullmatch(r"nvidia-cuda-runtime-cu\d+", r.name):
            pins = [s.version for s in r.specifier if s.operator == "=="]
            if pins:
                v = Version(pins[0])
                return f"cu{v.major}{v.minor}"
    # No CUDA requirement: Windows wheels are CPU builds; on Linux torch <= 1.12 bundled CUDA inside the wheel,
    # so METADATA cannot tell a CPU wheel from a CUDA one there (torch.toml's pypi_* fields say which).
    return "cpu" if platform == "win_amd64" else None


def _torch_pin(meta: Metadata) -> str | None:
    for req in meta.requires_dist or []:
        r = Requirement(str(req))
        if r.name == "torch" and r.marker is None:
            return str(r.specifier)
    return None


@dataclass
class Refresh:
    """What a refresh found: the new ``wheels.toml`` rows and lines for the maintainer to review."""

    rows: list[dict[str, Any]]
    review: list[str]


def package_rows(session: Session, package: str, *, since: Version | None = None, metadata: bool = False,
                 arch: bool = False, today: str = "", index: str = SIMPLE,
                 torch_pins: Mapping[str, str] | None = None,
                 since_given: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Return the ``[[wheel]]`` rows of one package (and review lines) read from the index. With ``since_given``
    (the user's ``--since``), ``since`` must be a release the index lists: ``BadInput`` otherwise."""
    page = simple_page(session, package, index)
    url = f"{index.rstrip('/')}/{package}/"
    if since_given and since is not None:
        listed = _releases(page)
        if since not in listed:
            span = f"its releases run {min(listed)} to {max(listed)}" if listed else "it lists no release"
            raise BadInput(f"--since {package}={since}: {redact(index)} lists no {package} {since} ({span}); "
                           "name a release it lists")
    rows: list[dict[str, Any]] = []
    review: list[str] = []
    for (version, plat), g in sorted(_groups(package, page, since).items(), key=lambda kv: (kv[0][0], kv[0][1])):
        floors = [g.floors[p] for p in sorted(g.floors)]
        floor, tag = max(floors) if floors else ((0, 0), "any")
        pythons = sorted(g.pythons, key=_py_key)
        abi3 = sorted(g.abi3, key=_py_key)
        row: dict[str, Any] = {"package": package, "version": str(version), "platform": plat}
        if abi3 and not pythons:
            row["pythons"], row["abi3"] = abi3[:1], True
        else:
            row["pythons"] = pythons
        row["platform_tag"] = tag
        if plat.startswith("linux_"):
            row["glibc"] = f"{floor[0]}.{floor[1]}"
        rps = {str(f.get("requires-python") or "") for f in g.files}
        if len(rps) == 1 and rps != {""}:
            row["requires_python"] = rps.pop()
        times = sorted(str(f["upload-time"]) for f in g.files if isinstance(f.get("upload-time"), str))
        if times:
            row["upload_time"] = times[0][:10]
        if all(f.get("yanked") for f in g.files):
            row["yanked"] = True
        if metadata and package in ("torch", "xformers") and plat != "any":
            best = max(g.files, key=lambda f: str(f["filename"]))
            meta = read_metadata(session, best)
            build = _cuda_pin(meta, plat) if package == "torch" else None
            if build:
                row["build"] = build
            pin = _torch_pin(meta) if package == "xformers" else None
            known = (torch_pins or {}).get(str(version))
            if pin and (known is None or SpecifierSet(known.removeprefix("torch").strip(" ()")) != SpecifierSet(pin)):
                review.append(f"xformers {version} {plat}: wheel requires torch {pin}; xformers.toml says {known}")
        if arch and package in ("torch", "xformers") and plat.startswith("linux_"):
            best = max(g.files, key=lambda f: str(f["filename"]))
            review.append(f"{package} {version} {plat}: compiled arch list {read_arch_list(session, best)!r}")
        row["source"] = f"PyPI simple API {url} (read by gpustack matrix refresh{' ' + today if today else ''})"
        rows.append(row)
    if not rows and since is not None and _groups(package, page, None):
        review.append(f"{package}: no wheels for Linux or Windows from {since} on")
    elif not rows:
        review.append(f"{package}: PyPI publishes no wheels for Linux or Windows (sdist only): its binaries come from elsewhere")
    return rows, review


_FACT_KEYS = ("pythons", "abi3", "platform_tag", "glibc", "requires_python", "build", "yanked")


def _same_facts(prev: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    # build is read only with --metadata: a refresh without it leaves the reviewed value alone
    return all(prev.get(k) == new.get(k) for k in _FACT_KEYS if k != "build" or "build" in new)


def merge(old: Iterable[Mapping[str, Any]], new: Iterable[dict[str, Any]],
          since: Mapping[str, Version | None] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Merge fresh rows into the current ones: unchanged facts keep their reviewed row; new or changed rows are
    ``unverified``; rows PyPI no longer lists are kept and reported (never dropped silently). Rows older than their
    package's ``since`` were not read, so they are kept without a word."""
    current = {(r.get("package"), r.get("version"), r.get("platform")): dict(r) for r in old}
    out: list[dict[str, Any]] = []
    review: list[str] = []
    seen = set()
    for r in new:
        key = (r["package"], r["version"], r["platform"])
        seen.add(key)
        prev = current.get(key)
        if prev is not None and _same_facts(prev, r):
            out.append(prev)
            continue
        row = dict(r)
        if prev is not None and "build" not in row and "build" in prev:
            row["build"] = prev["build"]
        row["unverified"] = True
        review.append(f"{'changed' if prev else 'new'}: {key[0]} {key[1]} {key[2]} (unverified until reviewed)")
        out.append(row)
    for key, prev in current.items():
        floor = (since or {}).get(str(key[0]))
        unread = floor is not None and Version(str(key[1])) < floor
        if key not in seen and not unread and any(k[0] == key[0] for k in seen):
            review.append(f"kept: {key[0]} {key[1]} {key[2]} is in wheels.toml but PyPI no longer lists it")
            out.append(prev)
        elif key not in seen:
            out.append(prev)
    out.sort(key=lambda r: (str(r["package"]), Version(str(r["version"])), str(r["platform"])))
    return out, review


HEADER = """\
# What PyPI publishes per release and platform: CPython minors with a wheel (free-threaded builds excluded; with
# abi3 = true every Python from the one listed), the manylinux floor (glibc), requires-python and the build PyPI serves.
# Written by `gpustack matrix refresh` from PyPI's simple API (PEP 691 JSON); rows marked unverified are new or
# changed and await review. docs/matrix.md says what PyPI cannot tell and where those facts come from.
"""


def render(rows: Iterable[Mapping[str, Any]]) -> str:
    """Return ``wheels.toml`` text for ``rows`` (one ``[[wheel]]`` table each, keys in a fixed order)."""
    import tomli_w

    order = ("package", "version", "platform", "build", "pythons", "abi3", "platform_tag", "glibc", "requires_python",
             "upload_time", "yanked", "unverified", "note", "source")
    parts = [HEADER]
    for r in rows:
        ordered = {k: r[k] for k in order if k in r}
        ordered.update({k: v for k, v in r.items() if k not in ordered})
        lines = []
        for k, v in ordered.items():
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                lines.append(f"{k} = {json.dumps(v, ensure_ascii=True)}\n")  # one line: a JSON string list is TOML
            else:
                lines.append(tomli_w.dumps({k: v}))
        parts.append("[[wheel]]\n" + "".join(lines))
    return "\n".join(parts)


def refresh(session: Session, current: Iterable[Mapping[str, Any]], packages: Iterable[str] = PACKAGES, *,
            since: Mapping[str, Version] | None = None, metadata: bool = False, arch: bool = False, today: str = "",
            index: str = SIMPLE, torch_pins: Mapping[str, str] | None = None) -> Refresh:
    """Read every package from the index and merge it into ``current`` (the rows of today's ``wheels.toml``).
    ``since`` holds the user's ``--since`` (each must be a release the index lists); others start at
    ``DEFAULT_SINCE``."""
    fresh: list[dict[str, Any]] = []
    review: list[str] = []
    given = dict(since or {})
    floors = {p: given.get(p, DEFAULT_SINCE.get(p)) for p in packages}
    for p in packages:
        rows, notes = package_rows(session, p, since=floors[p], metadata=metadata, arch=arch, today=today, index=index,
                                   torch_pins=torch_pins, since_given=p in given)
        fresh += rows
        review += notes
    merged, changes = merge(current, fresh, floors)
    return Refresh(merged, changes + review)


def diff(old_text: str, new_text: str, name: str = "matrices/wheels.toml") -> str:
    """Return a unified diff between two versions of a matrix file (empty when equal)."""
    return "".join(difflib.unified_diff(old_text.splitlines(True), new_text.splitlines(True), f"a/{name}", f"b/{name}"))
