"""A bare re-lock (``gpustack lock -o FILE`` with no request) locks what FILE was made for: every option of ``lock``
that changes what is locked is recorded in ``[tool.gpustack]`` and replayed (``lock.RECORDED_OPTIONS``,
``cmd_lock.replayed_options``). Real CLI runs on empty ``file://`` mirrors: nothing is fetched, every hash is written
as missing, and the plan alone decides the files."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from resolver.cli import main
from resolver.cmd_lock import lock
from resolver.lock import RECORDED_OPTIONS, loads
from _isolation import isolate_installers

# Every parameter of `lock`, by click name: where a lock records it (a bare re-lock replays it from there) ...
RECORDED = {
    "requirements": "request", "requirement_files": "request (the -r lines as solved)", "profiles": "profile",
    "gpus": "target.gpus", "cpu": "target.gpus (none)", "python_version": "target.python",
    "platform_tag": "target.platform", "python_exe": "target.python and target.platform (and glibc, detected)",
    "driver": "driver", "glibc": "glibc", "with_deps": "deps",
    "fleet": "fleet (each class's GPU, driver, platform and OS: [tool.gpustack.fleet])",
    **{name: name for name in RECORDED_OPTIONS},
}
# ... or why it does not change what is locked.
NOT_RECORDED = {
    "output": "where the lock is written",
    "fmt": "the file's format; a requirements file is never re-locked (it is not a gpustack lock)",
    "index_url": "where PyPI's files come from (a mirror, or $PIP_INDEX_URL): each package's index is in the lock, and a "
                 "re-lock takes the mirror of the machine that runs it, as every command does; never its credentials",
    "torch_index_url": "where download.pytorch.org's files come from: as --index-url",
    "allow_insecure_index": "whether a plain-http mirror is accepted: as --index-url",
    "matrix_dir": "hidden, for tests: where the matrices are read from",
    "per_class": "writes one lock per class, each re-locked on its own",
}


def test_every_option_of_lock_is_recorded_or_does_not_change_the_lock() -> None:
    names = {p.name for p in lock.params}
    assert names == set(RECORDED) | set(NOT_RECORDED), (
        f"new option(s) of `lock`: {sorted(names - set(RECORDED) - set(NOT_RECORDED))}: record them "
        "(lock.RECORDED_OPTIONS) so a bare re-lock replays them, or say here why they do not change the lock")
    assert not set(RECORDED) & set(NOT_RECORDED)


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Return mirror options pointing at empty ``file://`` folders (nothing is fetched, from anywhere)."""
    isolate_installers(monkeypatch, also=lambda name: name == "GPUSTACK_TORCH_INDEX_URL")
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "torch").mkdir()
    (tmp_path / "pypi").mkdir()
    return ["--torch-index-url", (tmp_path / "torch").as_uri(), "--index-url", (tmp_path / "pypi").as_uri()]


A100 = ["--gpu", "A100", "--driver", "535.216.01", "--python", "3.11", "--platform", "linux_x86_64", "--glibc", "2.35"]


def _lock(args: list[str]) -> str:
    result = CliRunner().invoke(main, ["lock", *args])
    assert result.exit_code == 0, result.output
    return result.stderr


def _packages(path: Path) -> dict[str, tuple[str, str]]:
    """Return each locked package's version and file (wheel, sdist or, for a missing hash, its URL)."""
    locked = loads(path.read_text())
    return {p.name: (p.version, p.url.rsplit("/", 1)[-1]) for p in (*locked.packages, *locked.missing)}


@pytest.mark.parametrize("options, record, expect", [
    # the trial's case: the flash-attn 2.8.3.post1 wheel for torch 2.8, never a 2.8.3.post2 source build
    (["--prefer-wheels"], {"prefer_wheels": True},
     {"flash-attn": ("2.8.3.post1", "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"),
      "torch": ("2.8.0+cu129", "")}),
    # 2.8.3.post2 is unverified (matrices/flash_attn.toml): a re-lock stays on the verified 2.8.3.post1
    (["--verified-only"], {"verified_only": True}, {"flash-attn": ("2.8.3.post1", "")}),
    (["--nvcc", "12.4", "--upgrade"], {"nvcc": "12.4", "upgrade": True}, {}),
])
def test_a_bare_relock_replays_every_option_that_changed_the_lock(isolated: list[str], tmp_path: Path,
                                                                  options: list[str], record: dict[str, object],
                                                                  expect: dict[str, tuple[str, str]]) -> None:
    out = tmp_path / "pylock.toml"
    _lock([*A100, "flash-attn", *options, "--no-deps", *isolated, "-o", str(out)])
    first = out.read_text()
    got = _packages(out)
    for name, (version, file) in expect.items():
        assert got[name][0] == version and (not file or got[name][1] == file), got
    said = _lock([*isolated, "-o", str(out)])  # no request, no target, no --no-deps: what the lock was made for
    line = next(ln for ln in said.splitlines() if ln.startswith("re-locking"))
    assert all(o in line.split() for o in options + ["--no-deps"]), line
    assert out.read_text() == first  # the same plan, files and record: byte for byte
    tool = tomllib.loads(first)["tool"]["gpustack"]
    assert tool["deps"] is False
    assert {k: tool[k] for k in RECORDED_OPTIONS if k in tool} == record


def test_options_given_to_a_relock_are_kept_with_the_recorded_ones(isolated: list[str], tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    _lock([*A100, "flash-attn", "--verified-only", "--no-deps", *isolated, "-o", str(out)])
    _lock(["--prefer-wheels", *isolated, "-o", str(out)])
    locked = loads(out.read_text())
    assert locked.options == {"verified_only": True, "prefer_wheels": True} and locked.request == ("flash-attn",)


@pytest.mark.parametrize("key, value, what", [
    ("prefer_wheels", '"yes"', "true or false"),
    ("nvcc", '"twelve"', "a CUDA version such as 12.4"),
])
def test_a_bad_recorded_option_is_bad_input_naming_it(isolated: list[str], tmp_path: Path, key: str, value: str,
                                                      what: str) -> None:
    out = tmp_path / "pylock.toml"
    _lock([*A100, "flash-attn", "--no-deps", *isolated, "-o", str(out)])
    text = out.read_text().replace("deps = false\n", f"deps = false\n{key} = {value}\n")
    out.write_text(text)
    result = CliRunner().invoke(main, ["install", "--lock", str(out), "--dry-run"])
    assert result.exit_code == 2 and f"tool.gpustack.{key}" in result.stderr and what in result.stderr, result.stderr
    assert out.read_text() == text


@pytest.mark.parametrize("command", [["install", "--dry-run", "--lock"], ["check-upgrade", "flash-attn", "--lock"],
                                     ["lock", "-o"]])
def test_a_bad_recorded_glibc_is_named_in_the_lock_by_every_reader(isolated: list[str], tmp_path: Path,
                                                                   command: list[str]) -> None:
    # check-upgrade and a bare re-lock said "--glibc 'abc': expected ...", an option nobody gave
    out = tmp_path / "pylock.toml"
    _lock([*A100, "flash-attn", "--no-deps", *isolated, "-o", str(out)])
    text = re.sub(r'(?m)^glibc = "[^"]*"$', 'glibc = "abc"', out.read_text())
    assert 'glibc = "abc"' in text
    out.write_text(text)
    result = CliRunner().invoke(main, [*command, str(out), *(isolated if command[0] == "lock" else [])])
    assert result.exit_code == 2 and "tool.gpustack.glibc" in result.stderr, result.stderr
    assert "a glibc version such as 2.28" in result.stderr and "--glibc" not in result.stderr, result.stderr
    assert out.read_text() == text


@pytest.mark.parametrize("edit", [
    pytest.param(lambda t: t.replace("deps = false\n", 'deps = false\nprefer_wheels = "yes"\n'), id="bad-option"),
    pytest.param(lambda t: t.replace("[tool.gpustack.target]", "[tool.gpustack.target"), id="not-toml"),
    pytest.param(lambda t: t.replace("[tool.gpustack.target]", "[tool.gpustack.elsewhere]"), id="no-target"),
])
def test_a_bare_relock_of_a_gpustack_lock_it_cannot_read_is_bad_input(isolated: list[str], tmp_path: Path,
                                                                       edit: object) -> None:
    # Not the lock of this machine's default stack instead (it used to be: the CPU torch of this box).
    out = tmp_path / "pylock.toml"
    _lock([*A100, "flash-attn", "--no-deps", *isolated, "-o", str(out)])
    text = edit(out.read_text())  # type: ignore[operator]
    assert text != out.read_text()
    out.write_text(text)
    before = sorted(tmp_path.iterdir())
    result = CliRunner().invoke(main, ["lock", *isolated, "-o", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"-o {out}" in lines[0] and "a gpustack lock that cannot be read" in lines[0], lines
    assert f"gpustack lock REQ... -o {out}" in lines[0] and "Traceback" not in result.output
    assert out.read_text() == text and sorted(tmp_path.iterdir()) == before
    # With a request it is simply replaced (that is the way out the refusal names), as any other file there is.
    _lock([*A100, "flash-attn", "--no-deps", *isolated, "-o", str(out)])
    assert loads(out.read_text()).request == ("flash-attn",)


def test_a_file_that_is_not_a_gpustack_lock_is_still_replaced_by_a_bare_lock(isolated: list[str],
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    out.write_text('lock-version = "1.0"\ncreated-by = "uv"\n[[packages]]\nname = "x"\n')  # uv's, say: no claim
    _lock([*A100, "--no-deps", *isolated, "-o", str(out)])
    assert loads(out.read_text()).target.python == "3.11"


def test_check_upgrade_of_a_lock_keeps_the_options_it_was_made_with(isolated: list[str], tmp_path: Path) -> None:
    # A --verified-only lock (flash-attn 2.8.3.post1: post2 is unverified) is checked --verified-only, as its re-lock
    # is (cmd_lock.replayed_options, the one reader): the move to post2 is refused as plan --verified-only refuses it,
    # and no nearest set offers it. The same lock without that record is checked without it.
    import json

    out = tmp_path / "pylock.toml"
    _lock([*A100, "flash-attn", "--verified-only", "--no-deps", *isolated, "-o", str(out)])
    assert _packages(out)["flash-attn"][0] == "2.8.3.post1"
    plan = CliRunner().invoke(main, ["plan", *A100, "--verified-only", "flash-attn==2.8.3.post2"])
    assert plan.exit_code == 1, plan.output
    checked = CliRunner().invoke(main, ["check-upgrade", "--lock", str(out), "flash-attn==2.8.3.post2", "--json"])
    assert checked.exit_code == 1, checked.output
    report = json.loads(checked.stdout)
    assert report["verdict"] == "unsafe" and report["nearest_safe"] is None, report
    # the same cause: plan folds it over every torch build it tried (refusal.folded), the finding is the locked one's
    [finding] = [f["reason"] for f in report["findings"]]
    assert finding.startswith("flash-attn 2.8.3.post2 with torch 2.14.1+cu126: "), report
    assert finding.split(": ", 1)[1] == plan.output.splitlines()[1].split(": ", 1)[1], (finding, plan.output)
    unrecorded = tmp_path / "pylock.other.toml"
    unrecorded.write_text(out.read_text().replace("verified_only = true\n", ""))
    assert loads(unrecorded.read_text()).options == {}
    other = json.loads(CliRunner().invoke(main, ["check-upgrade", "--lock", str(unrecorded), "flash-attn==2.8.3.post2",
                                                 "--json"]).stdout)
    assert other["verdict"] == "needs-rebuild" and other["nearest_safe"]["flash-attn"] == "2.8.3.post2", other
