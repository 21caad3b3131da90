"""The git URL a source build of an xformers release without an sdist installs is a matrix fact
(xformers.toml ``[meta] git_url``, with its source, beside each release's ``git_tag`` and ``git_tag_commit``), read in
one place (``compat.xformers_git_url``): a matrix that moves it moves the plan, and a template the release's tag
cannot go into is an invalid matrix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from resolver.cli import main
from resolver.matrix import matrix_dir

TARGET = ["--gpu", "A100", "--driver", "535.216.01", "--python", "3.11", "--platform", "linux_x86_64",
          "--glibc", "2.35", "xformers==0.0.19"]  # no cp311 wheel and no sdist on PyPI: built from its git tag


def _matrices(tmp_path: Path, git_url: str) -> Path:
    folder = tmp_path / "matrices"
    shutil.copytree(matrix_dir(), folder)
    path = folder / "xformers.toml"
    text = path.read_text()
    old = 'git_url = "git+https://github.com/facebookresearch/xformers.git@{tag}"\n'
    assert old in text
    path.write_text(text.replace(old, f"git_url = {json.dumps(git_url)}\n"))
    return folder


def _xformers(args: list[str]) -> dict[str, object]:
    result = CliRunner().invoke(main, ["plan", *TARGET, "--json", *args])
    assert result.exit_code == 0, result.output
    (step,) = [s for s in json.loads(result.stdout)["steps"] if s["package"] == "xformers"]
    return step  # type: ignore[no-any-return]


def test_the_plan_builds_xformers_from_the_git_url_the_matrix_gives(tmp_path: Path) -> None:
    assert _xformers([])["requirement"] == "xformers @ git+https://github.com/facebookresearch/xformers.git@v0.0.19"
    moved = _matrices(tmp_path, "git+https://git.example.org/mirror/xformers.git@{tag}")
    step = _xformers(["--matrix-dir", str(moved)])
    assert step["requirement"] == "xformers @ git+https://git.example.org/mirror/xformers.git@v0.0.19", step


def test_a_git_url_without_the_tag_is_an_invalid_matrix(tmp_path: Path) -> None:
    bad = _matrices(tmp_path, "git+https://github.com/facebookresearch/xformers.git@main")
    result = CliRunner().invoke(main, ["matrix", "validate", "--matrix-dir", str(bad)])
    assert result.exit_code != 0 and "git_url" in result.output and "{tag}" in result.output, result.output
