"""check-upgrade reads which torch a locked flash-attn wheel was built for from its file name, by the layout of the
matrix's ``wheel_url`` template (flash_attn.toml)."""

from __future__ import annotations

import pytest

from resolver.cmd_upgrade import _built_for_torch, _wheel_name_pattern
from resolver.matrix import load

_GH = "https://github.com/Dao-AILab/flash-attention/releases/download/v2.5.8/"


@pytest.mark.parametrize("url, torch", [
    (_GH + "flash_attn-2.5.8+cu122torch2.3cxx11abiFALSE-cp311-cp311-linux_x86_64.whl", "2.3"),
    (_GH + "flash_attn-2.8.3+cu12torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl", "2.10"),
    ("https://files.pythonhosted.org/packages/flash_attn-2.5.8.tar.gz", None),  # an sdist: built here, any torch
    ("https://pypi.org/simple/flash-attn/flash_attn-2.5.8-cp311-cp311-linux_x86_64.whl", None),  # no label
    ("https://example.org/not-a-wheel.whl", None),
    (_GH + "flash_attn-2.6.3%2Bcu123torch2.4cxx11abiTRUE-cp310-cp310-linux_x86_64.whl", "2.4"),  # quoted '+'
])
def test_built_for_torch(url: str, torch: str | None) -> None:
    assert _built_for_torch(url, _wheel_name_pattern(load().facts.flash_wheel_url)) == torch


def test_built_for_torch_reads_what_compat_writes() -> None:
    from packaging.version import Version

    from resolver import compat

    m = load()
    wheel_name = _wheel_name_pattern(m.facts.flash_wheel_url)
    for f in m.flash_attn:
        for torch in ("2.4.0", "2.10.0"):
            url = compat.flash_wheel_url(f, Version(torch), Version("12.4"), True, "3.11", "linux_x86_64", m)
            assert _built_for_torch(url, wheel_name) == torch.rsplit(".", 1)[0], url


# --- the proposal is what plan gives for the same target and request (s7 trial #2, #6, #15) --------------------------

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from resolver.cli import main
from resolver.models import ComputeCapability, Gpu, Target


def _lock(tmp_path: Path, target: Target, *versions: tuple[str, str], name: str = "pylock.toml",
          **made_for: Any) -> Path:
    """A lock of ``versions`` (name, version) for ``target``, as ``gpustack lock`` writes it (placeholder hashes);
    ``made_for``: what it records in ``[tool.gpustack]`` (request, driver)."""
    from resolver.lock import LockedFile, dumps
    from resolver.models import PYPI_SIMPLE, PackageChoice, Plan, Stack, Step

    choices = tuple(PackageChoice(n, v, "wheel", index_url=PYPI_SIMPLE) for n, v in versions)
    plan = Plan(Stack(target, choices), tuple(Step("install", c.name, c.requirement, index_url=PYPI_SIMPLE)
                                              for c in choices))
    files = {n: LockedFile(n, v, f"{n}-{v}-py3-none-any.whl", f"https://files.example/{n}-{v}-py3-none-any.whl",
                           "a" * 64) for n, v in versions}
    path = tmp_path / name
    path.write_text(dumps(plan, files, matrix=load(), **made_for))
    return path


def _index(tmp_path: Path) -> str:
    """A local index (a flat folder, as --find-links): numpy 1.26.4 and 2.4.6, sympy 1.12, 1.13.3 and 1.14.0."""
    folder = tmp_path / "index"
    folder.mkdir()
    for f in ("numpy-1.26.4-py3-none-any.whl", "numpy-2.4.6-py3-none-any.whl", "sympy-1.12-py3-none-any.whl",
              "sympy-1.13.3-py3-none-any.whl", "sympy-1.14.0-py3-none-any.whl"):
        (folder / f).write_bytes(b"")
    return f"file://{folder}"


RTX3090 = Target(gpus=(Gpu("NVIDIA GeForce RTX 3090", ComputeCapability(8, 6)),), python="3.10",
                 platform="linux_x86_64")


def test_a_pass_through_range_is_pinned_from_the_index_as_plan_pins_it(tmp_path: Path) -> None:
    lock = _lock(tmp_path, RTX3090, ("torch", "2.1.0"))
    index = _index(tmp_path)
    run = CliRunner().invoke
    got = run(main, ["check-upgrade", "numpy<2", "--lock", str(lock), "--index-url", index, "--json"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["proposed"]["numpy"] == "1.26.4"  # was the newest, 2.4.6, whatever the range
    plan = run(main, ["plan", "--gpu", "8.6", "--driver", "535.104.05", "--python", "3.10", "torch==2.1.0", "numpy<2",
                      "--index-url", index, "--json"])
    assert "numpy==1.26.4" in [s["requirement"] for s in json.loads(plan.output)["steps"]], plan.output


def test_a_requirement_no_release_meets_is_refused_as_plan_refuses_it(tmp_path: Path) -> None:
    # s9 trial #10: one meaning per exit code (README): a well-formed requirement nothing serves is a refusal (exit 1,
    # kind no_release) in every command; exit 2 is for input that is not well formed.
    lock = _lock(tmp_path, RTX3090, ("torch", "2.1.0"))
    before = lock.read_bytes()
    index = _index(tmp_path)
    run = CliRunner().invoke
    for req, why in (("numpy>=3", "no release of numpy on file://"), ("sympy==0.1", "matches ==0.1 (newest: 1.14.0)"),
                     ("nosuchthing", "nosuchthing is not on file://"), ("torch>=99", "matches no torch release")):
        got = run(main, ["check-upgrade", req, "--lock", str(lock), "--index-url", index, "--json"])
        assert got.exit_code == 1 and got.stderr == "", got.output
        data = json.loads(got.stdout)
        assert data["verdict"] == "unsafe" and len(data["findings"]) == 1, data
        assert data["findings"][0]["kind"] in ("no_release", "index"), data  # the index's refusal, as plan's
        assert why in data["findings"][0]["reason"], data
        plan = run(main, ["plan", "--gpu", "8.6", "--driver", "535.104.05", "--python", "3.10", "torch==2.1.0"
                          if not req.startswith("torch") else req, *([] if req.startswith("torch") else [req]),
                          "--index-url", index])
        assert plan.exit_code == 1, (req, plan.output)
    bad = run(main, ["check-upgrade", "torch=>2", "--lock", str(lock)])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1, bad.output
    assert lock.read_bytes() == before


def test_an_index_that_does_not_answer_is_not_bad_input(tmp_path: Path) -> None:
    # It exited 2 (bad input) where plan, asked the same, exits 1: README's exit codes say 1 for an index that does
    # not answer. A closed port on this machine answers at once.
    import socket

    lock = _lock(tmp_path, RTX3090, ("torch", "2.1.0"))
    before = lock.read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/simple"
    got = CliRunner().invoke(main, ["check-upgrade", "numpy<2", "--lock", str(lock), "--index-url", dead])
    assert got.exit_code == 1, got.output
    assert got.stderr.startswith("gpustack: numpy<2: could not check numpy on ") and got.stderr.count("\n") == 1
    plan = CliRunner().invoke(main, ["plan", "--gpu", "8.6", "--driver", "535.104.05", "--python", "3.10",
                                     "torch==2.1.0", "numpy<2", "--index-url", dead])
    assert plan.exit_code == got.exit_code, plan.output
    assert lock.read_bytes() == before


def _venv_with(tmp_path: Path, dists: dict[str, tuple[str, list[str]]]) -> str:
    """A real venv (no pip) whose site-packages holds the metadata of ``dists`` (name -> version, Requires-Dist)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for name, (version, requires) in dists.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        (info / "METADATA").write_text("\n".join(lines + [f"Requires-Dist: {r}" for r in requires]) + "\n")
    return str(python)


def test_a_pass_through_move_that_breaks_an_installed_packages_requirement_is_unsafe(tmp_path: Path) -> None:
    # torch 2.13.0 declares sympy>=1.13.3: sympy 1.12 breaks it; sympy<1.14 takes 1.13.3, which keeps it.
    python = _venv_with(tmp_path, {"torch": ("2.13.0", ["sympy>=1.13.3", "nvidia-nccl; extra == 'cuda'"]),
                                   "sympy": ("1.14.0", [])})
    index = _index(tmp_path)
    run = CliRunner().invoke
    bad = run(main, ["check-upgrade", "sympy==1.12", "--python-exe", python, "--index-url", index, "--json"])
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.output)
    assert data["verdict"] == "unsafe" and data["proposed"]["sympy"] == "1.12"
    assert [(f["package"], f["kind"]) for f in data["findings"]] == [("sympy", "requirement")]
    assert "torch 2.13.0 requires sympy>=1.13.3" in data["findings"][0]["reason"]
    ok = run(main, ["check-upgrade", "sympy<1.14", "--python-exe", python, "--index-url", index])
    assert ok.exit_code == 0 and ok.output.startswith("safe: sympy 1.14.0 -> 1.13.3"), ok.output


def test_a_torch_range_proposes_the_torch_plan_solves_for_the_targets_python(tmp_path: Path) -> None:
    # torch>=2.11 on Python 3.10: the newest torch in the matrices has no cp310 wheel; plan and pip take an older one.
    lock = _lock(tmp_path, RTX3090, ("torch", "2.10.0"))
    run = CliRunner().invoke
    got = run(main, ["check-upgrade", "torch>=2.11", "--lock", str(lock), "--driver", "580.95.05", "--json"])
    plan = run(main, ["plan", "--gpu", "8.6", "--driver", "580.95.05", "--python", "3.10", "torch>=2.11", "--json"])
    planned = json.loads(plan.output)["packages"][0]["version"]
    data = json.loads(got.output)
    assert got.exit_code == 0 and data["verdict"] == "safe", got.output
    assert data["proposed"]["torch"] == planned.split("+")[0] and data["checked"]["torch"] == planned
    newest = max(r.version for r in load().torch if not r.version.is_prerelease)
    assert not newest.base_version == data["proposed"]["torch"]  # the case: the newest has no wheel for 3.10


def test_one_current_set_and_no_driver_for_a_cpu_lock(tmp_path: Path) -> None:
    gpu = _lock(tmp_path, RTX3090, ("torch", "2.1.0"))
    cpu = _lock(tmp_path, Target(gpus=(), python="3.11", platform="linux_x86_64"), ("torch", "2.13.0+cpu"),
                name="pylock.cpu.toml")
    run = CliRunner().invoke
    both = run(main, ["check-upgrade", "torch==2.2.0", "--lock", str(gpu), "--python-exe", sys.executable])
    assert both.exit_code == 2 and both.stderr.count("\n") == 1, both.output
    assert "--lock" in both.stderr and "--python-exe" in both.stderr and "pass one" in both.stderr
    driver = run(main, ["check-upgrade", "torch==2.14.1", "--lock", str(cpu), "--driver", "535.104.05"])
    assert driver.exit_code == 2 and driver.stderr.count("\n") == 1, driver.output
    assert "--driver 535.104.05" in driver.stderr and "CPU target" in driver.stderr and "drop --driver" in driver.stderr
    # with --gpu the set is checked for a GPU machine: the driver is that machine's
    gpu_too = run(main, ["check-upgrade", "torch==2.14.1", "--lock", str(cpu), "--driver", "580.95.05", "--gpu", "8.6"])
    assert gpu_too.exit_code in (0, 1) and gpu_too.stderr == "", gpu_too.output


def test_asking_for_xformers_moves_torch_to_its_pin_as_pip_would(tmp_path: Path) -> None:
    # xformers 0.0.24 pins torch==2.2.0 (Requires-Dist): pip moves torch with it; the report never says a torch was
    # asked that the user did not ask for.
    lock = _lock(tmp_path, RTX3090, ("torch", "2.1.0"), ("xformers", "0.0.22.post7"))
    got = CliRunner().invoke(main, ["check-upgrade", "xformers==0.0.24", "--lock", str(lock), "--driver", "535.104.05",
                                    "--json"])
    data = json.loads(got.output)
    assert data["proposed"]["torch"] == "2.2.0" and data["proposed"]["xformers"] == "0.0.24", data
    assert got.exit_code == 0 and data["verdict"] == "safe", data
    assert not any("was asked" in f["reason"] for f in data["findings"])
    # Where no set solves (driver 470 runs no torch 2.10 build), the verdict names that, not a torch nobody asked for;
    # the lock's own request (torch==2.1.0) gives way to the move xformers forces, as a requirement naming torch does.
    old = _lock(tmp_path, RTX3090, ("torch", "2.1.0"), ("xformers", "0.0.22.post7"), name="pylock.old.toml",
                request=["torch==2.1.0", "xformers"], driver="470.82.01")
    got = CliRunner().invoke(main, ["check-upgrade", "xformers==0.0.34", "--lock", str(old), "--json"])
    data = json.loads(got.output)
    assert got.exit_code == 1 and data["proposed"]["torch"] == "2.10.0", data
    assert [f["kind"] for f in data["findings"]] == ["driver"], data
    assert not any("was asked" in f["reason"] for f in data["findings"])


CPU311 = Target(gpus=(), python="3.11", platform="linux_x86_64")


def test_a_torch_downgrade_under_a_numpy_hold_is_unsafe_as_plan_refuses_it(tmp_path: Path) -> None:
    # s9 trial #4: torch<2.3 holds numpy<2 (matrices/pins.toml). plan refuses torch==2.1.0 beside numpy==2.4.6;
    # check-upgrade of the same move over a set that keeps numpy 2.4.6 says so too, and its nearest safe set moves
    # numpy inside the hold (the newest numpy<2 on the index, as plan pins it).
    lock = _lock(tmp_path, CPU311, ("torch", "2.13.0+cpu"), ("numpy", "2.4.6"))
    index = _index(tmp_path)
    run = CliRunner().invoke
    plan = run(main, ["plan", "--cpu", "--python", "3.11", "torch==2.1.0", "numpy==2.4.6", "--index-url", index])
    assert plan.exit_code == 1 and "numpy==2.4.6 contradicts numpy<2" in plan.output, plan.output
    got = run(main, ["check-upgrade", "torch==2.1.0", "--lock", str(lock), "--index-url", index, "--json"])
    data = json.loads(got.output)
    assert got.exit_code == 1 and data["verdict"] == "unsafe", data
    assert [(f["package"], f["kind"]) for f in data["findings"]] == [("numpy", "hold")], data
    assert "numpy==2.4.6 contradicts numpy<2" in data["findings"][0]["reason"]
    near = data["nearest_safe"]
    assert near["numpy"] == "1.26.4" and near["torch"].split("+")[0] == "2.1.0", near
    again = run(main, ["plan", "--cpu", "--python", "3.11", f"torch=={near['torch']}", f"numpy=={near['numpy']}",
                       "--index-url", index])
    assert again.exit_code == 0, again.output
    text = run(main, ["check-upgrade", "torch==2.1.0", "--lock", str(lock), "--index-url", index])
    assert "nearest safe set: numpy==1.26.4, torch==2.1.0" in text.output, text.output
    # torch 2.3 takes numpy 2: the same move to 2.3.0 keeps it and is safe
    ok = run(main, ["check-upgrade", "torch==2.3.0", "--lock", str(lock), "--index-url", index])
    assert ok.exit_code == 0 and ok.output.startswith("safe"), ok.output


def test_a_cpu_build_over_a_gpu_target_is_refused_for_the_true_reason(tmp_path: Path) -> None:
    # s9 trial #8: the +cpu torch of the set exists; what fails is that it drives no GPU. The reason said
    # 'torch==2.13.0 has no +cpu build for linux_x86_64', which the set itself disproves.
    lock = _lock(tmp_path, CPU311, ("torch", "2.13.0+cpu"), ("numpy", "2.4.6"))
    got = CliRunner().invoke(main, ["check-upgrade", "xformers", "--lock", str(lock), "--gpu", "A100", "--driver",
                                    "550.54.15", "--json"])
    data = json.loads(got.output)
    assert got.exit_code == 1 and [f["kind"] for f in data["findings"]] == ["variant"], data
    reason = data["findings"][0]["reason"]
    assert "torch==2.13.0+cpu cannot drive the A100" in reason and "has no +cpu build" not in reason, reason
    assert data["nearest_safe"]["torch"].startswith("2.13.0+cu"), data
    plan = CliRunner().invoke(main, ["plan", "--gpu", "A100", "--driver", "550.54.15", "torch==2.13.0+cpu"])
    assert plan.exit_code == 1 and "torch==2.13.0+cpu cannot drive the A100" in plan.output, plan.output


def test_a_torch_moved_by_the_request_is_said_to_be_implied_not_asked(tmp_path: Path) -> None:
    # s9 trial #6 / s7 #15: flash-attn==2.8.3 needs torch >= 2.2; the kept xformers pins torch 2.1.0. The user asked
    # no torch: the finding says what moved it and why, never "torch==2.2.0 was asked".
    a100 = Target(gpus=(Gpu("NVIDIA A100-SXM4-80GB", ComputeCapability(8, 0)),), python="3.10",
                  platform="linux_x86_64")
    lock = _lock(tmp_path, a100, ("torch", "2.1.0+cu121"), ("xformers", "0.0.22.post7"), ("flash_attn", "2.7.3"),
                 request=["torch==2.1.0", "xformers", "flash-attn"], driver="550.54.15")
    got = CliRunner().invoke(main, ["check-upgrade", "flash-attn==2.8.3", "--lock", str(lock), "--json"])
    data = json.loads(got.output)
    assert got.exit_code == 1 and data["proposed"]["torch"] == "2.2.0", data
    reasons = [f["reason"] for f in data["findings"] if f["kind"] == "torch_pin"]
    assert reasons and not any("was asked" in r for r in reasons), data["findings"]
    # the rows of the two torch 2.1.0 builds, one cause, are one (resolver.refusal.folded)
    assert ("flash-attn==2.8.3 moves torch to 2.2.0 (flash-attn 2.8.3 with torch 2.1.0+cu121, 2.1.0+cu118: needs "
            "torch >= 2.2)") in reasons[0], reasons


# --- --glibc as plan has it, and the nearest set once rebuilt (s10) ----------------------------------------------

A100_311 = Target(gpus=(Gpu("NVIDIA A100-SXM4-80GB", ComputeCapability(8, 0)),), python="3.11",
                  platform="linux_x86_64")
_ASKED = ["torch", "xformers", "flash-attn"]


def _flash_lock(tmp_path: Path) -> Path:
    """torch 2.9.0 + xformers 0.0.33 (pins torch==2.9.0) + flash-attn 2.8.3 on an A100, no glibc recorded: the
    described target's 2.28, where no flash-attn wheel installs."""
    return _lock(tmp_path, A100_311, ("torch", "2.9.0+cu126"), ("xformers", "0.0.33"), ("flash_attn", "2.8.3"),
                 request=_ASKED, driver="580.65.06")


def _replan(versions: dict[str, str], *glibc: str) -> dict[str, str]:
    """Plan the set's versions for the lock's target (as plan would, the whole request): each package's method."""
    pins = [f"{k}=={v}" for k, v in versions.items()]
    got = CliRunner().invoke(main, ["plan", "--json", "--gpu", "A100", "--driver", "580.65.06", "--python", "3.11",
                                    *glibc, *pins])
    assert got.exit_code == 0, got.output
    packages = json.loads(got.stdout)["packages"]
    assert {p["name"]: p["version"] for p in packages} == versions
    return {p["name"]: p["method"] for p in packages}


def test_an_unsafe_move_with_no_safe_set_near_names_the_nearest_set_once_rebuilt(tmp_path: Path) -> None:
    lock = _flash_lock(tmp_path)
    got = CliRunner().invoke(main, ["check-upgrade", "torch==2.10.0", "--lock", str(lock), "--json"])
    data = json.loads(got.stdout)
    assert got.exit_code == 1 and data["verdict"] == "unsafe" and data["nearest_safe"] is None, data
    near = data["nearest_rebuild"]
    assert near["versions"] == {"torch": "2.10.0+cu126", "xformers": "0.0.34", "flash-attn": "2.8.3"}, near
    assert [(f["verdict"], f["kind"], f["package"]) for f in near["findings"]] == [
        ("needs-rebuild", "rebuild", "flash-attn")], near
    # solved for the whole request: plan takes those versions, flash-attn built from source (glibc 2.28)
    assert _replan(near["versions"])["flash-attn"] == "source"
    text = CliRunner().invoke(main, ["check-upgrade", "torch==2.10.0", "--lock", str(lock)]).output
    assert "nearest set once rebuilt: flash-attn==2.8.3, torch==2.10.0+cu126, xformers==0.0.34\n" \
           "  - [needs-rebuild] the flash-attn 2.8.3 binary was built for torch 2.9" in text, text


def test_glibc_is_taken_as_plan_takes_it_and_moves_the_nearest_set(tmp_path: Path) -> None:
    lock = _flash_lock(tmp_path)
    got = CliRunner().invoke(main, ["check-upgrade", "torch==2.10.0", "--lock", str(lock), "--glibc", "2.35", "--json"])
    data = json.loads(got.stdout)
    assert got.exit_code == 1 and data["verdict"] == "unsafe" and data["nearest_rebuild"] is None, data
    near = data["nearest_safe"]
    assert near is not None and near["torch"] == "2.10.0+cu126" and near["xformers"] == "0.0.34", data
    assert _replan(near, "--glibc", "2.35")["flash-attn"] == "wheel"  # a wheel installs with glibc 2.35


@pytest.mark.parametrize(("value", "said"), [
    ("abc", "--glibc 'abc': expected a glibc version such as 2.28"),
    ("", "an empty value after --glibc (an unset shell variable?)"),
])
def test_a_bad_glibc_is_refused_as_plan_refuses_it(value: str, said: str, tmp_path: Path) -> None:
    lock = _flash_lock(tmp_path)
    got = CliRunner().invoke(main, ["check-upgrade", "torch==2.10.0", "--lock", str(lock), "--glibc", value])
    plan = CliRunner().invoke(main, ["plan", "--gpu", "A100", "--glibc", value, "torch"])
    assert got.exit_code == plan.exit_code == 2 and got.stdout == "", got.output
    assert got.stderr.strip() == plan.stderr.strip() and said in got.stderr, (got.stderr, plan.stderr)
    assert len(got.stderr.strip().splitlines()) == 1


def test_glibc_for_a_windows_lock_is_refused(tmp_path: Path) -> None:
    win = dataclasses.replace(A100_311, platform="win_amd64")
    lock = _lock(tmp_path, win, ("torch", "2.9.0+cu126"), request=["torch"], driver="580.65.06")
    got = CliRunner().invoke(main, ["check-upgrade", "torch==2.10.0", "--lock", str(lock), "--glibc", "2.35"])
    assert got.exit_code == 2 and got.stdout == "", got.output
    assert "--glibc 2.35: the target is win_amd64; glibc applies to Linux targets only" in got.stderr

