"""What every test that runs pip or uv (or gpustack, which runs them) does first: leave this machine's pip and uv
configuration out (../shared/reference/INDEXES.md). This machine's pip config adds local indexes and find-links, and
``PIP_*``/``UV_*`` variables would reach every child."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest


def isolate_installers(monkeypatch: pytest.MonkeyPatch, also: Callable[[str], bool] = lambda name: False) -> None:
    """Unset every ``PIP_*``/``UV_*`` variable (and each other one ``also`` names), and point pip and uv at no
    configuration file."""
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")) or also(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("UV_NO_CONFIG", "1")
