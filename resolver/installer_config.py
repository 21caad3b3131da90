"""The PyPI mirror a user configured in pip's or uv's own configuration files, read the way they read it, so that
gpustack's explicit ``--index-url`` (pip) / ``--default-index`` (uv) names the same mirror instead of overriding it
(``pipeline.pypi_index`` asks here after the command line and the environment variables).

Hand-written, small, on ``configparser``, ``toml_read`` (tomli) and ``platformdirs`` (pip's own appdirs): asking the installer
(``pip config list``) costs a child process (0.2 s) in every plan, and uv has no command that prints its settings.

pip (https://pip.pypa.io/en/stable/topics/configuration/; ``pip._internal.configuration``): the files are read in
the order global (``platformdirs.site_config_dir("pip")`` dirs, then ``/etc``), user (``~/.pip/pip.conf``, then
``platformdirs.user_config_dir("pip")``; not read when ``PIP_CONFIG_FILE`` names a file that exists), site (the
running interpreter's ``sys.prefix``), then ``PIP_CONFIG_FILE``: a later file wins, and ``PIP_CONFIG_FILE=/dev/null``
reads none. In a file, ``[install]`` wins over ``[global]``; names are read with ``_`` as ``-``.

uv (https://docs.astral.sh/uv/concepts/configuration-files/): ``UV_NO_CONFIG`` reads none; ``UV_CONFIG_FILE`` only
that file; else the nearest ``uv.toml`` or ``pyproject.toml`` with ``[tool.uv]`` from the working folder up, then the
user's (``platformdirs.user_config_dir("uv")``), then the system's (``/etc/xdg/uv``, ``/etc/uv``): the first that sets
the index wins. In a file: ``[pip] index-url``, then ``index-url``, then an ``[[index]]`` with ``default = true``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["configured_index", "configured_find_links", "pip_config_files", "uv_config_files"]


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """Return pip's configuration files in the order it reads them (a later one wins); none for ``/dev/null``."""
    given = environ.get("PIP_CONFIG_FILE")
    if given == os.devnull:
        return []
    import platformdirs  # not before: a run that reads no file does not pay for it

    dirs = [*platformdirs.site_config_dir("pip", appauthor=False, multipath=True).split(os.pathsep), "/etc"]
    files = [Path(d) / "pip.conf" for d in dirs]
    if not (given and os.path.exists(given)):
        files += [Path.home() / ".pip" / "pip.conf", Path(platformdirs.user_config_dir("pip", appauthor=False)) / "pip.conf"]
    files.append(Path(sys.prefix) / "pip.conf")
    return files + ([Path(given)] if given else [])


def _pip_index(path: Path) -> str | None:
    return _pip_values(path, "index-url")


def uv_config_files(environ: Mapping[str, str], cwd: Path | None = None) -> list[Path]:
    """Return uv's configuration files in the order it ranks them (the first that sets a value wins)."""
    if environ.get("UV_NO_CONFIG", "").lower() in ("1", "true", "yes", "on"):
        return []
    if environ.get("UV_CONFIG_FILE"):
        return [Path(environ["UV_CONFIG_FILE"])]
    import platformdirs

    files: list[Path] = []
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "uv.toml").is_file():
            files.append(folder / "uv.toml")
            break
        if (folder / "pyproject.toml").is_file() and _tool_uv(folder / "pyproject.toml") is not None:
            files.append(folder / "pyproject.toml")
            break
    files.append(Path(platformdirs.user_config_dir("uv", appauthor=False)) / "uv.toml")
    dirs = platformdirs.site_config_dir("uv", appauthor=False, multipath=True).split(os.pathsep)
    return files + [Path(d) / "uv.toml" for d in dirs] + [Path("/etc/uv/uv.toml")]


def _toml(path: Path) -> dict[str, Any] | None:
    from resolver import toml_read

    try:
        return toml_read.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, toml_read.TOMLDecodeError):
        return None  # missing, or uv itself refuses it


def _tool_uv(path: Path) -> dict[str, Any] | None:
    data = _toml(path)
    tool = data.get("tool") if data else None
    uv = tool.get("uv") if isinstance(tool, dict) else None
    return uv if isinstance(uv, dict) else None


def _uv_index(path: Path) -> str | None:
    data = _tool_uv(path) if path.name == "pyproject.toml" else _toml(path)
    if not data:
        return None
    section = data.get("pip")
    pip: dict[str, Any] = section if isinstance(section, dict) else {}
    for value in (pip.get("index-url"), data.get("index-url")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    for table in (pip.get("index"), data.get("index")):
        for entry in table if isinstance(table, list) else ():
            if isinstance(entry, dict) and entry.get("default") is True and isinstance(entry.get("url"), str):
                return str(entry["url"])
    return None


def configured_index(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """Return the index pip's configuration files set (the last file that sets it), else uv's (the first), as
    ``(input, url)``, the input naming the setting and its file; ``None`` when neither sets one."""
    env = os.environ if environ is None else environ
    found = None
    for path in pip_config_files(env):
        url = _pip_index(path) if path.is_file() else None
        if url:
            found = (f"index-url in {path}", url)
    if found:
        return found
    for path in uv_config_files(env):
        url = _uv_index(path) if path.is_file() else None
        if url:
            return f"index-url in {path}", url
    return None


def _pip_values(path: Path, key: str) -> str | None:
    """Return ``key``'s value in pip configuration file ``path`` (``[install]`` over ``[global]``), else ``None``."""
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None  # pip itself refuses such a file; its own error will say why
    found = None
    for section in ("global", "install"):  # [install] wins
        if parser.has_section(section):
            for name, value in parser.items(section):
                if name.lower().replace("_", "-") == key and value.strip():
                    found = value.strip()
    return found


def configured_find_links(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Return the local folders the user gave pip or uv as find-links, as ``(input, folder)``, once each:
    ``PIP_FIND_LINKS``, pip's configuration files' ``find-links`` (the file pip would use), ``UV_FIND_LINKS``, uv's
    ``find-links``. URLs (a flat page on a server) and folders that do not exist are left out: install's
    ``--find-links`` takes folders."""
    from resolver.inputs import file_url_path

    env = os.environ if environ is None else environ
    given: list[tuple[str, str]] = []
    given += [("$PIP_FIND_LINKS", w) for w in env.get("PIP_FIND_LINKS", "").split()]  # pip: space-separated
    given += [("$UV_FIND_LINKS", w.strip()) for w in env.get("UV_FIND_LINKS", "").split(",") if w.strip()]  # uv: commas
    pip_file = None
    for path in pip_config_files(env):
        value = _pip_values(path, "find-links") if path.is_file() else None
        if value:
            pip_file = [(f"find-links in {path}", w) for w in value.split()]
    given += pip_file or []
    for path in uv_config_files(env):
        data = (_tool_uv(path) if path.name == "pyproject.toml" else _toml(path)) if path.is_file() else None
        section = data.get("pip") if data else None
        for table in (section if isinstance(section, dict) else {}, data or {}):
            links = table.get("find-links")
            if isinstance(links, list) and links:
                given += [(f"find-links in {path}", str(w)) for w in links]
                break
        else:
            continue
        break
    out: dict[str, str] = {}
    for what, word in given:
        folder = os.path.expanduser(file_url_path(word) if word.startswith("file:") else word)
        if "://" not in folder and os.path.isdir(folder):
            out.setdefault(os.path.abspath(folder), what)
    return [(what, folder) for folder, what in out.items()]
