"""An install step's dependency check (``resolver.requires``) judges a requirement's marker by the target
interpreter's own marker environment, which its reading reports, not by gpustack's: gpustack (Python 3.11 here)
installing into a venv of another Python used to leave every requirement with a marker out of the check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

import fakewheels  # noqa: E402
from _isolation import isolate_installers  # noqa: E402
from resolver import envstate  # noqa: E402
from resolver.requires import marker_environment, unmet  # noqa: E402

OTHER = next((Path(p) for p in ("/root/.pyenv/versions/3.12.1/bin/python3", "/usr/bin/python3.12")
              if Path(p).is_file() and sys.version_info[:2] != (3, 12)), None)


def _venv_with(python: Path, root: Path) -> str:
    """Return the python of a new venv of ``python`` holding ``app 1.0``, which needs ``newdep`` on Python 3.12
    and later and ``olddep`` before, neither installed (``--no-deps``)."""
    venv = root / "venv"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    wheel = fakewheels.make_wheel(root / "wheels", "app", "1.0", {"app/__init__.py": ""},
                                  requires=['newdep>=1; python_version >= "3.12"', 'olddep; python_version < "3.12"'])
    exe = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(exe), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True)
    return str(exe)


@pytest.mark.skipif(OTHER is None, reason="needs a Python 3.12 beside this interpreter (this machine has one)")
def test_a_marker_is_judged_by_the_target_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_installers(monkeypatch)
    assert OTHER is not None
    python = _venv_with(OTHER, tmp_path)
    snap = envstate.snapshot(python)  # the real reading, in a child of the 3.12 interpreter
    assert snap.python_tag == "cp312" and snap.markers["python_version"] == "3.12"
    assert snap.markers["python_full_version"].startswith("3.12.")
    assert marker_environment(snap) == dict(snap.markers)
    # newdep is what a 3.12 app needs; olddep's marker is false there. The old check (markers only when the target
    # was gpustack's own kind) said nothing at all.
    assert unmet(snap, ["app"]) == ['app 1.0 needs newdep>=1; python_version >= "3.12" (not installed)']


def test_a_reading_keeps_its_markers_when_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The after-step reading (``target.read_again``, in this process) keeps the markers the child reported."""
    isolate_installers(monkeypatch)
    python = _venv_with(Path(sys.executable), tmp_path)
    before = envstate.snapshot(python)
    after = envstate.snapshot(python, since=before)
    assert before.markers and after.markers == before.markers
    assert after.markers["python_full_version"] == ".".join(map(str, sys.version_info[:3]))


def test_the_extras_shortcut_agrees_with_packaging_on_every_requirement_here() -> None:
    """``only_for_extras`` skips a requirement without parsing it only where packaging's own evaluation is false for
    every wanted extra: checked on every Requires-Dist of this interpreter's distributions and on crafted forms."""
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    from resolver.requires import only_for_extras

    lines = [r for d in metadata.distributions() for r in (d.requires or [])]
    lines += ['a; extra == "Dev_Tools"', "a ; extra=='x'  ", 'a; extra == "x" or python_version > "1"',
              'a; python_version > "1" and extra == "x"', 'a @ https://h/a.whl ; extra == "x"', "a[b]; extra == 'b'"]
    env = {k: str(v) for k, v in default_environment().items()}
    skipped = 0
    for wanted in ([""], ["", "dev-tools"], ["", "x", "b"]):
        for line in lines:
            if only_for_extras(line, wanted):
                skipped += 1
                marker = Requirement(line).marker
                assert marker is not None and not any(marker.evaluate({**env, "extra": e}) for e in wanted), line
    assert skipped > 50  # the shortcut is taken (most extras' requirements)
    assert not only_for_extras('a; extra == "Dev_Tools"', ["", "dev-tools"])  # PEP 685: normalized
    assert not only_for_extras('a; extra == "x" or python_version > "1"', [""])  # not the one form: parsed
