"""Human output through a real pipe: tables keep every column whole instead of being cut to 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _piped(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run([sys.executable, "-m", "resolver", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_plan_table_is_not_cut_when_piped() -> None:
    out = _piped("plan", "--gpu", "H100", "--driver", "580.65.06", "--python", "3.11", "--platform", "linux_x86_64",
                 "xformers", "flash-attn")
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert any("xformers" in r and "https://download.pytorch.org/whl/cu" in r for r in rows), out
    assert "…" not in out
    # Every table row is one line: the rows' right borders line up.
    assert len({len(r) for r in rows}) == 1


@pytest.mark.parametrize("subject", ["torch", "flash-attn"])
def test_matrix_table_is_wider_than_80_when_piped(subject: str) -> None:
    out = _piped("matrix", "show", subject)
    assert max(len(line) for line in out.splitlines()) > 80
    assert "…" not in out


def test_brackets_in_reasons_and_notes_are_text_not_markup() -> None:
    from io import StringIO

    from rich.console import Console

    from resolver.refusal import advice, refusal
    from resolver.render import print_refusal

    out = Console(file=StringIO(), width=200)
    print_refusal(out, [refusal("xformers", "", "torch_pin", "{name} needs {spec}", name="xformers[fairseq]",
                                spec="[bold]torch<2.1")], [advice("pip install 'flash-attn[x]'")])
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "xformers[fairseq] needs [bold]torch<2.1" in text and "'flash-attn[x]'" in text


def test_install_dry_run_and_recover_print_through_render_uncut(tmp_path: Path) -> None:
    """``install --dry-run`` prints each command on one line (a pipe has no width), credentials in its environment;
    ``recover`` on a clean environment says so on stdout. Both come from resolver.render, not cmd_install."""
    import json

    from resolver.models import ComputeCapability, Gpu, PackageChoice, Stack, Target
    from resolver.plan import make_plan

    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stack = Stack(target=Target(gpus=(Gpu("H100", ComputeCapability(9, 0)),), python=python, platform="linux_x86_64",
                                source="test"),
                  packages=(PackageChoice("torch", "2.11.0+cu130", "wheel",
                                          index_url="https://user:s3cret@mirror.example/whl/cu130", variant="cu130"),))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(make_plan(stack).to_dict()))
    out = _piped("install", "--dry-run", "--installer", "pip", "--plan", str(plan_file))
    shell = [line for line in out.splitlines() if not line.startswith("#")]
    # exact in a pipe (docs/input.md: `install --dry-run | sh`), the password in the command's environment only
    assert any("torch==2.11.0+cu130" in line and line.startswith("PIP_DISABLE_PIP_VERSION_CHECK=1 ")
               and " PIP_INDEX_URL=https://user:s3cret@mirror.example/whl/cu130 " in line.split(" -m pip ", 1)[0]
               and "s3cret" not in line.split(" -m pip ", 1)[-1] for line in shell), out
    assert "…" not in out
    assert max(len(line) for line in shell) > 80  # one command per line, not wrapped at 80 columns
    recovered = _piped("recover")
    assert recovered.startswith("nothing to recover:"), recovered


def test_an_install_with_verify_says_what_verify_passed(capsys: pytest.CaptureFixture[str]) -> None:
    # `install --verify` said "installed in 21.0s: ..." and never that verify had run, or what passed
    from resolver import envstate
    from resolver.install import InstallResult
    from resolver.render import print_install_result
    from resolver.verify import BackendResult, VerifyReport

    report = VerifyReport(ok=True, device=None, results=(
        BackendResult("sdpa-flash", "sdpa", "bf16", True), BackendResult("sdpa-flash", "sdpa", "fp16", True),
        BackendResult("xformers", "memory_efficient", "bf16", True),
        BackendResult("flash-attn", "flash_attn_func", "bf16", False, skipped=True),
        BackendResult("flash-attn", "flash_attn_func", "fp16", False, skipped=True)))
    added = envstate.EnvDiff(added=(envstate.Dist("xformers", "0.0.33"),))
    print_install_result(InstallResult(added, seconds=21.0, verify=report))
    err = capsys.readouterr().err.splitlines()
    assert err == ["installed in 21.0s: added xformers 0.0.33",
                   "verified: 2 attention backends passed (sdpa-flash, xformers); skipped: flash-attn"]
    print_install_result(InstallResult(added, seconds=1.0))
    assert capsys.readouterr().err.splitlines() == ["installed in 1.0s: added xformers 0.0.33"]
