"""What the network tests share: whether PyPI answers, so they skip cleanly where it does not."""

from __future__ import annotations

import socket


def pypi_answers() -> bool:
    """Returns whether a TCP connection to pypi.org:443 opens within 5 s."""
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False
