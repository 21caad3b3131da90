"""resolver.lock / hashes / lock_install: locks built from hand-made plans and a fake index, validated by
``packaging.pylock``, compared with golden files (``GPUSTACK_UPDATE_GOLDEN=1`` rewrites them), read back, checked
against hosts, and installed through a recording runner. Tests marked ``network`` install real wheels from PyPI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.pylock import Pylock
from packaging.specifiers import SpecifierSet

from resolver import hashes, lock_resolve
from resolver.errors import BadInput, CommandFailed
from resolver.lock import LockedFile, check_lock_target, dumps, environment_marker, lock_to_plan, loads
from resolver.lock_install import LockRefused, install_from_lock, requirements_text
from resolver.matrix import load
from resolver.models import PYPI_SIMPLE, PYTORCH_INDEX, ComputeCapability, Gpu, PackageChoice, Plan, Stack, Step, Target, parse_driver

GOLDEN = Path(__file__).parent / "golden"
SHA = {name: (f"{i:x}" * 64)[:64] for i, name in enumerate(["torch", "xformers", "filelock", "typing-extensions", "sdist"], 1)}
CU121 = f"{PYTORCH_INDEX}/cu121"
RTX3090 = Gpu("NVIDIA GeForce RTX 3090", ComputeCapability(8, 6))


def golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/name``; rewrite the file instead when GPUSTACK_UPDATE_GOLDEN=1.
    A missing golden file fails: it is never written silently."""
    path = GOLDEN / name
    if os.environ.get("GPUSTACK_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing; GPUSTACK_UPDATE_GOLDEN=1 writes it (review it before committing)"
    assert text == path.read_text(), f"{name} differs; GPUSTACK_UPDATE_GOLDEN=1 rewrites it"


def json_page(files: list[dict[str, Any]]) -> str:
    return json.dumps({"meta": {"api-version": "1.1"}, "files": files})


def fake_index() -> dict[str, str | None]:
    """Project pages of a fake PyPI and PyTorch index (JSON and HTML, relative and absolute URLs)."""
    return {
        f"{CU121}/torch/": (
            '<html><body>'
            f'<a href="../../cu121/torch-2.1.0%2Bcu121-cp311-cp311-linux_x86_64.whl#sha256={SHA["torch"]}">x</a>'
            f'<a href="/whl/cu121/torch-2.1.0%2Bcu121-cp310-cp310-linux_x86_64.whl#sha256={"0" * 64}">x</a>'
            f'<a href="/whl/cu121/torch-2.1.0%2Bcu121-cp311-cp311-win_amd64.whl#sha256={"0" * 64}">x</a>'
            '</body></html>'
        ),
        f"{PYPI_SIMPLE}/xformers/": json_page([
            {"filename": "xformers-0.0.22.post7.tar.gz", "url": "../../packages/xf/xformers-0.0.22.post7.tar.gz",
             "hashes": {"sha256": SHA["sdist"]}, "size": 4000000, "upload-time": "2023-10-26T12:00:00Z"},
            {"filename": "xformers-0.0.22.post7-cp311-cp311-manylinux2014_x86_64.whl",
             "url": "https://files.example/xformers-0.0.22.post7-cp311-cp311-manylinux2014_x86_64.whl",
             "hashes": {"sha256": SHA["xformers"]}, "size": 200000000},
            {"filename": "xformers-0.0.23-cp311-cp311-manylinux2014_x86_64.whl",
             "url": "https://files.example/xformers-0.0.23-cp311-cp311-manylinux2014_x86_64.whl", "hashes": {}},
        ]),
        f"{PYPI_SIMPLE}/filelock/": json_page([
            {"filename": "filelock-3.13.1-py3-none-any.whl", "url": "https://files.example/filelock-3.13.1-py3-none-any.whl",
             "hashes": {"sha256": SHA["filelock"]}, "size": 11221},
            {"filename": "filelock-3.13.2-py3-none-any.whl", "url": "https://files.example/filelock-3.13.2-py3-none-any.whl",
             "hashes": {"sha256": "f" * 64}, "yanked": "broken"},
        ]),
    }


def fetch_from(pages: dict[str, str | None]) -> hashes.Fetch:
    return lambda url: pages.get(url)


def gpu_plan(*, xformers_source: bool = False) -> Plan:
    """torch 2.1.0+cu121 from the PyTorch index, then xformers (wheel, or built from source), for an RTX 3090."""
    target = Target(gpus=(RTX3090,), python="3.11", platform="linux_x86_64", driver=parse_driver("535.104.05"))
    torch = PackageChoice("torch", "2.1.0+cu121", "wheel", index_url=CU121, variant="cu121", cuda="12.1",
                          arch_list="5.0;6.0;7.0;7.5;8.0;8.6;9.0")
    env = {"TORCH_CUDA_ARCH_LIST": "8.6", "FORCE_CUDA": "1", "MAX_JOBS": "8"}
    xformers = PackageChoice("xformers", "0.0.22.post7", "source" if xformers_source else "wheel", index_url=PYPI_SIMPLE,
                             build_env=env if xformers_source else {}, cuda="12.1",
                             arch_list="8.6" if xformers_source else "5.0+PTX;6.0;6.1;7.0;7.5;8.0+PTX;9.0")
    steps = [Step("install", "torch", "torch==2.1.0+cu121", index_url=CU121, extra_index_urls=(PYPI_SIMPLE,))]
    if xformers_source:
        steps.append(Step("build", "xformers", "xformers==0.0.22.post7", index_url=PYPI_SIMPLE, no_deps=True,
                          constraints=("torch==2.1.0+cu121",), env=env, build_isolation=False))
    else:
        steps.append(Step("install", "xformers", "xformers==0.0.22.post7", index_url=PYPI_SIMPLE,
                          constraints=("torch==2.1.0+cu121",)))
    return Plan(Stack(target, (torch, xformers), torch_cxx11_abi=False), tuple(steps))


def lock_text(plan: Plan, pages: dict[str, str | None] | None = None,
              known: dict[str, LockedFile] | None = None) -> tuple[str, list[str]]:
    files, warnings = hashes.lookup(plan, fetch_from(fake_index() if pages is None else pages), known=known)
    return dumps(plan, files, matrix=load()), warnings


def assert_valid(text: str) -> Pylock:
    return Pylock.from_dict(tomllib.loads(text))


# --- choosing files -------------------------------------------------------------------------------------------------


def test_html_page_urls_are_joined_and_hashes_read() -> None:
    files = hashes.parse_index_page(fake_index()[f"{CU121}/torch/"] or "", f"{CU121}/torch/")
    assert files[0].url == "https://download.pytorch.org/whl/cu121/torch-2.1.0%2Bcu121-cp311-cp311-linux_x86_64.whl"
    assert files[0].sha256 == SHA["torch"]
    assert files[0].filename == "torch-2.1.0+cu121-cp311-cp311-linux_x86_64.whl"


def test_pick_prefers_target_tags_skips_yanked_and_other_pythons() -> None:
    page = f"{PYPI_SIMPLE}/filelock/"
    files = hashes.parse_index_page(fake_index()[page] or "", page)
    accepted = hashes.target_tags("3.11", "linux_x86_64")
    chosen = hashes.pick(files, "filelock", SpecifierSet(), accepted)
    assert chosen is not None and chosen.filename == "filelock-3.13.1-py3-none-any.whl"  # 3.13.2 is yanked
    torch_page = f"{CU121}/torch/"
    torch_files = hashes.parse_index_page(fake_index()[torch_page] or "", torch_page)
    assert hashes.pick(torch_files, "torch", SpecifierSet("==2.1.0+cu121"), hashes.target_tags("3.12", "linux_x86_64")) is None
    win = hashes.pick(torch_files, "torch", SpecifierSet("==2.1.0+cu121"), hashes.target_tags("3.11", "win_amd64"))
    assert win is not None and win.filename.endswith("win_amd64.whl")


def test_target_tags_stop_at_the_glibc_of_the_oldest_base_image() -> None:
    platforms = {t.platform for t in hashes.target_tags("3.11", "linux_x86_64")}
    assert "manylinux_2_35_x86_64" in platforms and "manylinux2014_x86_64" in platforms
    assert "manylinux_2_36_x86_64" not in platforms


# --- writing and reading locks ----------------------------------------------------------------------------------------


def test_gpu_lock_is_valid_pylock_and_matches_golden() -> None:
    # filelock as the resolver (uv) locked it: a dependency the plan has no step for
    filelock = LockedFile("filelock", "3.13.1", "filelock-3.13.1-py3-none-any.whl",
                          "https://files.example/filelock-3.13.1-py3-none-any.whl", SHA["filelock"], index=PYPI_SIMPLE,
                          size=11221)
    text, warnings = lock_text(gpu_plan(), known={"filelock": filelock})
    assert warnings == []
    lock = assert_valid(text)
    assert [p.name for p in lock.packages] == ["filelock", "torch", "xformers"]
    golden("lock_gpu.toml", text)
    data = tomllib.loads(text)
    target = data["tool"]["gpustack"]["target"]
    assert target["min_driver"] == "525.60.13" and target["cuda"] == "12.1"
    assert target["compute_capabilities"] == ["8.6"]
    assert data["environments"] == [environment_marker("3.11", "linux_x86_64")]


def test_source_build_is_locked_as_sdist_with_its_build_env() -> None:
    text, _ = lock_text(gpu_plan(xformers_source=True))
    assert_valid(text)
    golden("lock_gpu_source.toml", text)
    locked = loads(text)
    xf = next(p for p in locked.packages if p.name == "xformers")
    assert xf.method == "source" and xf.kind == "sdist"
    assert xf.url == "https://pypi.org/packages/xf/xformers-0.0.22.post7.tar.gz"
    assert xf.build_env["TORCH_CUDA_ARCH_LIST"] == "8.6"
    plan = lock_to_plan(locked)
    assert [s.action for s in plan.steps] == ["install", "build"]
    assert plan.steps[1].build_isolation is False and all(s.no_deps for s in plan.steps)
    assert locked.hashes[plan.steps[0].url or ""] == SHA["torch"]


def test_unreachable_index_writes_the_hash_as_missing_with_a_warning() -> None:
    pages = fake_index()
    pages[f"{CU121}/torch/"] = None  # download.pytorch.org unreachable
    text, warnings = lock_text(gpu_plan(), pages)
    assert len(warnings) == 1 and "torch" in warnings[0] and "unreachable" in warnings[0]
    assert_valid(text)
    locked = loads(text)
    assert [p.name for p in locked.missing] == ["torch"]
    assert "torch" not in {p.name for p in locked.packages}
    assert "sha256" not in json.dumps(tomllib.loads(text)["tool"]["gpustack"]["missing"])
    with pytest.raises(LockRefused, match="no sha256 for torch==2.1.0") as refused:
        install_from_lock(locked, sys.executable, host=gpu_plan().stack.target, run=_never)
    assert "--allow-missing-hashes" in str(refused.value) and "--allow-unhashed" not in str(refused.value)
    assert text.startswith("# Written by `gpustack lock`") and "# Not in [[packages]] (no sha256 could be read): torch==2.1.0" in text


def test_requirements_format_has_index_lines_and_hashes() -> None:
    text, _ = lock_text(gpu_plan())
    req = requirements_text(loads(text))
    assert "--index-url https://download.pytorch.org/whl/cu121\n--extra-index-url https://pypi.org/simple" in req
    assert f"torch==2.1.0+cu121 \\\n    --hash=sha256:{SHA['torch']}" in req
    golden("requirements_gpu.txt", req)


@pytest.mark.parametrize("text, what", [
    ("lock-version = [", "not valid TOML"),
    ('lock-version = "1.0"\ncreated-by = "x"\npackages = []\n', "no [tool.gpustack]"),
    ('lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "Torch"\n', "not a valid PEP 751"),
])
def test_bad_lock_files_are_bad_input(text: str, what: str) -> None:
    with pytest.raises(BadInput, match=what.replace("[", r"\[")):
        loads(text)


# --- the target check -------------------------------------------------------------------------------------------------


def test_lock_target_check_names_each_reason() -> None:
    locked = loads(lock_text(gpu_plan(xformers_source=True))[0])
    ok = Target(gpus=(RTX3090,), python="3.11.7", platform="linux_x86_64", driver=parse_driver("535.104.05"))
    assert check_lock_target(locked, ok) == []
    bad = Target(gpus=(Gpu("NVIDIA GeForce GTX 1080", ComputeCapability(6, 1)),), python="3.10",
                 platform="linux_x86_64", driver=parse_driver("470.82.01"))
    reasons = check_lock_target(locked, bad)
    assert any("Python 3.11" in r and "3.10" in r and "Python 3.11 environment (--python-exe PATH" in r
               and "gpustack lock --python-exe PATH" in r for r in reasons), reasons  # a next step, not only a fact
    assert any("470.82.01" in r and ">= 525.60.13" in r for r in reasons)
    assert any("sm_61" in r and "xformers" in r for r in reasons)
    with pytest.raises(LockRefused) as exc:
        install_from_lock(locked, sys.executable, host=bad, run=_never)
    assert "nothing was changed" in str(exc.value)


def test_cuda_builds_on_a_machine_without_gpu_or_driver_go_ahead_with_a_note() -> None:
    # a CUDA 12 lock installed GBs onto a GPU-less box without a word (an image build there is legitimate: no refusal)
    from resolver.lock import lock_target_notes

    locked = loads(lock_text(gpu_plan(xformers_source=True))[0])
    bare = Target(gpus=(), python="3.11.7", platform="linux_x86_64")
    assert check_lock_target(locked, bare) == []
    notes = lock_target_notes(locked, bare)
    assert len(notes) == 1 and notes[0].startswith("this machine has no NVIDIA GPU or driver: installing the lock's "
                                                   "CUDA ") and "driver >= 525.60.13" in notes[0]
    ok = Target(gpus=(RTX3090,), python="3.11.7", platform="linux_x86_64", driver=parse_driver("535.104.05"))
    assert lock_target_notes(locked, ok) == []
    said: list[str] = []
    install_from_lock(locked, "/venv/bin/python", host=bare, run=lambda *a, **k: None, note=said.append,
                      probe=lambda hosts: [])  # the lock's hosts answer
    assert said == notes  # the install says it, then goes on


# --- installing -------------------------------------------------------------------------------------------------------


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("nothing may run when the lock is refused")


def test_install_runs_one_verified_wheel_install_then_each_build_with_its_env() -> None:
    locked = loads(lock_text(gpu_plan(xformers_source=True))[0])
    calls: list[tuple[list[str], dict[str, str] | None, str]] = []

    def record(argv: list[str], env: dict[str, str] | None = None, **kw: Any) -> Any:
        calls.append((argv, env, Path(argv[argv.index("-r") + 1]).read_text()))
        return None

    install_from_lock(locked, "/venv/bin/python", host=gpu_plan().stack.target, run=record,
                      probe=lambda hosts: [])  # the lock's hosts answer
    (wheel_argv, wheel_env, wheel_req), (build_argv, build_env, build_req) = calls
    assert wheel_argv[:3] == ["/venv/bin/python", "-m", "pip"]
    assert "--require-hashes" in wheel_argv and "--no-deps" in wheel_argv and wheel_env is None
    assert f"torch @ https://download.pytorch.org/whl/cu121/torch-2.1.0%2Bcu121-cp311-cp311-linux_x86_64.whl \\\n    --hash=sha256:{SHA['torch']}" in wheel_req
    assert "--no-build-isolation" in build_argv and build_env == {"FORCE_CUDA": "1", "MAX_JOBS": "8", "TORCH_CUDA_ARCH_LIST": "8.6"}
    assert f"--hash=sha256:{SHA['sdist']}" in build_req


def _freeze(python: Path) -> str:
    return subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True).stdout


@pytest.mark.network
@pytest.mark.slow
def test_lock_then_install_into_a_real_venv_and_refuse_a_tampered_hash(tmp_path: Path) -> None:
    """Real wheels from PyPI: lock two small packages for a CPU target, install the lock, then a lock whose hash was
    changed is refused by pip and the venv is left exactly as it was."""
    target = Target(gpus=(), python=f"{sys.version_info.major}.{sys.version_info.minor}", platform="linux_x86_64")
    choices = (PackageChoice("typing-extensions", "4.12.2", "wheel", index_url=PYPI_SIMPLE),
               PackageChoice("six", "1.16.0", "wheel", index_url=PYPI_SIMPLE))
    plan = Plan(Stack(target, choices), tuple(Step("install", c.name, c.requirement, index_url=PYPI_SIMPLE) for c in choices))
    files, warnings = hashes.lookup(plan)
    assert warnings == []
    text = dumps(plan, files)
    assert_valid(text)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install_from_lock(loads(text), str(python), host=target)
    frozen = _freeze(python)
    assert "six @ https://files.pythonhosted.org/" in frozen and "typing_extensions @ " in frozen
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "six"], check=True, capture_output=True)
    before = _freeze(python)
    tampered = text.replace(files["six"].sha256 or "", "0" * 64)
    assert tampered != text
    with pytest.raises(CommandFailed, match="(?i)hash"):
        install_from_lock(loads(tampered), str(python), host=target)
    assert _freeze(python) == before


def test_cli_lock_writes_a_valid_lock_and_requirements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command wires solve -> plan -> lookup -> dumps; the index is the fake one, pip's resolver is not run."""
    from click.testing import CliRunner

    from resolver.cli import main

    pages = fake_index()
    pages[f"{PYPI_SIMPLE}/torch/"] = json_page([  # PyPI serves torch 2.1.0 as the cu121 build, without a local tag
        {"filename": "torch-2.1.0-cp311-cp311-manylinux1_x86_64.whl", "hashes": {"sha256": SHA["torch"]},
         "url": "https://files.example/torch-2.1.0-cp311-cp311-manylinux1_x86_64.whl"}])
    real_lookup = hashes.lookup
    monkeypatch.setattr(lock_resolve, "resolve", lambda plan, constraints, **kw: {})
    monkeypatch.setattr(lock_resolve, "check_sources", lambda *a, **kw: None)  # no network: the index is fake
    monkeypatch.setattr(hashes, "fetch_text", fetch_from(pages))
    monkeypatch.setattr(hashes, "lookup", lambda plan, fetch=None, known=None: real_lookup(plan, fetch_from(pages), known=known))
    target = ["--gpu", "8.6", "--driver", "535.104.05", "--python", "3.11", "--platform", "linux_x86_64"]
    out = tmp_path / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", *target, "torch==2.1.0+cu121", "-o", str(out)])
    assert result.exit_code == 0, result.output
    locked = loads(out.read_text())
    assert_valid(out.read_text())
    assert locked.target.cuda == "12.1" and [g.compute_capability for g in locked.target.gpus] == [ComputeCapability(8, 6)]
    req = tmp_path / "requirements.txt"
    result = CliRunner().invoke(main, ["lock", *target, "torch==2.1.0+cu121", "--format", "requirements", "-o", str(req)])
    assert result.exit_code == 0, result.output
    assert f"--index-url https://pypi.org/simple\ntorch==2.1.0 \\\n    --hash=sha256:{SHA['torch']}" in req.read_text()
    reqs = tmp_path / "in.txt"  # a -r file's lines are recorded as they were solved: comments and blanks dropped
    reqs.write_text("# pinned for the cluster\n\ntorch==2.1.0+cu121  # cu121\n")
    from_file = CliRunner().invoke(main, ["lock", *target, "-r", str(reqs), "-o", str(tmp_path / "pylock.r.toml")])
    assert from_file.exit_code == 0, from_file.output
    assert loads((tmp_path / "pylock.r.toml").read_text()).request == ("torch==2.1.0+cu121",)
    bad = CliRunner().invoke(main, ["lock", *target, "torch==", "-o", str(tmp_path / "pylock.bad.toml")])
    assert bad.exit_code == 2 and not (tmp_path / "pylock.bad.toml").exists()
    assert locked.request == ("torch==2.1.0+cu121",) and locked.profile is None and locked.driver == "535.104.05"
    # Re-locking the file with no request keeps what it was made for.
    again = CliRunner().invoke(main, ["lock", *target, "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert "re-locking" in again.stderr and loads(out.read_text()).request == ("torch==2.1.0+cu121",)
    assert loads(out.read_text()).glibc is None  # assumed, not known: not recorded
    glibc = CliRunner().invoke(main, ["lock", *target, "--glibc", "2.31", "torch==2.1.0+cu121", "-o", str(out)])
    assert glibc.exit_code == 0, glibc.output
    assert loads(out.read_text()).glibc == "2.31"
    kept = CliRunner().invoke(main, ["lock", *target, "-o", str(out)])
    assert kept.exit_code == 0 and loads(out.read_text()).glibc == "2.31"


@pytest.mark.network
@pytest.mark.slow
def test_cli_install_lock_round_trip_and_tampered_file(tmp_path: Path) -> None:
    """`gpustack install --lock` on a real venv: the lock installs; a tampered hash exits non-zero, venv unchanged."""
    from click.testing import CliRunner

    from resolver.cli import main

    target = Target(gpus=(), python=f"{sys.version_info.major}.{sys.version_info.minor}", platform="linux_x86_64")
    choice = PackageChoice("six", "1.16.0", "wheel", index_url=PYPI_SIMPLE)
    plan = Plan(Stack(target, (choice,)), (Step("install", "six", choice.requirement, index_url=PYPI_SIMPLE),))
    files, _ = hashes.lookup(plan)
    text = dumps(plan, files)
    good, bad = tmp_path / "pylock.toml", tmp_path / "pylock.tampered.toml"
    good.write_text(text)
    bad.write_text(text.replace(files["six"].sha256 or "", "0" * 64))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    result = CliRunner().invoke(main, ["install", "--lock", str(good), "--python-exe", python, "--installer", "pip"])
    assert result.exit_code == 0, result.output
    assert "six @ https://files.pythonhosted.org/" in _freeze(Path(python))
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "six"], check=True, capture_output=True)
    before = _freeze(Path(python))
    result = CliRunner().invoke(main, ["install", "--lock", str(bad), "--python-exe", python, "--installer", "pip"])
    assert result.exit_code != 0
    assert "hash" in result.stderr.lower()
    assert _freeze(Path(python)) == before
    result = CliRunner().invoke(main, ["install", "--lock", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and result.stderr.startswith("gpustack: --lock ")


def test_cli_lock_bad_output_folder_is_bad_input_before_any_work(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    out = tmp_path / "missing" / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", "--gpu", "A100", "--driver", "535.104.05", "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"gpustack: -o {out}: folder ") and "warning" not in result.stderr
    assert not out.parent.exists()


# --- what the lock was made for, pins, checks ------------------------------------------------------------------------


def test_tool_gpustack_records_request_profile_driver_glibc() -> None:
    plan = gpu_plan()
    files, _ = hashes.lookup(plan, fetch_from(fake_index()))
    text = dumps(plan, files, matrix=load(), request=["torch==2.1.0", "xformers<0.0.23"], profile="audiocraft",
                 glibc="2.35")
    assert_valid(text)
    locked = loads(text)
    assert locked.request == ("torch==2.1.0", "xformers<0.0.23") and locked.profile == "audiocraft"
    assert locked.driver == "535.104.05" and locked.glibc == "2.35"
    bare = loads(dumps(Plan(plan.stack.__class__(Target(gpus=(), python="3.11", platform="linux_x86_64"),
                                                  plan.stack.packages), plan.steps), files))
    assert bare.profile is None and bare.driver is None and bare.glibc is None and bare.request == ()
    tool = tomllib.loads(text)["tool"]["gpustack"]
    assert "profile" in tool and "glibc" not in tomllib.loads(dumps(plan, files))["tool"]["gpustack"]


def test_source_lock_says_plain_installers_cannot_see_its_build_env() -> None:
    text, _ = lock_text(gpu_plan(xformers_source=True))
    head = [line for line in text.splitlines() if line.startswith("#")]
    assert any("TORCH_CUDA_ARCH_LIST=8.6" in line and "xformers 0.0.22.post7" in line for line in head)
    assert any("gpustack install --lock" in line for line in head)
    assert_valid(text)  # comments change nothing for packaging.pylock


def test_known_bad_pins_come_from_the_matrix_and_the_plan_holds_them() -> None:
    from resolver.plan import known_pins, make_plan, plan_constraints

    m = load()
    assert m.pins and all(p.source for p in m.pins)
    stack = gpu_plan().stack
    assert [p.requirement for p in known_pins(stack, m.pins)] == ["numpy<2"]
    plan = make_plan(stack, matrix=m)
    assert all("numpy<2" in s.constraints for s in plan.steps)
    assert any(n.startswith("numpy<2 held: torch before 2.3") for n in plan.notes)
    assert "numpy<2" in plan_constraints(plan)
    newer = Stack(stack.target, (PackageChoice("torch", "2.3.0+cu121", "wheel", index_url=CU121, cuda="12.1"),))
    assert known_pins(newer, m.pins) == []
    win = Stack(Target(gpus=(), python="3.11", platform="win_amd64"), (PackageChoice("torch", "2.4.0", "wheel"),))
    assert [p.platforms for p in known_pins(win, m.pins)] == [("win_amd64",)]


def test_pins_file_is_validated() -> None:
    from resolver.errors import InvalidMatrix
    from resolver.matrix import read_files, from_dicts, matrix_dir, validate

    data = read_files(matrix_dir())
    good = dict(data["pins"]["pin"][0])
    for bad, field in [({**good, "requirement": "numpy<<2"}, "requirement"),
                       ({**good, "requirement": "scipy<2"}, "requirement"),
                       ({**good, "when": "torch"}, "when"),
                       ({**good, "platforms": ["linux_riscv"]}, "platforms"),
                       ({k: v for k, v in good.items() if k != "source"}, "source")]:
        with pytest.raises(InvalidMatrix, match=f"pins.toml: pin\\[0\\].*{field}"):
            from_dicts({**data, "pins": {"pin": [bad]}})
    m = from_dicts({**data, "pins": {"pin": [{**good, "when": "numpy<3"}]}})
    assert any("names no stack package" in p for p in validate(m))


def test_uv_request_pins_the_pytorch_index_to_the_packages_taken_from_it() -> None:
    plan = gpu_plan()
    project = lock_resolve._pyproject(plan, PYPI_SIMPLE)
    assert project["project"]["dependencies"] == ["torch==2.1.0+cu121", "xformers==0.0.22.post7"]  # type: ignore[index]
    uv = project["tool"]["uv"]  # type: ignore[index]
    assert uv["index"] == [{"name": "gpustack-0", "url": CU121, "explicit": True}]
    assert uv["sources"] == {"torch": {"index": "gpustack-0"}}
    env = lock_resolve.isolated_env()
    assert env["UV_NO_CONFIG"] == "1" and env["PIP_CONFIG_FILE"] == os.devnull
    assert lock_resolve.python_platform("linux_x86_64") == "x86_64-manylinux_2_35"


def test_check_files_refuses_a_file_whose_requires_python_excludes_the_target() -> None:
    """networkx 3.6.1 needs Python >= 3.11: in a lock for 3.10 it is refused, by the index's own Requires-Python."""
    page = f"{PYPI_SIMPLE}/networkx/"
    pages = {page: json_page([
        {"filename": "networkx-3.6.1-py3-none-any.whl", "url": "https://files.example/networkx-3.6.1-py3-none-any.whl",
         "hashes": {"sha256": "a" * 64}, "requires-python": ">=3.11, !=3.14.1"},
        {"filename": "networkx-3.4.2-py3-none-any.whl", "url": "https://files.example/networkx-3.4.2-py3-none-any.whl",
         "hashes": {"sha256": "b" * 64}, "requires-python": ">=3.10"}])}
    new = LockedFile("networkx", "3.6.1", "networkx-3.6.1-py3-none-any.whl", "https://files.example/n.whl", "a" * 64,
                     index=PYPI_SIMPLE)
    old = LockedFile("networkx", "3.4.2", "networkx-3.4.2-py3-none-any.whl", "https://files.example/o.whl", "b" * 64,
                     index=PYPI_SIMPLE)
    wrong_tag = LockedFile("torch", "2.1.0", "torch-2.1.0-cp311-cp311-manylinux1_x86_64.whl", "https://x/t.whl", "c" * 64)
    reader = lock_resolve.Pages(fetch_from(pages))
    problems = lock_resolve.check_files([new, old, wrong_tag], "3.10", "linux_x86_64", pages=reader)
    reader.close()
    assert len(problems) == 2
    assert any("networkx 3.6.1" in p and "requires Python >=3.11" in p for p in problems)
    assert any("torch 2.1.0" in p and "does not run on Python 3.10" in p for p in problems)
    assert lock_resolve.check_files([old], "3.10", "linux_x86_64", pages=lock_resolve.Pages(fetch_from(pages))) == []


def test_check_files_reads_no_page_for_what_the_resolver_checked_but_still_checks_its_tags() -> None:
    """Files uv locked (``python_checked``) are not looked up again on their index; their wheel tags still are."""
    asked: list[str] = []

    def fetch(url: str) -> str | None:
        asked.append(url)
        return None

    ok = LockedFile("networkx", "3.4.2", "networkx-3.4.2-py3-none-any.whl", "https://x/n.whl", "b" * 64,
                    index=PYPI_SIMPLE)
    wrong_tag = LockedFile("torch", "2.1.0", "torch-2.1.0-cp311-cp311-manylinux1_x86_64.whl", "https://x/t.whl",
                           "c" * 64, index=PYPI_SIMPLE)
    sdist = LockedFile("flash-attn", "2.5.8", "flash_attn-2.5.8.tar.gz", "https://x/f.tar.gz", "d" * 64,
                       index=PYPI_SIMPLE, kind="sdist")
    reader = lock_resolve.Pages(fetch)
    problems = lock_resolve.check_files([ok, wrong_tag, sdist], "3.10", "linux_x86_64", pages=reader,
                                        python_checked=[ok, wrong_tag])
    reader.close()
    assert asked == [f"{PYPI_SIMPLE}/flash-attn/"]  # only the file the resolver did not lock
    assert len(problems) == 1 and "torch 2.1.0" in problems[0] and "does not run on Python 3.10" in problems[0]


def test_uv_holds_requires_python_from_metadata_where_the_index_publishes_none(tmp_path: Path) -> None:
    """What ``check_files`` relies on when it skips uv's files: uv, told ``--python-version 3.10``, refuses
    networkx 3.6.1 (Requires-Python >= 3.11 in its METADATA only, a find-links source publishes nothing) and locks
    3.4.2."""
    fixtures = str(Path(__file__).parent / "fixtures")
    if fixtures not in sys.path:
        sys.path.insert(0, fixtures)
    from fakewheels import make_wheel

    uv = lock_resolve.find_uv()
    if uv is None:
        pytest.skip("uv is not installed")
    links = tmp_path / "links"
    make_wheel(links, "networkx", "3.6.1", {"networkx/__init__.py": ""}, requires_python=">=3.11")
    make_wheel(links, "networkx", "3.4.2", {"networkx/__init__.py": ""}, requires_python=">=3.10")
    (tmp_path / "r.in").write_text("networkx\n")
    out = tmp_path / "pylock.toml"
    subprocess.run([uv, "pip", "compile", str(tmp_path / "r.in"), "--no-index", "--find-links", str(links),
                    "--format", "pylock.toml", "-o", str(out), "--quiet", "--no-header", "--python-version", "3.10",
                    "--python-platform", lock_resolve.python_platform("linux_x86_64"), "--python", sys.executable],
                   env=lock_resolve.isolated_env(UV_CACHE_DIR=str(tmp_path / "uv-cache")), check=True,
                   capture_output=True, timeout=120)
    lock = Pylock.from_dict(tomllib.loads(out.read_text()))
    assert [(p.name, str(p.version)) for p in lock.packages] == [("networkx", "3.4.2")]


def test_install_help_names_the_missing_hashes_option() -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    assert "--allow-missing-hashes" in CliRunner().invoke(main, ["install", "--help"]).output
    bad = CliRunner().invoke(main, ["install", "--allow-missing-hashes", "six"])
    assert bad.exit_code == 2 and "--allow-missing-hashes goes with --lock" in bad.stderr


# --glibc 2.35: flash-attn's GitHub wheels need the glibc of the Ubuntu their CI ran on (platforms.toml [[os]])
FA_REQUEST = ["--gpu", "A100", "--driver", "550.54.15", "--python", "3.10", "--glibc", "2.35", "torch==2.1.0", "xformers",
              "flash-attn"]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, never listening, closed: a connection to it is refused at once
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_failed_fast_and_wrote_nothing(rc: int, stderr: str, out: Path, host: str) -> None:
    assert rc == 1, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert host in lines[0] and "--no-deps" in lines[0] and "flash-attn" in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert not out.exists() and not list(out.parent.iterdir())  # no lock, no temporary file left beside it


def _without_declared_requires(ctx: Any) -> Any:
    """``ctx`` with a matrix whose flash-attn releases record no install_requires (a direct-URL wheel whose
    dependencies only the wheel itself knows)."""
    import dataclasses

    flash = tuple(dataclasses.replace(f, requires_dist=None, requires_dist_source="") for f in ctx.matrix.flash_attn)
    return dataclasses.replace(ctx, matrix=dataclasses.replace(ctx.matrix, flash_attn=flash))


def _fa_plan_on(host: str, *, declared: bool = True) -> Any:
    """Return a stand-in for ``cmd_lock.fresh_plan_for``: the real plan, its GitHub wheel moved to ``host``."""
    import dataclasses

    from resolver import cmd_lock

    real = cmd_lock.fresh_plan_for

    def moved(*args: Any, **kw: Any) -> Any:
        plan, ctx = real(*args, **kw)
        steps = [dataclasses.replace(s, url=f"{host}/{s.url.rsplit('/', 1)[-1]}") if s.url else s for s in plan.steps]
        assert any(s.url for s in steps), "the plan no longer takes flash-attn by direct URL"
        moved_plan = dataclasses.replace(plan, steps=type(plan.steps)(steps))
        return moved_plan, ctx if declared else _without_declared_requires(ctx)

    return moved


def test_lock_with_a_direct_url_wheel_on_a_dead_host_fails_at_once_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A direct-URL wheel whose dependencies the matrix does not record (only the wheel's METADATA has them), on a
    dead host (a name that never resolves, RFC 2606's .invalid): the lock stops before uv (which would retry the
    host for seconds) with one line naming the host and --no-deps, exit 1, and no file; never a lock of the plan's
    packages only. The indexes are file:// mirrors: nothing else is probed (installers.silent_hosts' rule)."""
    from click.testing import CliRunner

    from resolver import cmd_lock
    from resolver.cli import main

    dead = "https://flash-attn-wheels.invalid/releases"
    monkeypatch.setattr(cmd_lock, "fresh_plan_for", _fa_plan_on(dead, declared=False))
    monkeypatch.setattr(lock_resolve, "resolve", lambda *a, **kw: pytest.fail("the resolver ran"))
    local = ["--torch-index-url", (tmp_path / "whl").as_uri(), "--index-url", (tmp_path / "simple").as_uri()]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", *FA_REQUEST, *local, "-o", str(out)])
    _assert_failed_fast_and_wrote_nothing(result.exit_code, result.stderr, out, "flash-attn-wheels.invalid")
    nodeps = CliRunner().invoke(main, ["lock", "--no-deps", *FA_REQUEST, *local, "-o", str(out)])
    assert nodeps.exit_code == 0, nodeps.output  # the way out the message names: the plan's packages, by URL
    missing = {m["name"]: m for m in tomllib.loads(out.read_text())["tool"]["gpustack"]["missing"]}
    assert missing["flash-attn"]["url"].startswith(dead)  # (torch's and xformers' hashes: missing, empty mirrors)


def test_flash_attn_install_requires_come_from_the_matrix_with_a_source() -> None:
    """Every flash-attn 2 release records what its wheels declare, cited; the validation refuses a bad one."""
    from resolver.errors import InvalidMatrix
    from resolver.matrix import from_dicts, matrix_dir, read_files

    m = load()
    by_version = {str(f.version): f for f in m.flash_attn}
    assert by_version["2.7.3"].requires_dist == ("torch", "einops")
    assert by_version["2.5.8"].requires_dist == ("torch", "einops", "packaging", "ninja")  # until v2.5.8
    assert "v2.7.3/setup.py" in by_version["2.7.3"].requires_dist_source
    assert all(f.requires_dist is not None and f.requires_dist_source for f in m.flash_attn)
    for change, field in (({"install_requires": ["torch @ https://h/t.whl"]}, "install_requires"),
                          ({"install_requires": ["torch >="]}, "install_requires"),
                          ({"install_requires_source": " "}, "install_requires_source")):
        data = read_files(matrix_dir())
        data["flash_attn"]["release"][0].update(change)
        with pytest.raises(InvalidMatrix, match=field):
            from_dicts(data)
    data = read_files(matrix_dir())
    del data["flash_attn"]["release"][0]["install_requires"]
    with pytest.raises(InvalidMatrix, match="install_requires_source"):  # a source of nothing
        from_dicts(data)
    from resolver.matrix import validate

    assert validate(m) == []
    data = read_files(matrix_dir())
    data["flash_attn"]["release"][0]["install_requires"] = ["einops"]
    assert any("install_requires: names no torch" in p for p in validate(from_dicts(data)))


def test_xformers_source_builds_record_their_install_requires_with_a_source() -> None:
    """Every xformers release the matrix can build from source records what the built wheel declares (the lines of
    requirements.txt at the tag, which setup.py reads), cited; the validation refuses a bad one. A lock resolves
    these for a build step (numpy, which the lock used to leave out)."""
    from resolver.errors import InvalidMatrix
    from resolver.matrix import from_dicts, matrix_dir, read_files, validate

    m = load()
    by_version = {str(x.version): x for x in m.xformers}
    assert by_version["0.0.35"].source_requires_dist == ("torch >= 2.10", "numpy")
    assert by_version["0.0.16"].source_requires_dist == ("torch >= 1.12", "numpy", "pyre-extensions == 0.0.23")
    assert "03b91d7d9ff295ae68a320e2e733dd6c2ef8f342:requirements.txt" in by_version["0.0.35"].source_requires_dist_source
    built = [x for x in m.xformers if x.source_torch is not None]
    assert len(built) == 35 and all(x.source_requires_dist and x.source_requires_dist_source for x in built)
    data = read_files(matrix_dir())
    data["xformers_source"]["release"][0]["install_requires"] = ["numpy @ https://h/n.whl"]
    with pytest.raises(InvalidMatrix, match="install_requires"):
        from_dicts(data)
    data = read_files(matrix_dir())
    del data["xformers_source"]["release"][0]["install_requires"]
    with pytest.raises(InvalidMatrix, match="install_requires_source"):  # a source of nothing
        from_dicts(data)
    data = read_files(matrix_dir())
    data["xformers_source"]["release"][0]["install_requires"] = ["numpy"]
    assert any("xformers_source.toml: release 0.0.16: install_requires: names no torch" in p
               for p in validate(from_dicts(data)))


def test_a_flash_attn_lock_gives_uv_its_declared_dependencies_never_its_github_wheel() -> None:
    """The request uv gets names flash-attn's install_requires (torch, einops), not the wheel URL it would have to
    download; the wheel is locked from the plan's URL with no sha256 and the reason; nothing probes the host."""
    from resolver.pipeline import PlanOptions, fresh_plan_for
    from resolver.plan import plan_constraints

    opts = PlanOptions.from_cli({"gpus": ("A100",), "driver": "550.54.15", "python_version": "3.10",
                                 "platform_tag": "linux_x86_64", "glibc": "2.35"})  # the wheel's glibc floor
    plan, ctx = fresh_plan_for(("torch==2.1.0", "xformers", "flash-attn"), opts)
    step = next(s for s in plan.steps if s.package == "flash-attn")
    assert step.url and step.url.startswith("https://github.com/Dao-AILab/flash-attention/releases/download/")
    request = lock_resolve.uv_request(plan, plan_constraints(plan), matrix=ctx.matrix)
    deps = request["project"]["project"]["dependencies"]
    assert "einops" in deps and "torch" in deps and not any("flash-attn" in d or "github" in d for d in deps), deps
    without = lock_resolve.uv_request(plan, plan_constraints(plan), matrix=_without_declared_requires(ctx).matrix)
    assert any(d.startswith("flash-attn @ https://github.com/") for d in without["project"]["project"]["dependencies"])
    # its host is never probed: with the wheel on a dead host and file:// indexes, the check passes (no request at
    # all); without the declared dependencies the same plan fails on that host
    import dataclasses

    from resolver.installers import SourceUnreachable, with_mirrors

    local = with_mirrors(plan, "file:///srv/whl", "file:///srv/simple")
    moved = dataclasses.replace(local, steps=tuple(
        dataclasses.replace(s, url=f"https://flash-attn-wheels.invalid/{s.url.rsplit('/', 1)[-1]}") if s.url else s
        for s in local.steps))
    lock_resolve.check_sources(moved, ctx.matrix, "file:///srv/simple")
    with pytest.raises(SourceUnreachable, match=r"cannot reach flash-attn-wheels\.invalid .*--no-deps"):
        lock_resolve.check_sources(moved, _without_declared_requires(ctx).matrix, "file:///srv/simple")
    entry = lock_resolve.direct_files(plan, ctx.matrix)["flash-attn"]
    assert entry.sha256 is None and entry.url == step.url and entry.version == "2.7.3" and entry.kind == "wheel"
    assert "GitHub publishes no sha256" in entry.reason and "install_requires" in entry.reason
    files, warnings = hashes.lookup(plan, fetch=lambda url: None, known=lock_resolve.direct_files(plan, ctx.matrix))
    text = dumps(plan, files, matrix=ctx.matrix)
    Pylock.from_dict(tomllib.loads(text))
    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any(ln.startswith("#   flash-attn 2.7.3: a GitHub release asset") for ln in header), header
    assert any("--allow-missing-hashes" in ln for ln in header)
    missing = tomllib.loads(text)["tool"]["gpustack"]["missing"]
    assert [m["name"] for m in missing if m["url"] == step.url] == ["flash-attn"]


def _hint(**change: Any) -> dict[str, Any]:
    request = {"project": {"project": {"name": "gpustack-lock-request", "version": "0",
                                       "dependencies": ["torch==2.1.0", "flash-attn @ https://h/f-2.7.3-cp310-cp310-linux_x86_64.whl"]},
                           "tool": {"uv": {"index": [{"name": "gpustack-0", "url": f"{PYPI_SIMPLE}/", "explicit": True}],
                                           "sources": {"torch": {"index": "gpustack-0"}}}}},
               "constraints": ["numpy<2"], "python_version": "3.10", "python_platform": "x86_64-manylinux_2_35",
               "index_url": PYPI_SIMPLE}
    request.update(change)
    return request


@pytest.mark.parametrize("change", [
    {"constraints": ["evil @ https://h/evil-1.0.tar.gz"]},  # an sdist by URL would be built: code would run
    {"constraints": ["-e /tmp/src"]},  # an option line of a constraints file
    {"constraints": ["--extra-index-url https://evil/simple"]},
    {"constraints": ["./src"]},
    {"constraints": ["numpy<2", "src/evil"]},
    {"project": {"project": {"name": "x", "version": "0", "dependencies": ["evil @ file:///tmp/src"]}, "tool": {}}},
    {"project": {"project": {"name": "x", "version": "0", "dependencies": []}, "tool": {},
                 "build-system": {"requires": ["evil"]}}},
    {"project": {"project": {"name": "x", "version": "0", "dependencies": [], "dynamic": ["dependencies"]},
                 "tool": {}}},
    {"index_url": "ftp://h/simple"},
    {"python_platform": "x86_64 --no-config"},
    {"extra": 1},
], ids=["sdist-url", "editable-line", "index-line", "relative-path", "path", "source-tree", "build-system", "dynamic",
        "index-scheme", "platform-text", "extra-key"])
def test_a_lock_hint_that_could_make_uv_build_or_is_not_what_gpustack_writes_is_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]) -> None:
    """Hints are data in the user's cache: one that names something uv would build (an sdist, a source tree, a
    dynamic project), or is not the shape ``uv_request`` writes, starts nothing."""
    from resolver import lock_speculate

    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    assert lock_speculate._safe(_hint()) == _hint()
    lock_speculate.remember("k", _hint(**change))
    assert lock_speculate._safe(json.loads((tmp_path / "lock-hints" / "k.json").read_text())) is None
    assert lock_speculate.start("k") is None


def test_a_lock_hint_is_read_only_as_this_users_regular_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver import lock_speculate

    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    lock_speculate.remember("good", _hint())
    (tmp_path / "lock-hints" / "link.json").symlink_to(tmp_path / "lock-hints" / "good.json")
    assert lock_speculate.start("link") is None  # followed, it would have started uv (a run, not None)

    # The key is the command line but its output file: a lock written elsewhere asks for the same uv run.
    key = lock_speculate.hint_key(["--gpu", "A100", "torch==2.1.0", "-o", "a.toml"])
    assert key == lock_speculate.hint_key(["--gpu", "A100", "torch==2.1.0", "--output=b.toml"])
    assert key == lock_speculate.hint_key(["--gpu", "A100", "-oc.toml", "torch==2.1.0"])
    assert key != lock_speculate.hint_key(["--gpu", "A100", "torch==2.1.1"])
    monkeypatch.chdir(tmp_path)  # -r paths are relative to the working folder
    assert key != lock_speculate.hint_key(["--gpu", "A100", "torch==2.1.0"])


def test_a_uv_run_started_for_a_command_line_is_stopped_when_the_command_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """resolver.cli starts uv on the hint of a lock command line before the command runs; a command that then
    fails (here: its output folder does not exist: bad input, exit 2) stops that run and leaves no folder of it."""
    import tempfile

    from click.testing import CliRunner

    from resolver import lock_speculate, lock_uv
    from resolver.cli import main

    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    args = ["--gpu", "A100", "--driver", "550.54.15", "--python", "3.10", "torch==2.1.0"]
    dead = f"http://127.0.0.1:{_closed_port()}/simple"
    lock_speculate.remember(lock_speculate.hint_key(args), _hint(index_url=dead, constraints=[]))
    runs: list[lock_uv.UvRun] = []
    real_init = lock_uv.UvRun.__init__

    def counting(self: lock_uv.UvRun, *a: Any) -> None:
        real_init(self, *a)
        runs.append(self)

    monkeypatch.setattr(lock_uv.UvRun, "__init__", counting)
    result = CliRunner().invoke(main, ["lock", *args, "-o", str(tmp_path / "no-such-folder" / "pylock.toml")])
    assert result.exit_code == 2, result.output
    assert len(runs) == 1 and runs[0]._proc is None  # started from the hint, then stopped
    assert not list((tmp_path / "tmp").iterdir())  # its inputs' folder removed
    assert lock_speculate.current() == (None, None)


def test_a_speculative_run_begun_for_the_same_command_line_is_kept(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``resolver.start`` begins the run before click is imported, then ``resolver.cli`` begins again with the same
    command line: the first run goes on (no second uv); another command line stops it and starts its own."""
    from resolver import lock_speculate

    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    args = ["--gpu", "A100", "torch==2.1.0", "-o", "a.toml"]
    lock_speculate.remember(lock_speculate.hint_key(args), _hint())
    try:
        lock_speculate.begin(args)
        key, first = lock_speculate.current()
        assert first is not None and key == lock_speculate.hint_key(args)
        lock_speculate.begin(list(args))
        assert lock_speculate.current()[1] is first
        lock_speculate.begin(["--gpu", "H100", "torch==2.1.0"])  # no hint for it: the first run is stopped
        assert lock_speculate.current() == (lock_speculate.hint_key(["--gpu", "H100", "torch==2.1.0"]), None)
        assert first._proc is None  # cancelled: uv stopped, its folder removed
    finally:
        lock_speculate.end()


def test_install_lock_dry_run_refuses_what_the_install_would_refuse(tmp_path: Path) -> None:
    # The dry run printed the requirements (rc 0) for a lock the real run refuses: another Python, or a file with no
    # sha256 without --allow-missing-hashes. It now makes the same check, against this machine, first.
    from click.testing import CliRunner

    from resolver.cli import main

    text = (GOLDEN / "lock_gpu.toml").read_text()
    other_python = tmp_path / "py310.toml"
    other = "3.12" if sys.version_info[:2] == (3, 10) else "3.10"  # a Python that is not this one
    other_python.write_text(text.replace('python_version == \\"3.11\\"', f'python_version == \\"{other}\\"')
                            .replace('python = "3.11"', f'python = "{other}"'))
    unhashed = tmp_path / "unhashed.toml"
    unhashed.write_text(text.replace('missing = []', 'missing = [{ name = "numpy", version = "1.26.4", index = '
                                     '"https://pypi.org/simple", kind = "wheel", reason = "no sha256 published" }]'))
    for lock, said in ((other_python, f"Python {other}"), (unhashed, "no sha256 for numpy==1.26.4")):
        dry = CliRunner().invoke(main, ["install", "--dry-run", "--lock", str(lock), "--python-exe", sys.executable])
        assert dry.exit_code == 1, dry.output
        assert dry.output.startswith("gpustack: refusing to install the lock; nothing was changed:") \
            and said in dry.output, dry.output
        assert "--hash=sha256" not in dry.output  # nothing of the lock printed as if it would install
    allowed = CliRunner().invoke(main, ["install", "--dry-run", "--lock", str(unhashed), "--python-exe",
                                        sys.executable, "--allow-missing-hashes"])
    assert allowed.exit_code == 0 and "# no sha256 known, install unverified: numpy==1.26.4" in allowed.output, \
        allowed.output
