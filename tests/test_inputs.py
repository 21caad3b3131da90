"""Issue 12: every bad input gets one line naming it, exit 2, no traceback, nothing changed on disk.

One test per finding of the issue (the fuzz and hypothesis tests live in test_fuzz_cli.py / test_parsers_property.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.errors import BadInput
from resolver.inputs import positive_seconds, read_text
from resolver.models import Plan

TARGET = ["--gpu", "A100", "--driver", "535.104.05", "--python", "3.11", "--platform", "linux_x86_64"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_fifo_requirement_file_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "reqs"
    os.mkfifo(fifo)
    code, err = run("plan", *TARGET, "-r", str(fifo))  # would block forever on open()/read()
    assert code == 2 and "not a regular file" in one_line(err)


def test_folder_and_missing_files_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is a folder"):
        read_text(str(tmp_path), "-r x")
    with pytest.raises(BadInput, match="cannot read it"):
        read_text(str(tmp_path / "nope"), "-r x")


def test_non_utf8_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "reqs.txt"
    bad.write_bytes(b"xformers\n\xff\xfe torch\n")
    code, err = run("plan", *TARGET, "-r", str(bad))
    assert code == 2 and f"-r {bad}: not UTF-8" in one_line(err)
    code, err = run("install", "--dry-run", "--plan", str(bad))
    assert code == 2 and "--plan" in one_line(err)
    code, err = run("install", "--dry-run", "--lock", str(bad))
    assert code == 2 and "--lock" in one_line(err)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(BadInput, match="limit"):
        read_text(str(big), "-r big", limit=1024)


@pytest.mark.parametrize("driver", ["５３５.104.05", "٥٣٥.104", "1" * 5000])
def test_driver_must_be_ascii(driver: str) -> None:
    code, err = run("plan", "--gpu", "A100", "--driver", driver, "--python", "3.11")
    assert code == 2 and "--driver" in one_line(err)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e400", "１２", "", "12s"])
def test_verify_timeout_is_positive_finite_ascii(value: str) -> None:
    code, err = run("verify", "--timeout", value)
    assert code == 2 and "--timeout" in one_line(err)
    # a number, but not a usable one, says so ('-5' said "not a number" while '0' said "not positive")
    assert ("not a positive, finite number of seconds" in err) == (value in ("-1", "0")), err
    assert positive_seconds("2.5", "--timeout") == 2.5


def test_twenty_thousand_requirements_are_refused_before_any_lookup(tmp_path: Path) -> None:
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("".join(f"pkg{i}\n" for i in range(20000)))
    code, err = run("plan", *TARGET, "-r", str(reqs))
    assert code == 2 and "over the limit" in one_line(err)


def test_huge_pin_is_bad_input_not_value_error() -> None:
    code, err = run("plan", *TARGET, "torch==" + "1" * 4400)
    assert code == 2 and "longer than" in one_line(err)
    code, err = run("check-upgrade", "torch==" + "9" * 4400)
    assert code == 2 and "requirement" in one_line(err)


@pytest.mark.parametrize("gpu", ["V100\nSXM2", "A100\x1b[2J", "T4\r", "x" * 500])
def test_gpu_names_with_control_characters_are_refused(gpu: str) -> None:
    code, err = run("dockerfile", "--gpu", gpu, "--driver", "535.104.05", "--python", "3.11")
    assert code == 2 and "--gpu" in one_line(err)


@pytest.mark.parametrize("text", ["[]", "null", "3", '"plan"', '{"steps": {}}', '{"target": []}',
                                  '{"steps": [{"action": "install", "package": 1, "requirement": "x"}]}',
                                  '{"packages": [{"name": "torch", "version": null, "method": "wheel"}]}'])
def test_plan_json_of_the_wrong_shape_is_bad_input(tmp_path: Path, text: str) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(text)
    code, err = run("install", "--dry-run", "--plan", str(plan))
    assert code == 2 and f"--plan {plan}" in one_line(err)


def test_plan_errors_name_the_field() -> None:
    bad = {"target": {}, "steps": [{"action": "install", "package": "x", "requirement": "x"}] * 3
           + [{"action": "install", "package": "x", "requirement": "--target=/x"}]}
    with pytest.raises(BadInput, match=r"steps\[3\]\.requirement: '--target=/x' is not a PEP 508 requirement"):
        Plan.from_dict(bad)


def test_plan_round_trips_through_from_dict() -> None:
    code = 0
    result = CliRunner().invoke(main, ["plan", "--json", *TARGET, "xformers", "flash-attn"])
    assert result.exit_code == code, result.output
    data = json.loads(result.stdout)
    data.pop("detection", None)
    assert Plan.from_dict(data).to_dict() == data
