"""``gpustack install`` under the user's own installer configuration (the s10 trial), with the real pip and uv, real
venvs and the loopback two-index layout: a setting that makes the installer skip dependencies must not end in
"installed", exit 0, with a torch that cannot import."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TwoIndexes, freeze, two_index_plan_file
from resolver.cli import main


def _install(idx: TwoIndexes, venv: Path, tmp_path: Path, backend: str, env: dict[str, str | None]) -> object:
    args = ["install", "--plan", str(two_index_plan_file(tmp_path)), "--python-exe", str(venv), "--installer",
            backend, "--torch-index-url", f"{idx.base}/whl"]
    return CliRunner().invoke(main, args, env={"PIP_INDEX_URL": idx.pypi_url, **env})


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_a_no_deps_setting_of_the_installer_undoes_the_install(two_index: TwoIndexes, venv: Path, tmp_path: Path,
                                                               backend: str) -> None:
    # The trial: PIP_NO_DEPS=1 (or uv.toml's [pip] no-deps) -> "installed ... added torch", exit 0, and
    # `import torch` failing with "No module named 'typing_extensions'". The fake torch needs typing-extensions.
    before = freeze(venv)
    if backend == "pip":
        env: dict[str, str | None] = {"PIP_NO_DEPS": "1"}
    else:
        config = tmp_path / "uv.toml"
        config.write_text("[pip]\nno-deps = true\n")
        env = {"UV_NO_CONFIG": None, "UV_CONFIG_FILE": str(config)}
    out = _install(two_index, venv, tmp_path, backend, env)
    assert out.exit_code == 1, out.output  # type: ignore[attr-defined]
    text = out.output  # type: ignore[attr-defined]
    assert "torch 2.1.0+cu121 needs typing-extensions>=4.8.0 (not installed)" in text, text
    assert "no-deps" in text and "environment restored" in text, text
    assert freeze(venv) == before

    # the same install without the setting lands, dependencies and all (no false alarm from the check)
    done = _install(two_index, venv, tmp_path, backend, {})
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    assert "typing-extensions==4.12.2" in freeze(venv)
