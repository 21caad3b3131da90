"""platforms.toml: each Linux release's glibc, with its source, in one table every command reads (flash-attn's wheel
floor, a fleet node's OS, a Dockerfile's image). Real `gpustack` runs through CliRunner on edited copies of the
shipped matrices: changing a row there changes every answer that rests on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner
from packaging.version import Version

from _plans import package_of
from resolver.cli import main
from resolver.matrix import load, load_dir, matrix_dir

H100 = ["--gpu", "H100", "--driver", "580.95.05", "--python", "3.11"]
JAMMY = '[[os]]\nname = "ubuntu-22.04"\nglibc = "2.35"\n'


def _copy(tmp_path: Path, old: str = "", new: str = "") -> Path:
    folder = tmp_path / "matrices"
    shutil.copytree(matrix_dir(), folder, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    if old:
        toml = folder / "platforms.toml"
        assert old in toml.read_text(), old
        toml.write_text(toml.read_text().replace(old, new, 1))
    return folder


def test_show_platforms_prints_every_release_with_its_source() -> None:
    result = CliRunner().invoke(main, ["matrix", "show", "platforms", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["OS"]: r for r in json.loads(result.output)}
    assert rows["centos-7"]["glibc"] == "2.17" and "pep600_compliance" in rows["centos-7"]["source"]
    assert rows["ubuntu-22.04"]["glibc"] == "2.35" and "packages.ubuntu.com" in rows["ubuntu-22.04"]["source"]
    assert rows["ubuntu-22.04-arm"]["note"]  # a GitHub runner label, said so
    assert all(r["source"].strip() for r in rows.values())
    assert {r.name for r in load().oses} == set(rows)
    table = CliRunner().invoke(main, ["matrix", "show", "platforms"])
    assert table.exit_code == 0 and "platforms (28 rows)" in table.output and "debian-12" in table.output


def test_flash_attn_wheels_take_their_floor_from_the_platforms_table(tmp_path: Path) -> None:
    shipped = {str(w.glibc) for f in load().flash_attn if str(f.version) == "2.8.3.post1" for w in f.wheels}
    assert shipped == {"2.35"}
    edited = load_dir(_copy(tmp_path, JAMMY, JAMMY.replace("2.35", "2.36")))
    floors = {str(w.glibc) for f in edited.flash_attn if str(f.version) == "2.8.3.post1" for w in f.wheels}
    assert floors == {"2.36"}  # ubuntu-22.04's glibc, read from platforms.toml
    # and the plan follows: glibc 2.35 no longer meets the wheel's floor, so flash-attn is built from source
    request = [*H100, "--glibc", "2.35", "torch==2.6.0", "flash-attn", "--json"]
    for folder, method in ((matrix_dir(), "wheel"), (tmp_path / "matrices", "source")):
        result = CliRunner().invoke(main, ["plan", "--matrix-dir", str(folder), *request])
        assert result.exit_code == 0, result.output
        assert package_of(json.loads(result.output), "flash-attn")["method"] == method, folder


def test_a_dockerfile_reads_its_images_glibc_from_the_platforms_table(tmp_path: Path) -> None:
    folder = _copy(tmp_path, JAMMY, JAMMY.replace("2.35", "2.36"))
    out = CliRunner().invoke(main, ["dockerfile", "--matrix-dir", str(folder), "--gpu", "A100", "--python", "3.11",
                                    "torch==2.6.0"])
    assert out.exit_code == 0, out.output
    assert "# glibc 2.36: the image's (nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04); pass --glibc X.Y to plan for " \
           "another" in out.stdout.splitlines()


def test_a_bad_row_is_one_line_naming_the_file_row_and_field(tmp_path: Path) -> None:
    cases = [
        (JAMMY, JAMMY.replace('"2.35"', '"2.35.x"'),
         "platforms.toml: os[2] (ubuntu-22.04): glibc: expected a glibc version such as 2.28"),
        (JAMMY, JAMMY.replace('"2.35"', '"3.1"'), "platforms.toml: os[2] (ubuntu-22.04): glibc: expected a glibc"),
        (JAMMY, JAMMY.replace("ubuntu-22.04", "ubuntu-20.04"),
         "platforms.toml: os[2] (ubuntu-20.04): name: 'ubuntu-20.04' appears twice"),
        (JAMMY, JAMMY.replace("ubuntu-22.04", "Ubuntu 22.04"),
         "platforms.toml: os[2] (Ubuntu 22.04): name: expected an os-release ID-VERSION_ID"),
        ('source = "https://packages.ubuntu.com/source/focal/glibc (2.31)"', 'source = " "',
         "platforms.toml: os[1] (ubuntu-20.04): source: empty"),
        ('name = "debian-13"', 'name = "debian-13"\nglibc_min = "2.41"',
         "platforms.toml: os[27] (debian-13): glibc_min: unknown key"),
    ]
    for i, (old, new, expected) in enumerate(cases):
        folder = _copy(tmp_path / str(i), old, new)
        before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
        result = CliRunner().invoke(main, ["matrix", "validate", "--matrix-dir", str(folder)])
        assert result.exit_code == 2, (expected, result.output)
        assert len(result.output.strip().splitlines()) == 1 and expected in result.output, (expected, result.output)
        assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before


def test_a_matrix_folder_without_the_platforms_table_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "platforms.toml").unlink()
    result = CliRunner().invoke(main, ["matrix", "validate", "--matrix-dir", str(folder)])
    assert result.exit_code == 2 and "platforms.toml: file missing" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_the_assumed_glibc_note_names_hosts_from_the_platforms_table(tmp_path: Path) -> None:
    """A described target without --glibc is assumed to have 2.28; the note naming such hosts read them from code
    ('RHEL/Rocky 8, Debian 10, Ubuntu 20.04'). They are the oldest release of each family at or above it."""
    assert load().first_releases_with(Version("2.28")) == ["rhel-8", "rocky-8", "debian-10", "ubuntu-20.04"]
    assert load().first_releases_with(Version("2.34")) == ["rhel-9", "rocky-9", "debian-12", "ubuntu-22.04"]
    focal = '[[os]]\nname = "ubuntu-20.04"\nglibc = "2.31"\n'
    folder = _copy(tmp_path, focal, focal.replace("2.31", "2.27"))  # as if 20.04 shipped 2.27: 22.04 is the first
    out = CliRunner().invoke(main, ["plan", "--matrix-dir", str(folder), "--gpu", "A100", "--driver", "550",
                                    "--python", "3.11", "--platform", "linux_x86_64", "torch"])
    assert out.exit_code == 0, out.output
    assert "glibc not given: assumed 2.28 (hosts such as rhel-8, rocky-8, debian-10, ubuntu-22.04 and later: " \
           "matrices/platforms.toml); pass --glibc X.Y for an older host" in out.output
