"""Where the plan says each package comes from is where its step installs it from (``Plan.source_of``): a PyPI
mirror moves the steps, not the stack (the solver's choice), so the stack table of `gpustack plan` must follow the
steps: xformers from the mirror, a pass-through from the mirror (or torch's index for torchvision), a kept package
from its own index. Real CLI runs (CliRunner); the mirror is a ``file://`` index written here."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

import fakewheels  # noqa: E402
from resolver.cli import main  # noqa: E402

MIRROR = "https://mirror.example/simple"
A100 = ["--gpu", "A100", "--driver", "550", "--python", "3.11", "--platform", "linux_x86_64"]


def _rows(output: str) -> dict[str, str]:
    """Return the stack table's rows of `plan` output: package -> its "from" cell."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            rows[cells[0]] = cells[-1]
    return rows


def _plan(*args: str) -> str:
    out = CliRunner().invoke(main, ["plan", *args])
    assert out.exit_code == 0, out.output
    return out.stdout


def test_the_table_names_the_mirror_a_step_installs_from() -> None:
    out = _plan(*A100, "--index-url", MIRROR, "torch==2.4.1", "xformers")
    rows = _rows(out)
    assert rows["torch"] == "https://download.pytorch.org/whl/cu124"
    assert rows["xformers"] == MIRROR, out  # was https://pypi.org/simple, while step 2 installs from the mirror
    assert f"from {MIRROR} with torch==2.4.1+cu124 held" in out  # the step says it as well
    assert "pypi.org" not in out


def test_without_a_mirror_the_table_names_pypi() -> None:
    rows = _rows(_plan(*A100, "torch==2.4.1", "xformers"))
    assert rows["xformers"] == "https://pypi.org/simple"


def test_pass_through_rows_name_their_steps_index(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    mirror = fakewheels.write_index(tmp_path / "mirror", [fakewheels.make_wheel(wheels, "mirpkg", "1.0")])
    url = mirror.as_uri()
    out = _plan(*A100, "--index-url", url, "torch==2.4.1", "mirpkg", "torchvision==0.19.1")
    rows = _rows(out)
    assert rows["mirpkg==1.0"] == url, out  # was "PyPI" with the mirror in every step
    assert rows["torchvision==0.19.1"] == "https://download.pytorch.org/whl/cu124", out  # torch's own build


def test_a_kept_package_names_its_own_index() -> None:
    from resolver.matrix import load
    from resolver.models import PackageChoice, Stack, Target
    from resolver.plan import make_plan

    torch = PackageChoice("torch", "2.4.1+cu124", "wheel", index_url="https://download.pytorch.org/whl/cu124",
                          variant="cu124", cuda="12.4")
    xformers = PackageChoice("xformers", "0.0.28.post1", "wheel", index_url="https://pypi.org/simple", variant="cu121")
    stack = Stack(Target(gpus=(), python="3.11", platform="linux_x86_64"), (torch, xformers), ("mirpkg==1.0",),
                  others_index_url=MIRROR)
    plan = make_plan(stack, {"xformers": "0.0.28.post1"}, load())
    assert [s.package for s in plan.steps] == ["torch", "mirpkg"]
    assert plan.source_of("xformers") == "https://pypi.org/simple"  # kept: nothing installs it
    assert plan.source_of("mirpkg") == MIRROR
    assert plan.source_of("torch") == "https://download.pytorch.org/whl/cu124"
