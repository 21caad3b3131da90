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
    _refused(["plan", "--gpu", "A100", "-r", str(req)], f"-r {req}: requirement {line!r}: a direct URL is not "
             "supported", tmp_path)  # the file is named: the line may be one of hundreds
    assert f"write {pin!r} instead" in run("plan", "--gpu", "A100", "-r", str(req))[2]


def test_a_plain_pin_still_plans(tmp_path: Path) -> None:
    code, out, _ = run("plan", "--cpu", "torch==2.13.0+cpu", "--json")
    assert code == 0 and json.loads(out)["packages"][0]["version"] == "2.13.0+cpu"


# --- environment markers (trial item 5): evaluated against the target, never this machine ---------------------------

def _plan(*args: str) -> dict[str, object]:
    code, out, err = run("plan", *args, "--json")
    assert code == 0, (out, err)
    data: dict[str, object] = json.loads(out)
    return data


def _names(plan: dict[str, object]) -> list[str]:
    return [p["name"] for p in plan["packages"]]  # type: ignore[attr-defined]


def test_a_requirement_whose_marker_is_false_on_the_target_is_left_out_with_a_note() -> None:
    # a CPU target used to refuse ("xformers needs an NVIDIA GPU") a package asked for on Windows only
    plan = _plan("--cpu", 'xformers; sys_platform == "win32"')
    assert _names(plan) == ["torch"]
    assert plan["notes"][0] == ('left out \'xformers; sys_platform == "win32"\': its environment marker is false on '  # type: ignore[index]
                                "the target (linux_x86_64, Python 3.11)")
    # the marker reads the target's platform, not this machine's: the same line on a Windows target is planned
    code, _, _ = run("plan", "--cpu", "--platform", "win_amd64", 'xformers; sys_platform == "win32"')
    assert code == 1  # asked for there, and refused for the CPU target as any xformers request is


def test_markers_read_the_target_platform_and_python() -> None:
    line = 'flash-attn; platform_machine == "aarch64"'
    x86 = _plan("--gpu", "A100", "--driver", "550.54.15", line)  # used to plan a 20-minute source build
    assert _names(x86) == ["torch"] and any(line in n for n in x86["notes"])  # type: ignore[attr-defined]
    arm = _plan("--gpu", "GH200", "--platform", "linux_aarch64", "--driver", "550.54.15", line)
    assert _names(arm) == ["torch", "flash-attn"] and not any(line in n for n in arm["notes"])  # type: ignore[attr-defined]
    old = 'xformers; python_version < "3.10"'
    assert _names(_plan("--gpu", "A100", "--python", "3.9", old)) == ["torch", "xformers"]
    assert _names(_plan("--gpu", "A100", "--python", "3.12", old)) == ["torch"]
    # True markers keep the requirement (windows: os_name "nt", platform_machine "AMD64")
    both = 'xformers; os_name == "nt" and platform_machine == "AMD64"'
    assert _names(_plan("--gpu", "A100", "--platform", "win_amd64", both)) == ["torch", "xformers"]


def test_markers_in_a_requirements_file(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text('torch<2.12\nxformers ; sys_platform == "win32"  # windows only\n')
    plan = _plan("--gpu", "A100", "-r", str(req))
    assert _names(plan) == ["torch"] and plan["packages"][0]["version"].startswith("2.11")  # type: ignore[index]


@pytest.mark.parametrize("marker", ['platform_release >= "5"', 'python_full_version >= "3.11.2"',
                                    'extra == "cuda"', 'sys_platform == "linux" or platform_version == "x"'])
def test_a_marker_the_target_does_not_determine_is_bad_input(marker: str, tmp_path: Path) -> None:
    line = f"xformers; {marker}"
    name = marker.split(" or ")[-1].split()[0]
    _refused(["plan", "--gpu", "A100", line], f"requirement {line!r}: its marker reads {name}, which a target does "
             "not determine", tmp_path)
    _refused(["lock", "--gpu", "A100", line, "-o", str(tmp_path / "pylock.toml")], f"requirement {line!r}", tmp_path)


def test_lock_leaves_out_what_the_target_marker_excludes_and_records_the_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver import hashes, lock_resolve
    from resolver.lock import loads

    monkeypatch.setattr(hashes, "fetch_text", lambda url: None)  # offline: every hash is written as missing
    monkeypatch.setattr(lock_resolve, "_head", lambda url: None)
    out = tmp_path / "pylock.toml"
    line = 'xformers; sys_platform == "win32"'
    code, _, err = run("lock", "--cpu", "torch==2.13.0", line, "--no-deps", "-o", str(out))
    assert code == 0, err
    locked = loads(out.read_text())
    assert [p.name for p in (*locked.packages, *locked.missing)] == ["torch"]
    assert locked.request == ("torch==2.13.0", line)  # a re-lock evaluates the marker again for its target


FLEET = Path(__file__).parent / "fixtures" / "fleet" / "kubectl-nodes.json"


def test_a_fleet_evaluates_markers_for_its_platform_and_refuses_them_across_two(tmp_path: Path) -> None:
    line = 'xformers; platform_machine == "aarch64"'
    plan = _plan("--fleet", str(FLEET), "--python", "3.11", line)  # every GPU node of the fixture is amd64
    assert _names(plan) == ["torch"] and any(line in n for n in plan["notes"])  # type: ignore[attr-defined]
    nodes = json.loads(FLEET.read_text())
    for item in nodes["items"]:
        if item["metadata"]["name"] == "gpu-t4-1":
            item["metadata"]["labels"]["kubernetes.io/arch"] = item["status"]["nodeInfo"]["architecture"] = "arm64"
    mixed = tmp_path / "nodes.json"
    mixed.write_text(json.dumps(nodes))
    _refused(["plan", "--fleet", str(mixed), "--per-class", line], "--fleet: the classes run on linux_aarch64 and "
             "linux_x86_64, and the request's environment markers depend on the platform", tmp_path)
    code, out, _ = run("plan", "--fleet", str(mixed), "--per-class", "--python", "3.11", "xformers")
    # without a marker: one answer per class, each for its own platform (the aarch64 T4 has no CUDA wheel: exit 1)
    assert code == 1 and "Class t4-d535" in out and "Class h100-80gb-hbm3-d550" in out


# --- nonsense values (trial item 14) ----------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    # a capability no GPU has used to plan a PTX-only stack for sm_999 (exit 0), or fail with exit 1 for 0.0
    (["plan", "--gpu", "99.9"], "--gpu 99.9: no GPU in the GPU table has compute capability 99.9 (known: 3.5, "),
    (["plan", "--gpu", "0.0"], "--gpu 0.0: no GPU in the GPU table has compute capability 0.0"),
    (["lock", "--gpu", "sm_999", "-o", "{tmp}/pylock.toml"], "--gpu sm_999: no GPU in the GPU table"),
    # a CPU target has no driver: the driver used to be dropped without a word
    (["plan", "--cpu", "--driver", "535.104.05"], "--cpu and --driver 535.104.05: a CPU target has no NVIDIA driver"),
    (["install", "--cpu", "--driver", "535.104.05", "--dry-run"], "--cpu and --driver 535.104.05"),
    # file://relative/x names the host "relative": pip and uv cannot read it
    (["plan", "--cpu", "--index-url", "file://relative/x", "numpy"],
     "--index-url file://relative/x: a file URL needs an absolute path; write file:///absolute/folder"),
    (["install", "--cpu", "--index-url", "file:relative/x", "--dry-run"], "--index-url file:relative/x: a file URL"),
    (["install", "--cpu", "--torch-index-url", "file://mirror/whl", "--dry-run"],
     "--torch-index-url file://mirror/whl: a file URL needs an absolute path"),
    # extras of what gpustack plans as one build used to be dropped
    (["plan", "--cpu", "torch[foo]"], "requirement 'torch[foo]': extras of torch ([foo]) are not supported"),
    (["dockerfile", "--gpu", "H100", "flash-attn-4[cu13]", "-o", "{tmp}/Dockerfile"],
     "requirement 'flash-attn-4[cu13]': extras of flash-attn-4 ([cu13])"),
])
def test_nonsense_values_are_bad_input(args: list[str], message: str, tmp_path: Path) -> None:
    _refused([a.format(tmp=tmp_path) for a in args], message, tmp_path)


def test_real_capabilities_and_absolute_file_urls_still_plan() -> None:
    assert _plan("--gpu", "12.1")["target"]["gpus"][0]["compute_capability"] == "12.1"  # type: ignore[index]
    assert _plan("--gpu", "sm_37")["target"]["gpus"][0]["compute_capability"] == "3.7"  # type: ignore[index]
    plan = _plan("--cpu", "--index-url", "file://localhost/opt/pypi/simple")  # localhost is this machine
    assert _names(plan) == ["torch"]


def test_extras_of_a_pass_through_requirement_are_kept(tmp_path: Path) -> None:
    index = tmp_path / "simple" / "requests"
    index.mkdir(parents=True)
    (index / "index.html").write_text('<a href="requests-2.32.3-py3-none-any.whl">requests-2.32.3-py3-none-any.whl</a>')
    plan = _plan("--cpu", "--index-url", (tmp_path / "simple").as_uri(), "requests[socks]")
    assert [s["requirement"] for s in plan["steps"]][-1] == "requests[socks]==2.32.3"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("nvcc", "message"), [
    ("99.0", "--nvcc 99.0: newer than any CUDA the matrices know (the newest torch build uses CUDA "),
    ("0.5", "--nvcc 0.5: not a CUDA release; pass the release `nvcc --version` prints"),
])
def test_an_nvcc_no_cuda_has_is_bad_input(nvcc: str, message: str, tmp_path: Path) -> None:
    _refused(["plan", "--gpu", "A100", "--nvcc", nvcc], message, tmp_path)  # 99.0 used to change the plan silently
    _refused(["plan", "--fleet", str(FLEET), "--nvcc", nvcc], message, tmp_path)
    assert _plan("--gpu", "A100", "--nvcc", "13.1")["target"]["nvcc"] == "13.1"  # type: ignore[index]


def test_requirements_file_continuations_are_joined_as_pip_joins_them(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("torch\\\n<2.12\nxformers \\\n  <0.0.30 # pinned\n")  # used to fail: invalid requirement 'torch\\'
    plan = _plan("--gpu", "A100", "-r", str(req))
    assert [(p["name"], p["version"]) for p in plan["packages"]] == [  # type: ignore[attr-defined]
        ("torch", "2.6.0+cu124"), ("xformers", "0.0.29.post3")]
    req.write_text("torch<2.12 \\\n# a comment line ends the continuation\nxformers\n")
    assert _names(_plan("--gpu", "A100", "-r", str(req))) == ["torch", "xformers"]
    # a hashed requirements file (what `lock --format requirements` writes) names the option it cannot honour
    req.write_text("torch==2.1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    _refused(["plan", "--gpu", "A100", "-r", str(req)], f"-r {req}: option --hash after 'torch==2.1.0' is not "
             "supported; list requirements only", tmp_path)


def test_check_upgrade_reads_markers_for_the_sets_target() -> None:
    from resolver.matrix import load
    from resolver.models import Target
    from resolver.upgrade import Installed, upgrade_request

    linux = Installed(Target(gpus=(), python="3.11", platform="linux_x86_64"), {"torch": "2.13.0+cpu"})
    windows_only = 'xformers; sys_platform == "win32"'
    req = upgrade_request(linux, load(), original=["torch==2.13.0", windows_only], requirements=[windows_only])
    assert req.xformers is None and req.dropped == (windows_only,)
    windows = Installed(Target(gpus=(), python="3.11", platform="win_amd64"), {"torch": "2.13.0+cpu"})
    assert upgrade_request(windows, load(), original=[windows_only]).xformers is not None


@pytest.mark.parametrize("marker, names", [
    ('os.name == "nt"', {"os_name"}),  # legacy spellings, as packaging normalizes them
    ("platform.python_implementation == 'PyPy' and python_implementation == 'CPython'", {"platform_python_implementation"}),
    ('"linux" in sys_platform', {"sys_platform"}),
    ("platform_version == \"x'y and python_full_version\"", {"platform_version"}),  # a value is never a variable
    ("platform_release not in 'or in not and'", {"platform_release"}),
    ('(sys_platform == "linux" or os_name == "nt") and python_version >= "3.8"', {"sys_platform", "os_name",
                                                                                  "python_version"}),
])
def test_marker_names_are_the_variables_a_marker_reads(marker: str, names: set[str]) -> None:
    from packaging.markers import Marker

    from resolver.request import marker_names

    assert marker_names(Marker(marker)) == names


def test_nested_requirement_files_are_read_as_pip_reads_them(tmp_path: Path) -> None:
    """A ``-r FILE`` line (also ``--requirement=FILE``, ``-rFILE``) reads FILE relative to the file naming it, as pip
    does; real projects nest them (requirements/dev.txt -> base.txt). It used to be refused as an option line."""
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "base.txt").write_text("torch<2.12\n")
    top = tmp_path / "requirements.txt"
    top.write_text("-r reqs/base.txt\nxformers\n")
    plan = _plan("--gpu", "A100", "--driver", "550", "-r", str(top))
    assert [(p["name"], p["version"]) for p in plan["packages"]] == [  # type: ignore[attr-defined]
        ("torch", "2.11.0+cu128"), ("xformers", "0.0.35")]
    for spelling in ("--requirement=reqs/base.txt", "--requirement reqs/base.txt", "-rreqs/base.txt"):
        top.write_text(spelling + "\n")
        assert _names(_plan("--gpu", "A100", "--driver", "550", "-r", str(top))) == ["torch"]


@pytest.mark.parametrize(("line", "message"), [
    ("-c cons.txt", "option line '-c cons.txt' is not supported; constraints files are not read; pin the packages in "
                    "the requirements instead (name==version)"),
    ("-e ./src", "option line '-e ./src' is not supported; editable installs are not planned; install it after the "
                 "stack (`pip install -e PATH`)"),
    ("--extra-index-url https://example.org/simple", "option line '--extra-index-url https://example.org/simple' is "
     "not supported; pass your PyPI mirror on the command line: --index-url URL"),
    ("--index-url=https://example.org/simple", "option line '--index-url=https://example.org/simple' is not "
     "supported; pass the index on the command line: --index-url URL"),
    ("--pre", "option line '--pre' is not supported; list requirements only"),
])
def test_an_option_line_names_what_to_do_instead(line: str, message: str, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(f"torch\n{line}\n")
    _refused(["plan", "--gpu", "A100", "-r", str(req)], f"-r {req}: {message}", tmp_path)


def test_a_nested_file_that_is_missing_or_loops_is_bad_input(tmp_path: Path) -> None:
    top = tmp_path / "requirements.txt"
    top.write_text("-r missing.txt\n")
    _refused(["plan", "--gpu", "A100", "-r", str(top)], f"-r {top}: -r missing.txt: cannot read it (No such file or "
             "directory); pass a requirements file", tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop.txt").write_text("-r ../requirements.txt\n")
    top.write_text("torch\n-r sub/loop.txt\n")
    _refused(["plan", "--gpu", "A100", "-r", str(top)], f"-r {top}: -r sub/loop.txt: -r ../requirements.txt: "
             "includes itself", tmp_path)
