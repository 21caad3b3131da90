"""``install --dry-run | sh`` runs (docs/input.md): the printed lines, run by ``sh`` against a real venv with the real
pip and uv on loopback indexes, install what the plan says, and the dry run itself writes nothing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from resolver import envstate
from test_offline import Served, gpustack, served, up  # noqa: F401  (the loopback indexes, as fixtures)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_the_printed_dry_run_installs_the_plan_when_run_by_sh(up: Served, venv: Path, isolated: Path,
                                                              backend: str) -> None:
    # The dry run named a constraints file (tinypkg's step holds torch) that it never wrote: `sh` ended in
    # "error: File not found: <cache>/constraints/....txt".
    dry = gpustack("install", "--cpu", "torch==2.13.0", "tinypkg", "--python-exe", str(venv), "--installer", backend,
                   "--torch-index-url", up.torch_mirror, "--index-url", up.pypi, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "--constraint" in dry.stdout, dry.stdout
    assert not (isolated / "constraints").exists()  # a dry run writes nothing
    before = envstate.snapshot(str(venv)).version("torch")
    assert before is None
    done = subprocess.run(["sh", "-e"], input=dry.stdout, capture_output=True, text=True, timeout=300,
                          env={**os.environ})
    assert done.returncode == 0, done.stdout + done.stderr
    got = envstate.snapshot(str(venv))
    assert {n: got.version(n) for n in ("torch", "tinypkg", "typing-extensions")} == {
        "torch": "2.13.0+cpu", "tinypkg": "1.0", "typing-extensions": "4.12.2"}
    # what sh wrote is what the run writes: the text each step's comment says its file holds, in a private folder
    said = dict(re.findall(r"^# install \S+ \((\S+) holds: (.*)\)$", dry.stdout, flags=re.M))
    assert said and {str(p): p.read_text() for p in (isolated / "constraints").iterdir()} == {
        path: "".join(f"{c}\n" for c in held.split(", ")) for path, held in said.items()}
    assert any("torch==2.13.0+cpu" in held for held in said.values()), said
    assert (isolated / "constraints").stat().st_mode & 0o777 == 0o700
