"""gpustack's loggers, which import ``logging`` only when a record could be seen.

``logging`` and what it imports (traceback, textwrap, string) cost ~3 ms of the ~80 ms that ``gpustack install``
adds to the installer it runs, and an install logs nothing unless ``-v`` asked for it. So a ``Logger`` here hands a
record to ``logging.getLogger(name)`` when ``logging`` is already imported (``-v`` imports and configures it; so
does any program that sets up logging before calling gpustack), or when the record is a warning or worse (then it
imports it: with no handler configured, logging's last-resort handler prints it on stderr, as before). A debug or
info record while nothing has imported ``logging`` is dropped, which is what logging would do with it: no handler
can exist yet, and the last-resort handler only prints warnings and worse.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Logger"]

_DEBUG, _INFO, _WARNING = 10, 20, 30  # logging.DEBUG, INFO, WARNING


class Logger:
    """The part of ``logging.Logger`` gpustack uses: ``debug``, ``info`` and ``warning`` with %-style arguments."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _log(self, level: int, msg: str, args: tuple[Any, ...]) -> None:
        if "logging" not in sys.modules and level < _WARNING:
            return
        import logging

        logging.getLogger(self.name).log(level, msg, *args, stacklevel=3)

    def debug(self, msg: str, *args: Any) -> None:
        self._log(_DEBUG, msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._log(_INFO, msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log(_WARNING, msg, args)
