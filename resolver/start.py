"""The ``gpustack`` command's entry point: what can start before the CLI is even imported, then ``resolver.cli``.

A command in ``EARLY`` begins its early work here, before click and the command's modules are imported:
``install`` reads its target environment (``resolver.read_ahead``), ``lock`` starts uv on its command line's last
request (``resolver.lock_speculate``). ``resolver.cli`` begins it too, for a run that does not come through here,
and ends it after the command; a begin for the same command line keeps what was begun.
"""

from __future__ import annotations

import sys

__all__ = ["main", "EARLY", "resume_gc"]

# command -> the module whose ``begin(args)`` starts its early work and ``end()`` stops what the command did not take
EARLY = {"install": "resolver.read_ahead", "lock": "resolver.lock_speculate"}


def main() -> None:
    """Run the ``gpustack`` command line."""
    # Start-up imports (click, the command's modules: ~60 ms of an install's ~80) make tens of thousands of objects
    # that all live on; the collector's passes over them find nothing. It resumes once the command's module is
    # loaded (``resolver.cli`` calls ``resume_gc``).
    global _GC_PAUSED
    import gc

    _GC_PAUSED = gc.isenabled()
    gc.disable()
    early = EARLY.get(sys.argv[1]) if len(sys.argv) > 1 else None
    if early is not None:
        import importlib

        importlib.import_module(early).begin(sys.argv[2:])
    from resolver.cli import main as cli

    cli()


_GC_PAUSED = False


def resume_gc() -> None:
    """Turn the garbage collector back on where ``main`` turned it off for the start-up imports, after moving every
    object made so far out of its reach (``gc.freeze``: modules, classes and functions live until exit anyway).
    Without the freeze its first pass would walk them all, and give back most of what the pause saved."""
    global _GC_PAUSED
    if _GC_PAUSED:
        import gc

        gc.freeze()
        gc.enable()
        _GC_PAUSED = False
