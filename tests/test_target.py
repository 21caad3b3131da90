"""The one reader of a target interpreter: every mode, run in a real child, agrees on who the interpreter is."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from resolver.errors import BadInput
from resolver.pipeline import this_platform
from resolver.target import read_target


def test_modes_agree_on_the_interpreter() -> None:
    readings = {mode: read_target(sys.executable, mode) for mode in ("full", "light", "installed")}
    tag = "cp%d%d" % sys.version_info[:2]
    for facts in readings.values():
        assert (facts.python, facts.python_tag) == (f"{sys.version_info[0]}.{sys.version_info[1]}", tag)
        assert facts.platform == this_platform() and facts.prefix == sys.prefix
    full, light, installed = readings["full"], readings["light"], readings["installed"]
    assert full.env is not None and full.env.platform == this_platform()
    assert full.env.packages["click"] == installed.dists["click"][0]
    assert light.has_pip is True and light.torch_version_py is None  # no torch in the test venv
    assert installed.has_pip is True  # the install's snapshot says it too: its pip needs no reading of its own
    assert installed.dists["gpustack-resolver"][2] is True  # the editable checkout, with its URL
    assert installed.dists["gpustack-resolver"][1] is not None


def test_killed_pips_stash_is_debris_not_a_distribution(tmp_path: Path) -> None:
    import venv

    venv.create(tmp_path / "v", with_pip=False)
    python = str(tmp_path / "v" / "bin" / "python")
    site = next((tmp_path / "v" / "lib").glob("python*/site-packages"))
    (site / "~orch").mkdir()
    (site / "~orch-2.1.0.dist-info").mkdir()
    (site / "~orch-2.1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.1.0\n")
    installed = read_target(python, "installed")
    full = read_target(python, "full")
    assert "torch" not in installed.dists and full.env is not None and full.env.torch is None
    assert any(d.endswith("~orch") for d in installed.debris)
    assert read_target(python, "light").has_pip is False
    assert installed.has_pip is False


def test_not_a_python_is_bad_input(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BadInput, match="not a working Python"):
        read_target(str(fake), "light")
    with pytest.raises(BadInput, match="not found"):
        read_target(str(tmp_path / "nope"), "installed")


def test_reading_again_lists_the_folders_and_reads_the_pth_files_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # read_again decides from the site-packages listing and .pth files that it may read in this process: that same
    # listing is the new reading's, not a second one (spies around the real readers; the reading is compared whole).
    from resolver._child import probe_env
    from resolver.target import read_again

    first = read_target(sys.executable, "installed")
    calls: dict[str, int] = {"site_listing": 0, "pth_paths": 0}

    def spy(name: str) -> object:
        real = getattr(probe_env, name)

        def counted(*args: object) -> object:
            calls[name] += 1
            return real(*args)
        return counted

    for name in calls:
        monkeypatch.setattr(probe_env, name, spy(name))
    again = read_again(first)
    assert calls == {"site_listing": 1, "pth_paths": 1}
    assert (again.dists, again.dist_paths, again.toplevel, again.pth, again.debris, again.sys_path) == \
        (first.dists, first.dist_paths, first.toplevel, first.pth, first.debris, first.sys_path)
    assert set(again.stamps) == set(first.toplevel) and again.read_at >= first.read_at


def test_an_installer_takes_pip_from_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``has_pip`` in the snapshot is for: the install's pip (steps, restore) is chosen without a reading."""
    import venv

    from resolver import target
    from resolver.installers import Installer

    venv.create(tmp_path / "v", with_pip=False)
    python = str(tmp_path / "v" / "bin" / "python")
    facts = read_target(python, "installed")
    calls: list[str] = []
    real = target.read_target
    monkeypatch.setattr(target, "read_target", lambda exe, mode: calls.append(mode) or real(exe, mode))
    installer = Installer("pip", python)
    installer.saw(facts.has_pip)
    assert installer.pip == [sys.executable, "-m", "pip", "--python", python] and calls == []
    with_pip = Installer("pip", sys.executable)
    with_pip.saw(True)
    assert with_pip.pip == [sys.executable, "-m", "pip"] and calls == []
    unknown = Installer("pip", python)
    unknown.saw(None)
    assert unknown.pip == [sys.executable, "-m", "pip", "--python", python] and calls == ["light"]
