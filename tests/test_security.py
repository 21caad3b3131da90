"""Issue 12's security findings, one test each: the attack as reported, now failing.

(The matrix-cache pickle and the ``-o`` findings are in test_matrix_cache.py and test_safefiles.py.)
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from resolver import build, installers
from resolver.cli import main
from resolver.errors import BadInput
from resolver.install import Installer, Sources, commands
from resolver.lock import loads
from resolver.models import PYPI_SIMPLE, PackageChoice, Plan, Stack, Step, Target

GOLDEN = Path(__file__).parent / "golden" / "lock_gpu_source.toml"
SECRET = "s3cr3t-t0ken"


def _plan_file(tmp_path: Path, steps: list[dict[str, object]]) -> str:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"ok": True, "target": {}, "steps": steps}))
    return str(path)


def _lock_with(mutate: object) -> str:
    data = tomllib.loads(GOLDEN.read_text())
    mutate(data)  # type: ignore[operator]
    return tomli_w.dumps(data)


# --- credentials ------------------------------------------------------------------------------------------------

def test_errors_and_verbose_logs_mask_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    url = f"http://alice:{SECRET}@example.invalid/simple"
    plan = _plan_file(tmp_path, [{"action": "install", "package": "torch", "requirement": "torch==2.1.0",
                                  "index_url": url}])
    import logging

    monkeypatch.setattr(logging.root, "handlers", list(logging.root.handlers))  # -v adds one; put them back after
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    result = CliRunner().invoke(main, ["-v", "install", "--dry-run", "--plan", plan])
    assert result.exit_code == 2
    assert SECRET not in result.stderr and "alice:****@example.invalid" in result.stderr


def test_reporter_and_restore_messages_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    from resolver.cli import _Redacting

    stream = _Redacting(sys.stderr)
    stream.write(f"install failed; restoring from https://bob:{SECRET}@host/simple ...\n")
    assert SECRET not in capsys.readouterr().err


def test_build_log_masks_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    log = build._new_log("pkg")
    argv = [sys.executable, "-c", f"print('Looking in indexes: https://u:{SECRET}@idx/simple')"]
    rc, tail = build._run_logged(argv, {}, log, "pkg", show=False)
    assert rc == 0
    text = log.read_text()
    assert "u:****@idx" in text and SECRET not in text


# --- what a lock or plan can make pip do ------------------------------------------------------------------------

def test_newline_in_a_lock_url_is_refused() -> None:
    text = _lock_with(lambda d: d["packages"][0]["wheels"][0].__setitem__(
        "url", "https://download.pytorch.org/whl/x.whl\n--index-url https://evil.example/simple"))
    with pytest.raises(BadInput, match=r"packages\[0\]\.wheels\[0\]\.url"):
        loads(text)


def test_lock_build_env_cannot_set_pythonpath() -> None:
    text = _lock_with(lambda d: d["packages"][1]["tool"]["gpustack"]["build_env"].__setitem__("PYTHONPATH", "/tmp/p"))
    with pytest.raises(BadInput, match=r"packages\[1\]\.tool\.gpustack\.build_env\.PYTHONPATH"):
        loads(text)


def test_build_env_takes_only_the_allowlist() -> None:
    res = build.Resources(nvcc=None, ninja=None, disk_free_gib=100.0, mem_available_gib=64.0, cpus=4)
    step = Step("build", "x", "x==1", env={"PYTHONPATH": "/tmp/planted", "MAX_JOBS": "2"})
    with pytest.raises(BadInput, match="PYTHONPATH"):
        build.build_env(step, res, sys.executable)
    ok = build.build_env(Step("build", "x", "x==1", env={"MAX_JOBS": "2", "FORCE_CUDA": "1"}), res, sys.executable)
    assert ok["MAX_JOBS"] == "2" and "PYTHONPATH" not in ok


def test_plan_requirement_cannot_be_a_pip_option(tmp_path: Path) -> None:
    plan = _plan_file(tmp_path, [{"action": "install", "package": "x", "requirement": "--target=/x"}])
    result = CliRunner().invoke(main, ["install", "--dry-run", "--plan", plan])
    assert result.exit_code == 2 and "steps[0].requirement: '--target=/x' is not a PEP 508" in result.stderr


def test_argv_builder_refuses_options_and_newlines() -> None:
    inst = Installer("pip", sys.executable)
    for bad in ("--target=/x", "torch\n--index-url=https://evil", "-r/etc/passwd"):
        with pytest.raises(BadInput):
            inst.install_argv([bad], [])
    step = Step("install", "torch", "torch==2.1.0", index_url="-https://x")
    with pytest.raises(BadInput):
        installers.source_args(step, Sources())


# --- indexes and cache files ------------------------------------------------------------------------------------

def _plan(index: str) -> Plan:
    target = Target(gpus=(), python="3.11", platform="linux_x86_64")
    stack = Stack(target, (PackageChoice("torch", "2.1.0", "wheel"),))
    return Plan(stack, (Step("install", "torch", "torch==2.1.0", index_url=index),))


def test_http_index_needs_allow_insecure_except_loopback() -> None:
    inst = Installer("pip", sys.executable)
    with pytest.raises(BadInput, match="--allow-insecure-index"):
        commands(_plan("http://mirror.example/simple"), inst, Sources())
    assert commands(_plan("http://mirror.example/simple"), inst, Sources(allow_insecure=True))
    for loopback in ("http://127.0.0.1:8080/simple", "http://localhost/simple", "http://[::1]/simple"):
        assert commands(_plan(loopback), inst, Sources())
    assert commands(_plan(PYPI_SIMPLE), inst, Sources())


def test_cli_http_index_is_bad_input(tmp_path: Path) -> None:
    plan = _plan_file(tmp_path, [{"action": "install", "package": "torch", "requirement": "torch==2.1.0",
                                  "index_url": "http://mirror.example/simple"}])
    result = CliRunner().invoke(main, ["install", "--dry-run", "--plan", plan])
    assert result.exit_code == 2 and "--allow-insecure-index" in result.stderr
    result = CliRunner().invoke(main, ["install", "--dry-run", "--allow-insecure-index", "--plan", plan])
    assert result.exit_code == 0, result.output


def test_constraints_file_does_not_follow_a_planted_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    name = Path(str(installers.constraints_path(["torch==2.1.0"]))).name
    folder = tmp_path / "cache" / "constraints"
    folder.mkdir(parents=True)
    (folder / name).symlink_to(victim)
    path = installers.constraints_path(["torch==2.1.0"], write=True)
    assert path is not None and Path(path).read_text() == "torch==2.1.0\n"
    assert victim.read_text() == "precious\n" and not Path(path).is_symlink()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def test_download_dry_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    plan = _plan_file(tmp_path, [{"action": "install", "package": "xformers", "requirement": "xformers==0.0.23",
                                  "index_url": PYPI_SIMPLE, "constraints": ["torch==2.1.0"]}])
    result = CliRunner().invoke(main, ["download", "--dry-run", "--dest", str(tmp_path / "dl"), "--plan", plan])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "cache" / "constraints").exists() and not (tmp_path / "dl").exists()


def test_download_dest_that_is_a_file_is_bad_input(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    result = CliRunner().invoke(main, ["download", "--dest", str(f), "--plan", "nope.json"])
    assert result.exit_code == 2 and "--dest" in result.stderr and f.read_text() == "x"


def test_malformed_build_cache_key_json_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver import cache

    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    for i, text in enumerate(['[]', '{"key": 3}', '{"created": "x"}', '{"created": NaN}', '\xff', "{" * 10000]):
        entry = tmp_path / "wheels" / f"entry{i}"
        entry.mkdir(parents=True)
        (entry / "x-1-py3-none-any.whl").write_bytes(b"PK")
        (entry / "key.json").write_text(text, errors="surrogateescape")
    assert cache.entries() == []
    result = CliRunner().invoke(main, ["cache", "list"])
    assert result.exit_code == 0 and "Traceback" not in result.output


def test_find_links_file_must_match_the_lock_hash(tmp_path: Path) -> None:
    import hashlib

    from resolver.local_files import use_local_files

    links = tmp_path / "links"
    links.mkdir()
    locked = loads(GOLDEN.read_text())
    torch = locked.packages[0]
    name = torch.url.rsplit("/", 1)[-1].replace("%2B", "+")
    (links / name).write_bytes(b"planted wheel")
    with pytest.raises(BadInput, match=r"--find-links .*sha256 .* is not the lock's"):
        use_local_files(locked, [str(links)])
    good = b"the locked wheel"
    data = tomllib.loads(GOLDEN.read_text())
    data["packages"][0]["wheels"][0]["hashes"]["sha256"] = hashlib.sha256(good).hexdigest()
    (links / name).write_bytes(good)
    used = use_local_files(loads(tomli_w.dumps(data)), [str(links)])
    assert used.packages[0].url == (links / name).resolve().as_uri()
    assert used.packages[1].url == locked.packages[1].url  # not in the folder: its URL stays


def test_cli_install_lock_refuses_a_tampered_find_links_file(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    locked = loads(GOLDEN.read_text())
    (links / locked.packages[0].url.rsplit("/", 1)[-1].replace("%2B", "+")).write_bytes(b"planted")
    result = CliRunner().invoke(main, ["install", "--dry-run", "--lock", str(GOLDEN), "--find-links", str(links)])
    assert result.exit_code == 2 and "is not the lock's" in result.stderr
