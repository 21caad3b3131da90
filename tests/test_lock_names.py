"""The names ``gpustack lock`` writes: PEP 751 allows ``pylock.toml`` or ``pylock.<name>.toml`` only, and uv (the real
reader) refuses any other. ``--per-class`` names are tested with the fleet (tests/test_cli_fleet.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main
from test_cli_fleet import _no_network


@pytest.mark.parametrize("name, warned", [("a.toml", True), ("pylock.a.toml", False), ("pylock.toml", False)])
def test_a_lock_named_outside_pep_751_is_written_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                name: str, warned: bool) -> None:
    _no_network(monkeypatch)
    res = CliRunner().invoke(main, ["lock", "--cpu", "--python", "3.11", "torch==2.13.0", "--no-deps",
                                    "-o", str(tmp_path / name)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / name).is_file()  # gpustack install --lock reads any name: a warning, not a refusal
    assert ("not a PEP 751 lock name, so uv will not read it" in res.stderr) == warned
