"""One rule for an index URL (``inputs.check_index_url``), asked by every command that takes one: plan accepted a
plain-http ``--index-url`` that install refused, and a bad ``--index-url`` was checked twice (``PlanOptions.from_cli``,
then ``installers.mirrors``) with a wording of its own each time, other than ``--torch-index-url``'s."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main

TARGET = ["--cpu", "--python", "3.11", "--platform", "linux_x86_64"]
COMMANDS = {
    "plan": ["plan", *TARGET, "torch==2.13.0"],
    "install": ["install", "--dry-run", "--cpu", "torch==2.13.0"],
    "lock": ["lock", *TARGET, "torch==2.13.0", "-o", "pylock.toml"],
    "download": ["download", *TARGET, "torch==2.13.0", "--dest", "wheels"],
    "dockerfile": ["dockerfile", *TARGET, "torch==2.13.0", "-o", "Dockerfile"],
    "check-upgrade": ["check-upgrade", "torch==2.13.0", "numpy"],
}
PLAIN_HTTP = "http://mirror.example/simple"


@pytest.fixture(autouse=True)
def _box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def _refused(argv: list[str]) -> str:
    done = CliRunner().invoke(main, argv)
    assert done.exit_code == 2, done.output
    [said] = done.output.strip().splitlines()
    assert not os.listdir("."), os.listdir(".")  # nothing written
    return said


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_plain_http_index_url_with_the_same_line(command: str) -> None:
    said = _refused([*COMMANDS[command], "--index-url", PLAIN_HTTP])
    assert said == (f"gpustack: --index-url {PLAIN_HTTP}: plain http:// index; use https://, or pass "
                    "--allow-insecure-index if you trust every network between here and it")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_plain_http_mirror_from_the_environment(command: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", PLAIN_HTTP)
    said = _refused(COMMANDS[command])
    assert said.startswith(f"gpustack: PIP_INDEX_URL {PLAIN_HTTP}: plain http:// index"), said


def test_allow_insecure_index_is_taken_by_plan_as_by_install() -> None:
    done = CliRunner().invoke(main, [*COMMANDS["plan"], "--index-url", PLAIN_HTTP, "--allow-insecure-index", "--json"])
    assert done.exit_code == 0, done.output
    done = CliRunner().invoke(main, [*COMMANDS["install"], "--index-url", PLAIN_HTTP, "--allow-insecure-index"])
    assert done.exit_code == 0, done.output
    assert CliRunner().invoke(main, [*COMMANDS["plan"], "--index-url", "http://127.0.0.1:9/simple"]).exit_code != 2


@pytest.mark.parametrize("url", ["ftp://mirror.example/simple", "mirror.example/simple", "https://"])
def test_a_bad_index_url_has_one_wording_whichever_option_gave_it(url: str) -> None:
    pypi = _refused([*COMMANDS["install"], "--index-url", url])
    torch = _refused([*COMMANDS["install"], "--torch-index-url", url])
    assert pypi == f"gpustack: --index-url {url}: not an index URL; pass https://host/path (or file:///folder)"
    assert torch == pypi.replace("--index-url", "--torch-index-url")
    assert _refused([*COMMANDS["plan"], "--index-url", url]) == pypi


def test_every_commands_index_url_help_is_one_true_text() -> None:
    # check-upgrade said "default: pypi.org" while it reads $PIP_INDEX_URL ... as every other command does
    # (test_every_command_refuses_a_plain_http_mirror_from_the_environment)
    helps = {}
    for command in COMMANDS:
        out = CliRunner().invoke(main, [command, "--help"], terminal_width=1000)
        assert out.exit_code == 0, out.output
        helps[command] = " ".join(next(line for line in out.output.splitlines() if "--index-url URL" in line).split())
    assert len(set(helps.values())) == 1, helps
    assert "(default: $PIP_INDEX_URL, else $UV_DEFAULT_INDEX, else $UV_INDEX_URL, else pypi.org)" in helps["plan"]
