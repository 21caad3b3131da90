"""``install --dry-run | sh`` runs (docs/input.md): the printed lines, run by ``sh`` against a real venv with the real
pip and uv on loopback indexes, install what the plan says, and the dry run itself writes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
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
    as_json = gpustack("install", "--cpu", "torch==2.13.0", "tinypkg", "--python-exe", str(venv), "--installer",
                       backend, "--torch-index-url", up.torch_mirror, "--index-url", up.pypi, "--dry-run", "--json")
    files = {p: t for step in json.loads(as_json.stdout)["steps"] for p, t in step.get("files", {}).items()}
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
    # --json names the same files with the same text, for a program to write before it runs the argv
    assert files == {str(p): p.read_text() for p in (isolated / "constraints").iterdir()}


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_the_printed_dry_run_makes_the_new_venv_and_stops_at_a_failed_step(up: Served, tmp_path: Path,
                                                                           backend: str) -> None:
    # The s10 trial: into a new --venv every printed line failed (`.../bin/python: No such file or directory`: the
    # venv's creation was only said on stderr), and with plain `sh` (no -e) a failed step went on to the next one.
    venv = tmp_path / "new venv"
    dry = gpustack("install", "--cpu", "torch==2.13.0", "tinypkg", "--venv", str(venv), "--installer", backend,
                   "--torch-index-url", up.torch_mirror, "--index-url", up.pypi, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert not venv.exists()  # a dry run makes nothing

    def caches(run: str) -> dict[str, str]:  # each sh run its own pip and uv caches: no index page kept between them
        return {**os.environ, "PIP_CACHE_DIR": str(tmp_path / run / "pip"), "UV_CACHE_DIR": str(tmp_path / run / "uv")}

    page = up.root / "whl" / "cpu" / "torch" / "index.html"
    good = page.read_text()
    page.write_text(re.sub(r"sha256=[0-9a-f]{64}", "sha256=" + "0" * 64, good))  # torch's step now fails (pip, uv)
    try:
        failed = subprocess.run(["sh"], input=dry.stdout, capture_output=True, text=True, timeout=300,
                                env=caches("failed"))
    finally:
        page.write_text(good)
    assert failed.returncode != 0
    made = envstate.snapshot(str(venv / "bin" / "python"))  # sh made the venv, then stopped at torch's step
    assert made.version("torch") is None and made.version("tinypkg") is None, made.freeze()
    shutil.rmtree(venv)
    done = subprocess.run(["sh"], input=dry.stdout, capture_output=True, text=True, timeout=300, env=caches("done"))
    assert done.returncode == 0, done.stdout + done.stderr
    got = envstate.snapshot(str(venv / "bin" / "python"))
    assert (got.version("torch"), got.version("tinypkg")) == ("2.13.0+cpu", "1.0")
