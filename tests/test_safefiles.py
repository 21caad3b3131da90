"""Issue 12: ``-o`` writes through a regular file or creates it, refuses special files, keeps links and the umask,
and never leaves a temporary file behind; cache files are private and not planted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.errors import BadInput
from resolver.safefiles import private_dir, read_private, write_output, write_private

TARGET = ["--gpu", "A100", "--driver", "535.104.05", "--python", "3.11", "--platform", "linux_x86_64"]


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_creates_with_the_umask_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = write_output(str(tmp_path / "Dockerfile"), "FROM x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 and out.read_text() == "FROM x\n"


def test_replacing_keeps_the_mode(tmp_path: Path) -> None:
    f = tmp_path / "pylock.toml"
    f.write_text("old")
    f.chmod(0o640)
    write_output(str(f), "new")
    assert f.read_text() == "new" and stat.S_IMODE(f.stat().st_mode) == 0o640


def test_symlink_is_written_through_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text("old")
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    write_output(str(link), "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert _listing(tmp_path) == ["link.toml", "real.toml"]


@pytest.mark.parametrize("special", ["/dev/null", "fifo", "folder"])
def test_special_files_are_refused_and_untouched(tmp_path: Path, special: str) -> None:
    if special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif special == "folder":
        path = tmp_path / "folder"
        path.mkdir()
    else:
        path = Path(special)
    before = os.lstat(path)
    with pytest.raises(BadInput) as info:
        write_output(str(path), "text")
    assert "\n" not in str(info.value)
    after = os.lstat(path)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino


def test_cli_lock_to_dev_null_is_refused_before_solving(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["lock", *TARGET, "-o", "/dev/null"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "gpustack: -o /dev/null: not a regular file (a device, FIFO or socket); " \
                                    "pass a file path (or - for stdout)"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    result = CliRunner().invoke(main, ["dockerfile", *TARGET, "-o", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.stderr and _listing(tmp_path) == []


def test_failed_write_removes_its_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        write_output(str(tmp_path / "out.txt"), "\udcff unencodable")
    assert _listing(tmp_path) == []


def test_private_dir_and_files(tmp_path: Path) -> None:
    d = private_dir(tmp_path / "a" / "b")
    assert d is not None and stat.S_IMODE(d.stat().st_mode) == 0o700
    f = write_private(d, "x.json", b"data")
    assert f is not None and read_private(f) == b"data" and stat.S_IMODE(f.stat().st_mode) == 0o600
    link = d / "link.json"
    link.symlink_to(f)
    assert read_private(link) is None  # never through a link
    os.mkfifo(d / "fifo")
    assert read_private(d / "fifo") is None  # never blocks
    (tmp_path / "c").symlink_to(d)
    assert private_dir(tmp_path / "c") is None
