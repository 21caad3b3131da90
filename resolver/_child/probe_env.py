"""Print, as one JSON line on stdout, what the interpreter running this script is and has installed.

The one reader of a target interpreter: run as ``python_exe probe_env.py --mode MODE`` by ``resolver.target`` (for
detect, build, envstate and installers). Every mode gives ``python_exe``, ``python`` (``3.11``), ``python_tag``
(``cp311``), ``platform`` (the wheel platform tag) and ``prefix`` (``sys.prefix``); then

* ``full`` (default): every installed distribution, glibc, the PEP 508 marker environment, and torch's CUDA, compiled architectures and C++ ABI,
  read by importing torch (``resolver.detect``);
* ``light``: no import at all: torch's ``version.py`` as text, which build tools are missing, whether pip is there
  (``resolver.build``, ``resolver.installers``);
* ``installed``: every distribution with the URL it came from and whether it is editable, its metadata folder, the
  ``~``-folders a killed pip leaves behind, what the site-packages folders hold, and torch's ``version.py`` text
  (``resolver.envstate``: the snapshot and the after-step check of an install, in one child).

``dist_files`` (which files of an environment a distribution owns) and ``dist_requires`` are also imported by
gpustack itself, for a metadata folder this script reported: the transaction's backup links exactly those files, for
the distributions a step can change.

It must run on any Python 3.8+ the user points at, with nothing but the standard library, and it must not crash
when torch is absent or broken: every problem becomes an entry of ``"notes"``. Versions come from the distributions'
metadata files, found as ``importlib.metadata`` finds them (``_distributions``; no package is imported for its
version); torch alone is imported, and only in ``full``.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import re
import sys
import sysconfig
import time

TYPE_CHECKING = False  # typing's import is a tenth of a reading: only mypy needs these names (it takes this as true)
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple


def _metadata() -> Any:
    """Return ``importlib.metadata``, imported on first use (most readings do without it: ``_distributions``), or
    ``None`` on Python < 3.8."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8 has no importlib.metadata
        return None
    return metadata


def _normalize(name: str) -> str:
    """Return the PEP 503 normalized form of a distribution name (``Flash_Attn`` -> ``flash-attn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _read(path: str) -> Optional[str]:
    """Return the text of the file at ``path``, or ``None`` where there is none to read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:  # missing, a folder, unreadable: as importlib.metadata's ``read_text``
        return None


def _name_version(folder: str) -> Tuple[Optional[str], Optional[str]]:
    """Return the ``Name`` and ``Version`` fields of the metadata file of ``folder`` as importlib.metadata reads
    them: the first non-empty one of ``METADATA``, ``PKG-INFO`` and the folder itself (an egg-info may be that
    file), its header parsed by the email parser's rules (``_header_fields``)."""
    for path in (os.path.join(folder, "METADATA"), os.path.join(folder, "PKG-INFO"), folder):
        text = _header_text(path)
        if text:  # none, or an empty one: importlib.metadata reads the next
            fields = _header_fields(text)
            return fields.get("name"), fields.get("version")
    return None, None


def _header_text(path: str) -> Optional[str]:
    """Return the start of the metadata file ``path``, through the end of its header (the description after it can
    be long), or ``None`` where there is none to read (missing, a folder, unreadable: as importlib.metadata's
    ``read_text``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(8192)
            while "\n\n" not in text:
                more = fh.read(65536)
                if not more:
                    break
                text += more
            return text
    except OSError:
        return None


_FIELD_LINE = re.compile(r"[\041-\071\073-\176]*:")  # a field's first line: email.feedparser's headerRE


def _header_fields(text: str, wanted: Tuple[str, ...] = ("name", "version")) -> Dict[str, str]:
    """Return the ``wanted`` header fields of a metadata file's ``text`` (lower-cased name -> value of its first
    occurrence), as ``importlib.metadata`` reads them (``_header_items``). Reading stops once every wanted field is
    complete."""
    fields: Dict[str, str] = {}
    for key, value in _header_items(text):
        if key in wanted and key not in fields:
            fields[key] = value
            if len(fields) == len(wanted):
                break
    return fields


def _header_items(text: str) -> Iterator[Tuple[str, str]]:
    """Yield each header field of a metadata file's ``text`` as (lower-cased name, value), in order, by the rules of
    ``email.parser`` with the ``compat32`` policy, which ``importlib.metadata`` reads them with: the header ends at
    the first line that is neither a field (``name:``, the name printable ASCII) nor a continuation (leading blank);
    a continuation line belongs to the field before it, as it is; a value loses its leading blanks and its final line
    break; a first ``From `` line (mbox), a field with no name and a continuation with no field before it are
    dropped."""
    end = text.find("\n\n")
    # the header ends at the first empty line; lines break at "\n" alone, as the email parser's buffer breaks them
    lines = io.StringIO(text if end < 0 else text[:end + 1]).readlines()
    current: List[str] = []

    def field() -> Tuple[str, str]:
        name, _, value = current[0].partition(":")
        value = (value.lstrip(" \t") + "".join(current[1:])).rstrip("\r\n")
        if "\n" in value:  # a folded value, re-indented as importlib.metadata 3.10+ does (_repair_headers)
            import textwrap

            value = textwrap.dedent(" " * 8 + value)
        return name.lower(), value

    for number, line in enumerate(lines):
        if line[0] in " \t":
            if current:
                current.append(line)
            continue
        if current:
            yield field()
            current = []
        if line.startswith("From "):
            if number == 0:
                continue  # an mbox envelope line
            if number == len(lines) - 1:
                break  # the body's first line
            continue
        if not _FIELD_LINE.match(line):
            break  # the empty line, or the first line of the body
        if line[0] != ":":
            current.append(line)
    if current:
        yield field()


def _metadata_folders(search: List[str]) -> Optional[List[str]]:
    """Return every metadata folder on ``search`` in the order ``importlib.metadata``'s path finder finds them
    (3.10+, ``Lookup``): path entry by path entry; in each, its ``*.dist-info`` and ``*.egg-info`` entries (a folder,
    or an egg-info file) grouped by the project name their own name starts with, groups and members in listing
    order; then an ``.egg`` folder's ``EGG-INFO``. ``None`` where an entry is a file (a zip: only importlib.metadata
    reads inside those)."""
    out: List[str] = []
    for entry in search:
        try:
            children = os.listdir(entry or ".")
        except NotADirectoryError:
            return None
        except OSError:
            continue  # missing or unreadable: importlib.metadata finds nothing there either
        groups: Dict[str, List[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                project = low.rpartition(".")[0].partition("-")[0]
                groups.setdefault(_normalize(project), []).append(os.path.join(entry, child))
        for members in groups.values():
            out.extend(members)
        if os.path.basename(entry).lower().endswith(".egg"):
            out.extend(os.path.join(entry, c) for c in children if c.lower() == "egg-info")
    return out


def _library_needed() -> bool:
    """Return whether a finder on ``sys.meta_path`` other than the path finder finds distributions (a zipapp's or a
    bundler's): only ``importlib.metadata.distributions()`` asks those."""
    from importlib.machinery import PathFinder

    return any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path)


def _distributions(search: Optional[List[str]] = None) -> Iterator[Tuple[str, str, str, Any]]:
    """Yield (normalized name, version, metadata folder, read) of every installed distribution, the first on
    sys.path of each name (``search`` instead of sys.path when given); ``read(file)`` returns the text of a file of
    its metadata folder, or ``None``.

    The distributions are the ones ``importlib.metadata`` finds, in its order (``tests/test_probe_env_reader.py``
    holds the two side by side), read here without it where every path entry is a folder: importing it and its
    email parser was two thirds of an ``installed`` reading. Each metadata file is read only as far as its ``Name``
    and ``Version`` (``_name_version``). Where the library must answer (a zip on the path, another finder of
    distributions), it does.

    The ``~``-prefixed folders a killed pip leaves in site-packages (its stash of what it was uninstalling) still say
    ``Name: torch`` in their dist-info: they are skipped, as ``pip freeze`` skips them.
    """
    folders = _metadata_folders(sys.path if search is None else search)
    if folders is None or (search is None and _library_needed()):
        yield from _library_distributions(search)
        return
    seen = set()
    for folder in folders:
        if os.path.basename(folder).startswith("~"):
            continue
        name, version = _name_version(folder)
        if not name or not version:
            continue
        key = _normalize(name)
        if key not in seen:
            seen.add(key)
            yield key, version, folder, lambda file, folder=folder: _read(os.path.join(folder, file))


def _library_distributions(search: Optional[List[str]]) -> Iterator[Tuple[str, str, str, Any]]:
    """``_distributions`` by ``importlib.metadata`` itself (each metadata file parsed once: ``dist.metadata``
    parses it again on every access)."""
    metadata = _metadata()
    if metadata is None:  # pragma: no cover - Python < 3.8
        return
    seen = set()
    found = metadata.distributions() if search is None else \
        metadata.MetadataPathFinder.find_distributions(metadata.DistributionFinder.Context(path=search))
    for dist in found:
        folder = str(getattr(dist, "_path", ""))
        if os.path.basename(folder).startswith("~"):
            continue
        meta = dist.metadata
        name, version = meta["Name"], meta["Version"]
        if not name or not version:
            continue
        key = _normalize(name)
        if key not in seen:
            seen.add(key)
            yield key, version, folder, dist.read_text


def installed_packages() -> Dict[str, str]:
    """Return every installed distribution as normalized name -> version (first one on sys.path wins)."""
    return {key: version for key, version, _, _ in _distributions()}


def installed_dists(paths: Optional[Dict[str, str]] = None,
                    search: Optional[List[str]] = None) -> Dict[str, List[Any]]:
    """Return every installed distribution as normalized name -> [version, URL it came from, editable]; fill
    ``paths`` (when given) with each one's metadata folder (``.dist-info``/``.egg-info``)."""
    found: Dict[str, List[Any]] = {}
    for key, version, folder, read in _distributions(search):
        if paths is not None and folder:
            paths[key] = folder
        url, editable = None, False
        text = read("direct_url.json")
        if text:
            try:
                direct = json.loads(text)
                url, editable = direct.get("url"), bool(direct.get("dir_info", {}).get("editable"))
            except ValueError:
                pass
        found[key] = [version, url, editable]
    return found


def default_site_dirs() -> List[str]:
    """Return this interpreter's site-packages folders (purelib, platlib), sorted, each once."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def site_listing(dirs: Optional[List[str]] = None) -> Dict[str, List[str]]:
    """Return each site-packages folder (``default_site_dirs``, or ``dirs``) with its entries, sorted."""
    return {d: sorted(os.listdir(d)) for d in (default_site_dirs() if dirs is None else dirs) if os.path.isdir(d)}


def site_stamps(dirs: Optional[List[str]] = None) -> Dict[str, Any]:
    """Return when this reading began (``read_at``, ns since the epoch) and each site-packages folder's modification
    time and inode then (``stamps``: folder -> [mtime_ns, inode], ``[-1, -1]`` for none), taken before anything is
    read: installing, removing or replacing a distribution adds or removes entries of its folder, which changes
    both (``resolver.target.still_current``)."""
    read_at = time.time_ns()
    stamps = {}
    for d in default_site_dirs() if dirs is None else dirs:
        try:
            st = os.stat(d)
        except OSError:
            stamps[d] = [-1, -1]  # none yet: one made later is a change too
            continue
        stamps[d] = [st.st_mtime_ns, st.st_ino]
    return {"read_at": read_at, "stamps": stamps}


def pth_paths(listing: Dict[str, List[str]]) -> List[str]:
    """Return what the ``.pth`` files of ``listing`` can add to sys.path, sorted: each path line as ``site`` resolves
    it (an existing folder), and each ``import`` line that mentions a path (``site`` runs those; one that does not,
    such as setuptools' ``distutils-precedence.pth`` or an editable install's finder, leaves sys.path alone)."""
    out = set()
    for d, entries in listing.items():
        for e in entries:
            if not e.endswith(".pth"):
                continue
            try:
                with open(os.path.join(d, e), encoding="utf-8", errors="replace") as fh:
                    lines = fh.read().splitlines()
            except OSError:
                out.add("unreadable:" + os.path.join(d, e))
                continue
            for line in lines:
                if line.startswith(("import ", "import\t")):
                    if "path" in line:
                        out.add("import:" + line)
                elif line.strip() and not line.startswith("#"):
                    folder = os.path.join(d, line.rstrip())
                    if os.path.exists(folder):
                        out.add(os.path.normcase(os.path.abspath(folder)))
    return sorted(out)


def debris(listing: Optional[Dict[str, List[str]]] = None) -> List[str]:
    """Return the ``~``-prefixed folders a killed pip left in site-packages, sorted."""
    found = site_listing() if listing is None else listing
    return sorted(os.path.join(d, e) for d, entries in found.items() for e in entries if e.startswith("~"))


def dist_requires(info_path: str) -> List[str]:
    """Return the ``Requires-Dist`` lines of the distribution whose metadata folder is ``info_path``.

    A ``.dist-info`` folder's ``METADATA`` headers are read here (``_requires_dist``); anything else (an egg-info's
    ``requires.txt``) through ``importlib.metadata``, whose import (email, zipfile, csv) costs more than reading
    every dependency of a torch install after each step."""
    if info_path.endswith(".dist-info"):
        found = _requires_dist(os.path.join(info_path, "METADATA"))
        if found is not None:
            return found
    metadata = _metadata()
    if metadata is None:  # pragma: no cover - Python < 3.8
        return []
    import pathlib

    return list(metadata.PathDistribution(pathlib.Path(info_path)).requires or [])


def _requires_dist(path: str) -> Optional[List[str]]:
    """Return the ``Requires-Dist`` values of the core metadata file ``path`` as ``importlib.metadata`` gives them
    (``_header_items``), or ``None`` when it cannot be read."""
    text = _header_text(path)
    return None if text is None else [value for key, value in _header_items(text) if key == "requires-dist"]


def dist_files(info_path: str, prefix: str) -> List[str]:
    """Return the files the distribution whose metadata folder is ``info_path`` owns inside ``prefix`` (its
    ``RECORD``, or an egg's ``installed-files.txt``), as paths relative to ``prefix``; ``__pycache__`` left out (the
    interpreter rewrites it). Files outside ``prefix`` (a ``.pth``-added folder of another environment) are not
    this environment's: left out."""
    metadata = _metadata()
    if metadata is None:  # pragma: no cover - Python < 3.8
        return []
    import pathlib

    dist = metadata.PathDistribution(pathlib.Path(info_path))
    root = os.path.realpath(str(dist.locate_file("")))  # one realpath per distribution, not per file
    real_prefix = os.path.realpath(prefix)
    out = []
    for f in dist.files or ():
        p = os.path.normpath(os.path.join(root, str(f)))
        if p.startswith(real_prefix + os.sep) and "__pycache__" not in p:
            out.append(p[len(real_prefix) + 1:])
    return out


def glibc_version() -> Optional[str]:
    """Return the glibc version this interpreter runs on (``"2.36"``), or ``None`` (musl, Windows, macOS)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, OSError, ValueError):
        text = None
    if text and text.startswith("glibc "):
        return text.split()[1]
    import platform

    lib, version = platform.libc_ver()
    return version if lib == "glibc" and version else None


def platform_tag() -> str:
    """Return the wheel platform tag of this interpreter: ``linux_x86_64``, ``linux_aarch64``, ``win_amd64``.

    The one computation of it: gpustack imports this function for its own interpreter (``pipeline.this_platform``).
    """
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def torch_version_py(search: Optional[List[str]] = None) -> Optional[str]:
    """Return the text of the installed torch's ``torch/version.py`` without importing torch (found on sys.path, or
    on ``search``), or ``None``."""
    if search is None:
        spec = importlib.util.find_spec("torch")
    else:
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec("torch", search)
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(loc, "version.py")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                return fh.read()
    return None


def missing_build_tools() -> List[str]:
    """Return which of setuptools and wheel a source build without isolation lacks (setuptools 71+ has
    ``bdist_wheel`` itself, so it needs no wheel)."""
    missing = [m for m in ("setuptools", "wheel") if importlib.util.find_spec(m) is None]
    if missing == ["wheel"]:
        version = next((v for k, v, _, _ in _distributions() if k == "setuptools"), "")
        try:
            if int(version.split(".")[0]) >= 71:
                missing.remove("wheel")
        except ValueError:
            pass
    return missing


def torch_facts(meta_version: str, notes: List[str]) -> Dict[str, Any]:
    """Return torch.version.cuda, the compiled arch list and the C++ ABI flag, read by importing torch (and
    ``torch.__version__`` under ``"torch"`` when it only adds a local tag to the metadata's ``meta_version``).

    The arch list is the compile-time string behind ``torch.cuda.get_arch_list()``, which itself answers ``[]``
    without a visible GPU; a build that does not expose it gives ``None`` (read nothing rather than guess).
    """
    facts: Dict[str, Any] = {"torch_cuda": None, "torch_arch_list": None, "torch_cxx11_abi": None}
    try:
        # Some builds print on import; keep stdout for the JSON line.
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            torch = importlib.import_module("torch")  # only this child ever imports torch
    except BaseException as exc:  # a broken torch raises anything from ImportError to OSError
        notes.append("import torch failed: %s: %s" % (type(exc).__name__, exc))
        return facts
    # A local build's metadata may say 2.11.0 where the binary says 2.11.0+cu130: the tag is worth keeping.
    imported = str(getattr(torch, "__version__", ""))
    if meta_version and imported.startswith(meta_version + "+"):
        facts["torch"] = imported
    version = getattr(torch, "version", None)
    facts["torch_cuda"] = getattr(version, "cuda", None)
    c_module = getattr(torch, "_C", None)
    abi = getattr(c_module, "_GLIBCXX_USE_CXX11_ABI", None)
    facts["torch_cxx11_abi"] = bool(abi) if abi is not None else None
    get_flags = getattr(c_module, "_cuda_getArchFlags", None)
    if facts["torch_cuda"] and get_flags is not None:
        try:
            flags = get_flags()
        except Exception as exc:
            notes.append("torch._C._cuda_getArchFlags() failed: %s" % exc)
            flags = None
        if flags:
            facts["torch_arch_list"] = str(flags).split()
    return facts


def identity() -> Dict[str, Any]:
    """Return what every mode gives: the interpreter, its Python version and tag, platform tag and prefix."""
    return {
        "python_exe": sys.executable,
        "python": "%d.%d" % sys.version_info[:2],
        "python_tag": "cp%d%d" % sys.version_info[:2],
        "platform": platform_tag(),
        "prefix": sys.prefix,
    }


def marker_environment() -> Dict[str, str]:
    """Return this interpreter's PEP 508 marker environment: ``packaging.markers.default_environment()`` where this
    interpreter has packaging, else the same values computed as packaging computes them (this script runs on Python
    3.8+ with the standard library alone; packaging 26 needs 3.10). ``python_full_version`` is the patch release
    (``3.11.7``), which the target's ``X.Y`` alone cannot give: a lock's markers on it are judged by this."""
    try:
        from packaging.markers import default_environment  # type: ignore[import-not-found,unused-ignore]

        return {str(k): str(v) for k, v in dict(default_environment()).items()}
    except Exception:  # absent, or too old or broken to import: PEP 508's own definitions, as packaging's
        pass
    return pep508_environment()


def pep508_environment() -> Dict[str, str]:
    """Return this interpreter's PEP 508 marker environment from the standard library, computed as packaging's
    ``default_environment`` computes it (the ``installed`` reading takes this: importing packaging in the child
    would cost more than its whole reading)."""
    import platform

    info = sys.implementation.version
    iver = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        iver += info.releaselevel[0] + str(info.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": iver,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def probe() -> Dict[str, Any]:
    """Return the ``full`` facts as a JSON-ready dict (keys mirror ``resolver.probes.InstalledEnv``)."""
    notes: List[str] = []
    packages = installed_packages()
    facts: Dict[str, Any] = {
        **identity(),
        "glibc": glibc_version(),
        "torch": packages.get("torch"),
        "xformers": packages.get("xformers"),
        "flash_attn": packages.get("flash-attn"),
        "packages": packages,
        "torch_cuda": None,
        "torch_arch_list": None,
        "torch_cxx11_abi": None,
        "markers": marker_environment(),
    }
    if facts["torch"] is not None:
        facts.update(torch_facts(facts["torch"], notes))
    facts["notes"] = notes
    return facts


def probe_light() -> Dict[str, Any]:
    """Return the ``light`` facts: nothing is imported."""
    return {**identity(), "torch_version_py": torch_version_py(), "missing_build_tools": missing_build_tools(),
            "has_pip": has_pip()}


def has_pip() -> bool:
    """Return whether this interpreter can run ``-m pip`` (found as an import would find it; nothing imported)."""
    return importlib.util.find_spec("pip") is not None


def read_site(site_dirs: Optional[List[str]] = None) -> Dict[str, Any]:
    """Return the first part of an ``installed`` reading: the site-packages folders' stamps (taken first), their
    listing (``toplevel``), what their ``.pth`` files add to sys.path (``pth``) and a killed pip's ``debris``."""
    dirs = default_site_dirs() if site_dirs is None else site_dirs
    stamps = site_stamps(dirs)
    listing = site_listing(dirs)
    return {"toplevel": listing, "pth": pth_paths(listing), "debris": debris(listing), **stamps}


def probe_installed(search: Optional[List[str]] = None, site_dirs: Optional[List[str]] = None,
                    site: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Return the ``installed`` facts: each distribution with its origin and metadata folder, a killed pip's debris,
    the site-packages listing, what its ``.pth`` files add to sys.path, sys.path, torch's ``version.py`` (read as
    text: nothing is imported) and the interpreter's PEP 508 marker environment.

    gpustack itself calls it again after an install step with the ``search`` path and ``site_dirs`` a child reported
    (``resolver.target.read_again``): the same reading of the same folders, without the child, while the ``.pth``
    files add the same entries to sys.path; it passes the ``site`` (``read_site``) it decided that on, and gets no
    identity (the caller has it)."""
    out = read_site(site_dirs) if site is None else dict(site)
    paths: Dict[str, str] = {}
    out.update(dists=installed_dists(paths, search), dist_paths=paths, torch_version_py=torch_version_py(search))
    if search is None:
        out.update(identity(), sys_path=list(sys.path), has_pip=has_pip(), markers=pep508_environment())
    return out


MODES = {"full": probe, "light": probe_light, "installed": probe_installed}


if __name__ == "__main__":
    # argv is ``[--mode MODE]``, written by gpustack alone; argparse would add a tenth of the reading's time
    args = sys.argv[1:]
    if args and (len(args) != 2 or args[0] != "--mode" or args[1] not in MODES):
        sys.exit("usage: probe_env.py [--mode {%s}]" % ",".join(sorted(MODES)))
    result = MODES[args[1] if args else "full"]()
    sys.stdout.write("\n" + json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
