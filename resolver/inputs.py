"""Bounded input: every file, number and name that reaches gpustack from outside passes one of these checks.

Each check returns the clean value or raises ``BadInput`` with one line that names the input (``-r reqs.txt``,
``--driver``, ``--plan FILE``) and the next step. Nothing here touches the disk beyond reading the one file asked
for, and a read never blocks: FIFOs, devices and folders are refused before they are opened for reading
(docs/input.md).
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

from resolver.errors import BadInput

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_REQUIREMENTS",
    "MAX_REQUIREMENT_CHARS",
    "MAX_NAME_CHARS",
    "cache_dir",
    "read_text",
    "read_bytes",
    "check_name",
    "check_text",
    "check_requirements",
    "ascii_number",
    "positive_seconds",
    "check_argument",
    "check_file_url",
    "check_index_url",
    "one_line",
    "check_new_folder",
    "env_folder",
]

MAX_FILE_BYTES = 16 * 1024 * 1024  # a lock of every CUDA wheel is ~200 KB; a plan ~10 KB
MAX_REQUIREMENTS = 1000  # a request names what to solve for, not an environment's freeze
MAX_REQUIREMENT_CHARS = 1000  # PEP 508 lines with a URL and markers stay far below this
MAX_NAME_CHARS = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _show(value: str, limit: int = 60) -> str:
    """Return ``value`` quoted for a message, cut to ``limit`` characters."""
    shown = repr(value[:limit])
    return shown + ("..." if len(value) > limit else "")


_LONG_WORD = re.compile(r"\S{300,}")


def one_line(message: str) -> str:
    """Return ``message`` as the one short line a refusal prints: control characters (a newline, NUL or escape
    sequence the input carried) shown escaped, and any run of over 300 non-blank characters (a 1 MB argument, a
    pasted file) cut to its first 120 with its length. Applied to every exit-2 message where the CLI prints it."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), message)
    return _LONG_WORD.sub(lambda m: f"{m.group()[:120]}...({len(m.group())} characters)", text)


def read_bytes(path: str, what: str, *, limit: int = MAX_FILE_BYTES, hint: str = "pass a regular file") -> bytes:
    """Return the bytes of the regular file ``path``; ``BadInput`` (naming ``what``) for a folder, FIFO, device or
    socket, a missing or unreadable file, or one over ``limit`` bytes. Never blocks on a FIFO: the file is opened
    non-blocking and checked with ``fstat`` before any read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadInput(f"{what}: cannot read it ({exc.strerror}); {hint}") from None
    except ValueError:  # a NUL in the path: no file has that name
        raise BadInput(f"{what}: a path cannot hold a NUL character; {hint}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise BadInput(f"{what}: is a folder; {hint}")
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{what}: not a regular file (a FIFO, device or socket); {hint}")
        if st.st_size > limit:
            raise BadInput(f"{what}: {st.st_size} bytes is over the {limit}-byte limit; {hint}")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise BadInput(f"{what}: over the {limit}-byte limit; {hint}")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise BadInput(f"{what}: cannot read it ({exc.strerror}); {hint}") from None
    finally:
        os.close(fd)


def check_new_folder(path: str, what: str, *, hint: str) -> str:
    """Return ``path`` when it is a folder or can be made one (``os.makedirs``): ``BadInput`` naming ``what`` when it
    is a file, FIFO or device, when a folder above it is a file (``notes.txt/venv``), or when the OS refuses the name
    (too long). Nothing is created."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise BadInput(f"{what} {path}: exists and is not a folder; {hint}")
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # ENAMETOOLONG, ENOTDIR (a file above it), ELOOP ...
        raise BadInput(f"{what} {path}: cannot be a folder ({exc.strerror}); {hint}") from None
    return path


def env_folder(name: str) -> str | None:
    """Return the folder the environment variable ``name`` (``GPUSTACK_CACHE_DIR``) names, or ``None`` when it is
    unset or empty; ``BadInput`` when it is not an absolute path that is, or can become, a folder: a relative one
    would mean another folder in every working directory (and ``cache clear`` would empty it)."""
    value = os.environ.get(name)
    if not value:
        return None
    hint = f"set {name} to an absolute folder path, or unset it"
    check_text(value, name, limit=4096, hint=hint)
    if not os.path.isabs(value):
        raise BadInput(f"{name} {_show(value)}: not an absolute path; {hint}")
    return check_new_folder(value, name, hint=hint)


def cache_dir() -> Path:
    """Return the root of gpustack's cache: ``$GPUSTACK_CACHE_DIR`` when set (``env_folder``), else the platform's
    user cache folder (``platformdirs``, imported only then). The one reading of it: the build cache
    (``resolver.cache``), the matrix cache (``matrix_cache``, on every command's start-up path, hence here), the lock's
    hints and the index pages all live under it."""
    override = env_folder("GPUSTACK_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("gpustack"))


def read_text(path: str, what: str, *, limit: int = MAX_FILE_BYTES, hint: str = "pass a regular file") -> str:
    """Return the UTF-8 text of the regular file ``path`` (see ``read_bytes``); ``BadInput`` naming the byte offset
    when it is not UTF-8."""
    data = read_bytes(path, what, limit=limit, hint=hint)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what}: not UTF-8 text (byte {exc.start}); save it as UTF-8 or {hint}") from None
    return text.removeprefix("\ufeff")


def check_text(value: str, what: str, *, limit: int = MAX_NAME_CHARS, hint: str = "") -> str:
    """Return ``value`` when it is at most ``limit`` characters with no newline or other control character."""
    tail = f"; {hint}" if hint else ""
    if len(value) > limit:
        raise BadInput(f"{what} {_show(value)}: longer than {limit} characters{tail}")
    if _CONTROL.search(value):
        raise BadInput(f"{what} {_show(value)}: holds a newline or control character{tail}")
    return value


def check_name(value: str, what: str, *, hint: str = "", limit: int = MAX_NAME_CHARS) -> str:
    """Return ``value`` (a GPU name, profile, ...) stripped; ``BadInput`` when empty, too long or holding control
    characters (a newline would reach Dockerfile comments and logs)."""
    check_text(value, what, hint=hint, limit=limit)
    if not value.strip():
        raise BadInput(f"{what}: empty" + (f"; {hint}" if hint else ""))
    return value.strip()


def check_requirements(lines: list[str], what: str = "requirements") -> list[str]:
    """Return ``lines`` when there are at most ``MAX_REQUIREMENTS`` of them, each at most ``MAX_REQUIREMENT_CHARS``
    characters with no control character: bounds on the solver's and index's work before any lookup."""
    if len(lines) > MAX_REQUIREMENTS:
        raise BadInput(f"{what}: {len(lines)} requirements is over the limit of {MAX_REQUIREMENTS}; "
                       "list the packages to solve for, not a whole environment")
    for line in lines:
        check_text(line, "requirement", limit=MAX_REQUIREMENT_CHARS, hint="write it as PEP 508, e.g. 'xformers<0.0.23'")
    return lines


_ASCII_NUMBER = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,18})?", re.ASCII)


def ascii_number(text: str, what: str, *, hint: str) -> float:
    """Return ``text`` as a number written with ASCII digits only (``120``, ``2.5``): no Unicode digits, signs,
    exponents, ``nan`` or ``inf``."""
    s = text.strip()
    if not _ASCII_NUMBER.fullmatch(s):
        raise BadInput(f"{what} {_show(text)}: not a number; {hint}")
    return float(s)


def positive_seconds(value: float | str, what: str, *, maximum: float = 86400.0) -> float:
    """Return a finite timeout in ``(0, maximum]`` seconds; ``BadInput`` for ``nan``, ``inf``, zero or negatives."""
    hint = f"pass seconds between 1 and {maximum:.0f}, e.g. 120"
    if isinstance(value, str) and value.strip().startswith("-") and _ASCII_NUMBER.fullmatch(value.strip()[1:]):
        seconds = -1.0  # a negative number is a number: say what is wrong with it, as for 0
    else:
        seconds = ascii_number(value, what, hint=hint) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > maximum:
        raise BadInput(f"{what} {value!r}: not a positive, finite number of seconds; {hint}")
    return seconds


def check_argument(value: str, what: str) -> str:
    """Return ``value`` when it may go on a pip/uv command line as an operand: it must not start with ``-`` (it
    would be read as an option) nor hold a newline or control character (a requirements file line break)."""
    if value.startswith("-"):
        raise BadInput(f"{what} {_show(value)}: starts with '-', which pip would read as an option; "
                       "write a PEP 508 requirement or a URL")
    check_text(value, what, limit=8192, hint="write it on one line")
    return value


def is_loopback(host: str | None) -> bool:
    """Return whether ``host`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_file_url(url: str, what: str) -> str:
    """Return ``url``; ``BadInput`` for a ``file:`` URL that does not name an absolute path on this machine:
    ``file://relative/x`` names the host ``relative`` (pip and uv cannot read it), ``file:x`` a relative path."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path.startswith("/")):
        from resolver.redact import redact

        raise BadInput(f"{what} {redact(url)}: a file URL needs an absolute path; write file:///absolute/folder "
                       "(three slashes)")
    return url


def check_index_url(url: str, what: str, *, allow_insecure: bool = False) -> str:
    """Return ``url`` when it may be passed to pip/uv as an index: one argument (``check_argument``) without
    whitespace, ``https://host/...`` or ``file:///folder``; ``http://`` only on loopback or with
    ``--allow-insecure-index`` (a plain-HTTP index lets anyone on the path swap the files).

    The one check of an index URL, whoever gives it: ``--index-url`` (``PlanOptions.from_cli``, every command that
    takes it), ``--torch-index-url`` and the mirror variables (``installers.torch_mirror``), a plan file's indexes
    (``installers.Sources.index``)."""
    from urllib.parse import urlsplit

    from resolver.redact import redact

    check_argument(url, what)
    if any(c.isspace() for c in url):  # pip and uv would fail on it later, past the planning
        raise BadInput(f"{what} {redact(url)!r}: a URL has no spaces; write a space in it as %20")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.hostname):
        raise BadInput(f"{what} {redact(url)}: not an index URL; pass https://host/path (or file:///folder)")
    check_file_url(url, what)
    if parts.scheme == "http" and not allow_insecure and not is_loopback(parts.hostname):
        raise BadInput(f"{what} {redact(url)}: plain http:// index; use https://, or pass --allow-insecure-index "
                       "if you trust every network between here and it")
    return url


def file_url_path(url: str) -> str:
    """Return the local path a ``file:`` URL names, as pip and uv read it (``urllib.request.url2pathname`` of its
    path: percent-decoded; a drive letter on Windows). ``urllib.request`` itself is not imported: it brings http,
    ssl and email (~12 ms on an install's path); on Windows its ``url2pathname`` is ``nturl2path``'s."""
    from urllib.parse import unquote, urlsplit

    path = urlsplit(url).path
    if os.name == "nt":  # pragma: no cover - Windows
        from nturl2path import url2pathname

        return url2pathname(path)
    return unquote(path)
