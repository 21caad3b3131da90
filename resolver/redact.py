"""Credentials never reach the screen or a log: ``redact(text)`` masks the password of every URL in ``text``.

As pip does (``pip._internal.utils.misc.redact_auth_from_url``): ``https://user:secret@host/x`` becomes
``https://user:****@host/x``; a bare token (``https://token@host/x``) becomes ``https://****@host/x``.
"""

from __future__ import annotations

import re

__all__ = ["redact", "MASK"]

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
