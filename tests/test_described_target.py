"""A described target (--gpu, --cpu, --fleet) takes this machine's Python and platform when they are not given: the
plan says so once, in its notes (human and --json), with the options that change them (pipeline.target_from decides,
Target.from_here carries it, solve writes the note)."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from _plans import plan_json
from resolver.cli import main
from resolver.pipeline import this_platform

HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
FLEET = Path(__file__).parent / "fixtures" / "fleet" / "kubectl-nodes.json"


def _said(notes: list[str]) -> list[str]:
    return [n for n in notes if "this machine's" in n]


def test_a_gpu_target_says_it_took_this_machines_python_and_platform() -> None:
    code, plan = plan_json("--gpu", "H100", "--driver", "580.95.05")
    assert code == 0, plan
    assert (plan["target"]["python"], plan["target"]["platform"]) == (HERE_PY, this_platform())
    [note] = _said(plan["notes"])
    assert note.startswith(f"Python {HERE_PY} and platform {this_platform()} are this machine's")
    assert "--python X.Y" in note and "--platform TAG (linux_x86_64, linux_aarch64, win_amd64)" in note
    human = CliRunner().invoke(main, ["plan", "--gpu", "H100", "--driver", "580.95.05"])
    assert human.exit_code == 0, human.output
    assert sum("this machine's" in line for line in human.output.splitlines()) == 1


def test_only_what_was_not_given_is_named() -> None:
    code, plan = plan_json("--cpu", "--python", "3.12")
    assert code == 0 and plan["target"]["python"] == "3.12"
    [note] = _said(plan["notes"])
    assert note.startswith(f"platform {this_platform()} is this machine's") and "--python" not in note
    for args in (("--gpu", "H100", "--python", "3.12", "--platform", "linux_aarch64"),
                 ("--gpu", "GH200", "--python", "3.12")):  # a GH200's platform comes from the GPU table
        code, plan = plan_json(*args)
        assert code == 0, (args, plan)
        assert _said(plan["notes"]) == [], args


def test_a_detected_target_and_an_interpreter_given_say_nothing_of_it() -> None:
    for args in ((), ("--gpu", "H100", "--python-exe", sys.executable)):
        code, plan = plan_json(*args)
        assert code == 0, (args, plan)
        assert _said(plan["notes"]) == [], args


def test_a_fleet_says_its_python_is_this_machines() -> None:
    code, plan = plan_json("--fleet", str(FLEET))
    assert code == 0, plan
    [note] = _said(plan["notes"])
    assert note.startswith(f"Python {HERE_PY} is this machine's") and "--platform" not in note
    code, plan = plan_json("--fleet", str(FLEET), "--python", "3.12")
    assert _said(plan["notes"]) == []
