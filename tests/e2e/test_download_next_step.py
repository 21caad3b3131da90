"""``gpustack download`` ends with the command the target runs, exactly: run as printed (the index stopped, a new
venv), it installs what was downloaded (the s10 trial: it said ``gpustack install ... --find-links DIR --offline``)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from resolver import envstate
from test_offline import Served, gpustack, served, up  # noqa: F401  (the loopback indexes, as fixtures)


@pytest.mark.parametrize("by_plan", [False, True])
def test_the_printed_install_command_installs_the_download_offline(up: Served, tmp_path: Path, by_plan: bool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the printed command names the folder (and the plan) as the user gave them
    mirrors = ["--torch-index-url", up.torch_mirror, "--index-url", up.pypi]
    request = ["--cpu", "torch==2.13.0", "tinypkg"]
    if by_plan:
        planned = gpustack("plan", *request, "--index-url", up.pypi, "--json")
        assert planned.exit_code == 0, planned.output
        Path("plan.json").write_text(planned.stdout)
        request = ["--plan", "plan.json"]
    done = gpustack("download", *request, *mirrors, "--dest", "wheels")
    assert done.exit_code == 0, done.output
    said = done.stderr.strip().splitlines()[-1]
    command = shlex.split(said.split("run there: ", 1)[1])
    assert command[:2] == ["gpustack", "install"] and "..." not in command, said
    up.server.stop()  # the target has no network
    try:
        installed = gpustack(*command[1:], "--venv", "target", "--installer", "uv")
    finally:
        up.server.start()
    assert installed.exit_code == 0, installed.output
    got = envstate.snapshot(str(tmp_path / "target" / "bin" / "python"))
    assert (got.version("torch"), got.version("tinypkg")) == ("2.13.0+cpu", "1.0")
