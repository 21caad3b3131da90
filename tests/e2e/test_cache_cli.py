"""``gpustack cache list`` / ``clear`` after real installs (the s10 trial): what the cache holds is said in words,
and a full clear takes what installs left there too."""

from __future__ import annotations

from pathlib import Path

from resolver import cache
from test_offline import Served, gpustack, served, up  # noqa: F401  (the loopback indexes, as fixtures)


def test_cache_list_and_clear_say_and_take_what_installs_left(up: Served, tmp_path: Path, isolated: Path) -> None:
    # The trial: `cache list` printed "torch 2.13.0+cpu cuda None archs None"; an empty cache said "the build cache
    # is empty" then "removes these wheels"; the constraints files and build logs of every install stayed forever.
    empty = gpustack("cache", "list")
    assert empty.exit_code == 0 and "removes these wheels" not in empty.output, empty.output
    done = gpustack("install", "--cpu", "torch==2.13.0", "tinypkg", "--venv", str(tmp_path / "v"), "--installer", "uv",
                    "--torch-index-url", up.torch_mirror, "--index-url", up.pypi)
    assert done.exit_code == 0, done.output
    held = sorted((isolated / "constraints").iterdir())
    assert held  # each step's pins, written by the install
    (isolated / "logs").mkdir(exist_ok=True)
    (isolated / "logs" / "build-x.log").write_text("a build's log\n")
    wheel = tmp_path / "cpuext-1.0-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"x")
    cache.store(cache.BuildKey(package="cpuext", source="cpuext==1.0", torch="2.13.0+cpu", torch_cuda=None,
                               python_tag="cp311", cxx11_abi=True, arch_list=None, platform="linux_x86_64"),
                wheel)
    listed = gpustack("cache", "list")
    assert listed.exit_code == 0, listed.output
    assert "None" not in listed.output and "torch 2.13.0+cpu (no CUDA)  cp311 linux_x86_64" in listed.output
    assert f"earlier runs left 1 build log(s) (logs/) and {len(held)} constraints file(s)" in listed.output
    cleared = gpustack("cache", "clear")
    assert cleared.exit_code == 0 and "build logs and constraints files" in cleared.output, cleared.output
    assert not (isolated / "constraints").exists() and not (isolated / "logs").exists() and cache.entries() == []
