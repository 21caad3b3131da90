"""``gpustack detect``: print what ``resolver.detect`` found here, as a table or as JSON."""

from __future__ import annotations

import json

import click
from resolver.detect import detect as detect_host

__all__ = ["detect"]

@click.command("detect")
@click.option("--python-exe", "python_exe", metavar="PATH", default=None,
              help="Interpreter whose installed packages to read (default: the one running gpustack).")
@click.option("--json", "as_json", is_flag=True, help="Print the detected host as JSON.")
def detect(python_exe: str | None, as_json: bool) -> None:
    """Show the GPUs, driver, CUDA toolkit and Python environment found here."""
    host = detect_host(python_exe)
    if as_json:
        click.echo(json.dumps(host.to_dict(), indent=2))
        return
    from resolver.render import console, print_host

    print_host(console(), host)
