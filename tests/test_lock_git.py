"""A lock of a git source is one uv can read: ``[packages.vcs]`` holds the tag asked for in ``requested-revision`` and
the full commit hash it names in ``commit-id`` (PEP 751; uv refuses anything else there), from the matrices
(``Matrix.git_commit``). Proven with the real ``uv pip install --dry-run -r pylock.toml`` and ``packaging.pylock``;
a git source whose commit is not known is refused, never written."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.pylock import Pylock

from resolver.cli import main
from resolver.errors import BadInput
from resolver.lock import LockedFile, dumps, loads
from resolver.lock_resolve import find_uv
from resolver.matrix import load
from resolver.matrix_types import is_commit
from resolver.models import PackageChoice, Plan, Stack, Step, Target
from _isolation import isolate_installers

SAGE = "eb615cf6cf4d221338033340ee2de1c37fbdba4a"  # thu-ml/SageAttention tag v2.2.0 (matrices/attention.toml)
FA3 = "0251105a2fb19d2957484b7f023cd8c115286ced"  # Dao-AILab/flash-attention, FA3 in hopper/


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Return mirror options pointing at empty ``file://`` folders (nothing is fetched, from anywhere)."""
    isolate_installers(monkeypatch, also=lambda name: name == "GPUSTACK_TORCH_INDEX_URL")
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    (tmp_path / "torch").mkdir()
    (tmp_path / "pypi").mkdir()
    return ["--torch-index-url", (tmp_path / "torch").as_uri(), "--index-url", (tmp_path / "pypi").as_uri()]


@pytest.mark.parametrize("target, package, vcs, line", [
    (["--gpu", "RTX 4090", "--driver", "550.54.15"], "sageattention",
     {"type": "git", "url": "https://github.com/thu-ml/SageAttention.git", "requested-revision": "v2.2.0",
      "commit-id": SAGE},
     f"sageattention @ git+https://github.com/thu-ml/SageAttention.git@{SAGE}"),
    (["--gpu", "H100", "--driver", "580.65.06"], "flash-attn-3",
     {"type": "git", "url": "https://github.com/Dao-AILab/flash-attention.git", "commit-id": FA3,
      "subdirectory": "hopper"},
     f"flash-attn-3 @ git+https://github.com/Dao-AILab/flash-attention.git@{FA3}#subdirectory=hopper"),
])
def test_a_git_source_is_locked_with_its_commit_and_uv_reads_it(isolated: list[str], tmp_path: Path,
                                                                 target: list[str], package: str,
                                                                 vcs: dict[str, str], line: str) -> None:
    out = tmp_path / "pylock.toml"
    result = CliRunner().invoke(main, ["lock", *target, "--python", f"{sys.version_info[0]}.{sys.version_info[1]}",
                                       "--platform", "linux_x86_64", package, "--no-deps", *isolated, "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = tomllib.loads(out.read_text())
    Pylock.from_dict(data)
    (locked,) = [p for p in data["packages"] if p["name"] == package]
    assert locked["vcs"] == vcs
    assert loads(out.read_text()).packages[-1].url == line.split(" @ ")[1]  # installed at the commit
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    uv = find_uv()
    assert uv is not None
    # torch is under [[tool.gpustack.missing]] (no hash from the empty mirror): the lock holds the git source only
    run = subprocess.run([uv, "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"), "-r", str(out)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "UV_OFFLINE": "1"})
    assert "parse error" not in run.stderr and "40 hex" not in run.stderr, run.stderr
    assert run.returncode == 0 and f" + {line}" in run.stderr, run.stderr


def test_every_git_source_the_matrices_name_has_its_commit() -> None:
    m = load()
    gits = [(a.name, str(a.version), a.url) for a in m.attention if a.url and a.url.startswith("git+")]
    assert gits and all(is_commit(a.commit) for a in m.attention if a.url and a.url.startswith("git+"))
    # xformers releases PyPI has no sdist of are built from their git tag (companions.py)
    tags = [x for x in m.xformers if not x.sdist]
    assert tags and all(x.git_tag and is_commit(m.git_commit("xformers", str(x.version), x.git_tag)) for x in tags)


def test_a_git_source_with_no_known_commit_is_refused_naming_it() -> None:
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    url = "git+https://github.com/example/kernels.git@v1.0"
    choice = PackageChoice("kernels", "1.0", "source", url=url)
    plan = Plan(Stack(target, (choice,)), (Step("build", "kernels", f"kernels @ {url}", url=url),))
    files = {"kernels": LockedFile("kernels", "1.0", "kernels", url, None, kind="vcs")}
    with pytest.raises(BadInput, match=r"^kernels 1\.0: its git source git\+https://github\.com/example/kernels\.git@v1\.0 "
                                       r"names no commit hash"):
        dumps(plan, files, matrix=load())


@pytest.mark.parametrize("commit", ["v2.2.0", SAGE[:8], SAGE.upper()[:39] + "g"])
def test_a_lock_whose_commit_id_is_not_a_full_hash_is_refused_as_uv_refuses_it(isolated: list[str], tmp_path: Path,
                                                                                commit: str) -> None:
    # gpustack locks once wrote the tag here; uv refuses such a lock at parse time, so gpustack refuses it too, in
    # one line naming the field and the next step, before anything is installed (not deep in uv's output)
    out = tmp_path / "pylock.toml"
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    result = CliRunner().invoke(main, ["lock", "--gpu", "RTX 4090", "--driver", "550.54.15", "--python", python,
                                       "--platform", "linux_x86_64", "sageattention", "--no-deps", *isolated,
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert f'commit-id = "{SAGE}"' in text
    old = tmp_path / "pylock.old.toml"
    old.write_text(text.replace(f'commit-id = "{SAGE}"', f'commit-id = "{commit}"'))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    uv = find_uv()
    assert uv is not None
    run = subprocess.run([uv, "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"), "-r", str(old)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "UV_OFFLINE": "1"})
    assert run.returncode == 2 and "Object ID must be " in run.stderr, run.stderr  # exactly 40 / valid hex characters
    before = sorted(str(p) for p in venv.rglob("*")), old.read_bytes()
    expected = (f"gpustack: --lock {old}: lock file: packages[0].vcs.commit-id: '{commit}' is not a full git commit "
                "hash (40 hex digits: PEP 751 and uv read no tag or short hash there); re-run `gpustack lock`")
    for argv in (["install", "--lock", str(old), "--python-exe", str(venv / "bin" / "python"), "--allow-missing-hashes"],
                 ["check-upgrade", "--lock", str(old), "torch"]):
        refused = CliRunner().invoke(main, argv)
        assert refused.exit_code == 2 and refused.output.splitlines() == [expected], (argv, refused.output)
    assert (sorted(str(p) for p in venv.rglob("*")), old.read_bytes()) == before
    # what uv reads, gpustack reads: the full hash in capitals (git and uv take either case)
    upper = text.replace(f'commit-id = "{SAGE}"', f'commit-id = "{SAGE.upper()}"')
    assert loads(upper).packages[-1].url == f"git+https://github.com/thu-ml/SageAttention.git@{SAGE.upper()}"
