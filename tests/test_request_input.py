"""What a request may say, through the real commands: direct URLs are refused, environment markers are evaluated
against the target (not this machine), and nonsense target values are bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main

TORCH_WHEEL = "torch @ file:///opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _refused(args: list[str], message: str, where: Path) -> None:
    before = sorted(p.name for p in where.rglob("*"))
    code, out, err = run(*args)
    assert code == 2, (code, out, err)
    assert err.startswith(f"gpustack: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in where.rglob("*")) == before  # nothing written


# --- direct URLs (trial item 3): they used to be replaced by an index version without a word -----------------------

@pytest.mark.parametrize("command", [
    ["plan", "--cpu"],
    ["lock", "--cpu", "-o", "{tmp}/pylock.toml"],
    ["dockerfile", "--gpu", "A100", "-o", "{tmp}/Dockerfile"],
    ["install", "--cpu", "--dry-run"],
    ["download", "--cpu", "--dest", "{tmp}/dest", "--dry-run"],
])
def test_a_direct_url_requirement_is_refused_by_every_command(command: list[str], tmp_path: Path) -> None:
    args = [a.format(tmp=tmp_path) for a in command]
    _refused([*args, TORCH_WHEEL], f"requirement {TORCH_WHEEL!r}: a direct URL is not supported", tmp_path)
    # the next step names the version the file holds, and how to use a local file
    code, _, err = run(*args, TORCH_WHEEL)
    assert "write 'torch==2.13.0+cpu' instead" in err and "--find-links DIR" in err


@pytest.mark.parametrize(("line", "pin"), [
    ("numpy @ https://example.com/numpy.whl", "numpy==VERSION"),
    ("numpy @ https://example.com/numpy-2.1.0.tar.gz#sha256=00", "numpy==2.1.0"),
    ("xformers @ git+https://github.com/facebookresearch/xformers@v0.0.28", "xformers==VERSION"),
])
def test_a_direct_url_in_a_requirements_file_is_refused(line: str, pin: str, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(f"torch\n{line}\n")
    _refused(["plan", "--gpu", "A100", "-r", str(req)], f"requirement {line!r}: a direct URL is not supported",
             tmp_path)
    assert f"write {pin!r} instead" in run("plan", "--gpu", "A100", "-r", str(req))[2]


def test_a_plain_pin_still_plans(tmp_path: Path) -> None:
    code, out, _ = run("plan", "--cpu", "torch==2.13.0+cpu", "--json")
    assert code == 0 and json.loads(out)["packages"][0]["version"] == "2.13.0+cpu"
