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


def _managed_python(root: Path) -> Path:
    """Return a Python outside any venv whose stdlib holds a PEP 668 ``EXTERNALLY-MANAGED`` marker, as a Debian or
    Fedora system Python's does: this interpreter's binary copied under ``root/bin``, the stdlib linked entry by
    entry under ``root/lib/pythonX.Y`` (so ``sys.prefix`` is ``root``), an empty site-packages beside it."""
    import os
    import shutil
    import subprocess
    import sys

    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    base = Path(sys.base_prefix)
    binary, stdlib = base / "bin" / ver, base / "lib" / ver
    if os.name != "posix" or not binary.is_file() or not (stdlib / "os.py").is_file():
        pytest.skip("needs a POSIX Python laid out as <prefix>/bin/pythonX.Y and <prefix>/lib/pythonX.Y")
    lib = root / "lib" / ver
    (lib / "site-packages").mkdir(parents=True)
    (root / "bin").mkdir()
    shutil.copy2(binary, root / "bin" / ver)
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    (lib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use a venv\n")
    python = root / "bin" / ver
    said = subprocess.run([str(python), "-c", "import sys; print(sys.prefix == sys.base_prefix == %r)" % str(root)],
                          capture_output=True, text=True)
    if said.stdout.strip() != "True":
        pytest.skip(f"the copied interpreter does not take {root} as its prefix: {said.stdout}{said.stderr}")
    return python


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_an_externally_managed_python_is_refused_before_anything_is_written(two_index: TwoIndexes, tmp_path: Path,
                                                                           backend: str) -> None:
    # The trial, as root into /usr/bin/python3: "install failed (CommandFailed); restoring /usr ...", pip's 15-line
    # externally-managed-environment text, exit 1, and /usr/.gpustack/lock left behind.
    root = tmp_path / "system"
    python = _managed_python(root)
    for dry in ([], ["--dry-run"]):
        out = CliRunner().invoke(main, ["install", "--plan", str(two_index_plan_file(tmp_path)), "--python-exe",
                                        str(python), "--installer", backend, "--torch-index-url",
                                        f"{two_index.base}/whl", *dry], env={"PIP_INDEX_URL": two_index.pypi_url})
        assert out.exit_code == 2, out.output
        assert out.output.count("\n") == 1 and "EXTERNALLY-MANAGED" in out.output and "--venv" in out.output
    assert not (root / ".gpustack").exists()
    assert list((root / "lib").glob("*/site-packages/*")) == []
