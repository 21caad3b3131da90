"""``download`` takes the mirrors ``install`` takes (``--torch-index-url`` / ``$GPUSTACK_TORCH_INDEX_URL``, ``--index-url``)
through the same code, and refuses what ``--plan`` would ignore, as ``install --plan`` does. The mirror is a real
file:// index laid out like download.pytorch.org/whl (``<mirror>/cpu/torch/``), and the real pip downloads from it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from fakewheels import make_wheel, write_index  # noqa: E402
from resolver.cli import main  # noqa: E402


def _torch_mirror(tmp_path: Path) -> str:
    """Return the URL of a PyTorch-style mirror holding a (tiny) torch 2.13.0+cpu wheel under ``cpu/torch/``."""
    wheel = make_wheel(tmp_path / "build", "torch", "2.13.0+cpu", {"torch/__init__.py": "__version__ = '2.13.0+cpu'\n"})
    write_index(tmp_path / "mirror", [wheel]).rename(tmp_path / "mirror" / "cpu")
    return (tmp_path / "mirror").as_uri()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_download_takes_its_files_from_the_torch_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        how: str) -> None:
    # download had no --torch-index-url and ignored $GPUSTACK_TORCH_INDEX_URL: it always asked
    # download.pytorch.org, so behind a firewall a user could install from the mirror but not download from it.
    for name in [n for n in os.environ if n.startswith(("PIP_", "UV_"))]:  # this machine's pip settings stay out
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    mirror = _torch_mirror(tmp_path)
    pypi = write_index(tmp_path / "pypi", [make_wheel(tmp_path / "build", "unrelated", "1.0")]).as_uri()
    args = ["download", "--cpu", "--python", "3.11", "--platform", "linux_x86_64", "torch==2.13.0", "--index-url",
            pypi, "--dest", str(tmp_path / "d")]
    if how == "option":
        args += ["--torch-index-url", mirror]
    else:
        monkeypatch.setenv("GPUSTACK_TORCH_INDEX_URL", mirror)
    dry = CliRunner().invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 0 and f"--index-url {mirror}/cpu --extra-index-url {pypi} torch==2.13.0+cpu" in dry.output, \
        dry.output
    assert "download.pytorch.org" not in dry.output and not (tmp_path / "d").exists()
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["torch-2.13.0+cpu-py3-none-any.whl"]


def test_download_plan_refuses_what_the_plan_would_ignore(tmp_path: Path) -> None:
    # `download --plan P --gpu A100 xformers --profile audiocraft` dropped all three without a word (rc 0).
    plan = CliRunner().invoke(main, ["plan", "--cpu", "torch==2.13.0", "--json"])
    assert plan.exit_code == 0, plan.output
    (tmp_path / "p.json").write_text(plan.stdout)
    out = CliRunner().invoke(main, ["download", "--plan", str(tmp_path / "p.json"), "--dest", str(tmp_path / "d"),
                                    "--dry-run", "--gpu", "A100", "xformers", "--profile", "audiocraft"])
    assert out.exit_code == 2, out.output
    assert out.output.strip().splitlines() == [
        f"gpustack: --plan {tmp_path / 'p.json'} downloads exactly what it says, so the requirements, --gpu, --profile "
        "would be ignored: drop them, or make a new one with them (`gpustack plan --json`)"]
    assert not (tmp_path / "d").exists()
    mirrored = CliRunner().invoke(main, ["download", "--plan", str(tmp_path / "p.json"), "--dest", str(tmp_path / "d"),
                                         "--dry-run", "--torch-index-url", "https://mirror.example/whl"])
    assert mirrored.exit_code == 0 and "--index-url https://mirror.example/whl/cpu" in mirrored.output, mirrored.output


def _sdist(tmp_path: Path, members: dict[str, str]) -> Path:
    import io
    import tarfile

    path = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, text in members.items():
            info = tarfile.TarInfo(f"pkg-1.0/{name}")
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    return path


def test_what_an_sdist_needs_is_read_from_it_only_where_it_is_static(tmp_path: Path) -> None:
    # PEP 643: Requires-Dist of an sdist's PKG-INFO is reliable from Metadata-Version 2.2 on, unless it is Dynamic;
    # PEP 517: no [build-system] means setuptools' legacy backend.
    from fakewheels import make_sdist  # noqa: E402

    from resolver.download import sdist_needs

    assert sdist_needs(make_sdist(tmp_path / "a", "srconly", "1.0", ["tinypkg>=1"])) == (["fake-backend"],
                                                                                         ["tinypkg>=1"])
    assert sdist_needs(make_sdist(tmp_path / "b", "oldsrc", "2.0", ["six"], metadata_version="2.1")) == (
        ["fake-backend"], None)
    dynamic = "Metadata-Version: 2.2\nName: pkg\nVersion: 1.0\nDynamic: Requires-Dist\nRequires-Dist: six\n"
    assert sdist_needs(_sdist(tmp_path, {"PKG-INFO": dynamic, "setup.py": ""})) == (
        ["setuptools>=40.8.0", "wheel"], None)


@pytest.mark.parametrize("dead", ["torch-mirror", "default"])
def test_download_from_a_host_that_does_not_answer_stops_at_once_naming_it(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           dead: str) -> None:
    # pip retried an unreachable index for 16 s, then failed naming no host, where install's probe stops in 0.3 s
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")) or name.lower() in ("no_proxy", "all_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    args = ["download", "--cpu", "torch==2.13.0", "--dest", str(tmp_path / "d")]
    if dead == "torch-mirror":  # a dead loopback mirror
        args += ["--torch-index-url", "http://127.0.0.1:9/whl"]
        named = "http://127.0.0.1:9/whl/cpu is not reachable (needed for torch==2.13.0+cpu)"
    else:  # download.pytorch.org behind a proxy that refuses every connection (an air-gapped box)
        for name in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, "http://127.0.0.1:9")
        named = "https://download.pytorch.org/whl/cpu is not reachable (needed for torch==2.13.0+cpu); download " \
                "through a mirror of download.pytorch.org/whl"
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 1 and named in done.output, done.output
    assert len(done.output.strip().splitlines()) == 1 and not (tmp_path / "d").exists(), done.output
