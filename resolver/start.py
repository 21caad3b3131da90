"""The ``gpustack`` command's entry point: what can start before the CLI is even imported, then ``resolver.cli``.

``gpustack install`` begins reading its target environment here (``resolver.read_ahead``), before click and the
command's modules are imported (~50 ms, the time the reading takes); ``resolver.cli`` keeps a reading begun for
its own command line.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the ``gpustack`` command line."""
    if sys.argv[1:2] == ["install"]:
        from resolver import read_ahead

        read_ahead.begin(sys.argv[2:])
    from resolver.cli import main as cli

    cli()
