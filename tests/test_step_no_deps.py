"""A plan's ``no_deps`` says what install does with the step (``models.Step``): a build step's wheel is installed with
the dependencies it declares, its constraints held, so the plan JSON says ``false`` there (it said ``true``, which
no command did). A plan file written before, whose build step says ``true``, is still read and installs the same."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from resolver.cli import main

# a V100 has no xformers wheel for torch 2.10: xformers 0.0.35 is built from source
V100 = ["--gpu", "V100", "--driver", "580.159.04", "--python", "3.11", "--platform", "linux_x86_64",
        "torch==2.10.0", "xformers"]


def _built_wheel_install(result_stdout: str) -> list[str]:
    steps = json.loads(result_stdout)["steps"]
    (argv,) = [s["argv"] for s in steps if s["package"] == "xformers" and "<built wheel>" in s["argv"]]
    return list(argv)


def test_a_build_step_says_no_deps_false_because_its_wheel_is_installed_with_its_dependencies(tmp_path: Path) -> None:
    plan = CliRunner().invoke(main, ["plan", "--json", *V100])
    assert plan.exit_code == 0, plan.output
    data = json.loads(plan.stdout)
    (build,) = [s for s in data["steps"] if s["action"] == "build"]
    assert build["package"] == "xformers" and build["no_deps"] is False
    # what install does with it, from that very file: the built wheel without --no-deps, torch held
    path = tmp_path / "plan.json"
    path.write_text(plan.stdout)
    dry = CliRunner().invoke(main, ["install", "--dry-run", "--json", "--installer", "pip", "--plan", str(path)])
    assert dry.exit_code == 0, dry.output
    argv = _built_wheel_install(dry.stdout)
    assert "--no-deps" not in argv and "--constraint" in argv


def test_an_older_plan_file_with_no_deps_true_on_a_build_step_installs_the_same(tmp_path: Path) -> None:
    plan = CliRunner().invoke(main, ["plan", "--json", *V100])
    assert plan.exit_code == 0, plan.output
    data = json.loads(plan.stdout)
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(plan.stdout)
    for s in data["steps"]:
        if s["action"] == "build":
            s["no_deps"] = True  # what plans said before
    old.write_text(json.dumps(data))
    runs = [CliRunner().invoke(main, ["install", "--dry-run", "--json", "--installer", "pip", "--plan", str(p)])
            for p in (new, old)]
    assert [r.exit_code for r in runs] == [0, 0], [r.output for r in runs]
    assert json.loads(runs[0].stdout)["steps"] == json.loads(runs[1].stdout)["steps"]
    assert "--no-deps" not in _built_wheel_install(runs[1].stdout)
