"""Credentials never reach the screen or a log: ``redact(text)`` masks the password of every URL in ``text``.

As pip does (``pip._internal.utils.misc.redact_auth_from_url``): ``https://user:secret@host/x`` becomes
``https://user:****@host/x``; a bare token (``https://token@host/x``) becomes ``https://****@host/x``.
"""

from __future__ import annotations

import re

__all__ = ["redact", "MASK", "secrets_to_env"]

MASK = "****"

# scheme://userinfo@ where userinfo has no '/', '@' or whitespace (RFC 3986 forbids '/' and '@' unescaped there).
# The scheme is at most 32 characters (real ones are under 20): unbounded, every letter of a long word was tried as
# a start and scanned to the word's end, and a 1 MB argument quoted in a message took minutes. A longer run of
# scheme characters still matches from its last 32, so its password is masked all the same.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<userinfo>[^/@\s'\"<>]+)@")


def _mask(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, sep, _password = userinfo.partition(":")
    masked = f"{user}:{MASK}" if sep else MASK
    return f"{match.group('scheme')}{masked}@"


def redact(text: str) -> str:
    """Return ``text`` with every URL's password (or lone token) replaced by ``****``; the user name stays."""
    return _USERINFO.sub(_mask, text)


# The index options pip and uv take, and the environment variable each also reads the same value from (pip: any
# option as PIP_<NAME>, lists whitespace-separated; uv: its documented UV_* variables, lists space-separated).
_INDEX_VARIABLES = {
    "pip": {"--index-url": "PIP_INDEX_URL", "--extra-index-url": "PIP_EXTRA_INDEX_URL"},
    "uv": {"--index-url": "UV_INDEX_URL", "--extra-index-url": "UV_EXTRA_INDEX_URL", "--index": "UV_INDEX",
           "--default-index": "UV_DEFAULT_INDEX"},
}


def _tool(argv: list[str]) -> str | None:
    import os

    if argv and os.path.basename(argv[0]).split(".")[0] == "uv":
        return "uv"
    return "pip" if "pip" in argv[:3] else None  # python -m pip ...


def secrets_to_env(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Return ``argv`` of a pip or uv command without the index URLs that carry credentials, and the environment
    variables that give them to the child instead: any local user can read a process's argv (``ps``,
    ``/proc/PID/cmdline``), not its environment. Every value of an option with a credentialed URL moves, in its order
    (a repeated option's variable replaces its command-line values, it does not add to them); the rest stays."""
    tool = _tool(argv)
    if tool is None or not any(_USERINFO.search(a) for a in argv):
        return argv, {}
    options = _INDEX_VARIABLES[tool]
    values: dict[str, list[str]] = {}
    for i, arg in enumerate(argv[:-1]):
        if arg in options:
            values.setdefault(arg, []).append(argv[i + 1])
    moved = {o for o, urls in values.items() if any(_USERINFO.search(u) for u in urls)}
    if not moved:
        return argv, {}
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in moved and i + 1 < len(argv):
            skip = True
        else:
            out.append(arg)
    return out, {options[o]: " ".join(values[o]) for o in sorted(moved)}
