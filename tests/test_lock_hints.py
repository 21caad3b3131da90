"""Lock hints (``resolver.lock_speculate``: one small JSON per distinct ``gpustack lock`` command line in the user's
cache) are pruned to the most recently written or used, safely beside a lock that is reading one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from resolver import lock_speculate, lock_uv
from resolver.models import PYPI_SIMPLE
from resolver.safefiles import prune_private, read_private, write_private

DAY = 86400


def _hint() -> dict[str, Any]:
    return {"project": {"project": {"name": "gpustack-lock-request", "version": "0", "dependencies": ["torch==2.1.0"]},
                        "tool": {}},
            "constraints": ["numpy<2"], "python_version": "3.11", "python_platform": "x86_64-manylinux_2_35",
            "index_url": PYPI_SIMPLE}


def _age(path: Path, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_hints_beyond_the_newest_64_are_removed_and_a_used_one_stays(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(lock_uv, "find_uv", lambda: None)  # reading the hint is under test, not running uv on it
    folder = tmp_path / "lock-hints"
    n = lock_speculate.KEEP + 6
    for i in range(n):
        lock_speculate.remember(f"k{i:02}", _hint())
        _age(folder / f"k{i:02}.json", (n - i) * DAY)  # k00 written first, 70 days ago
        if i == lock_speculate.KEEP - 1:
            assert len(list(folder.iterdir())) == lock_speculate.KEEP  # nothing removed up to the limit
            assert lock_speculate.start("k00") is None  # a lock on k00's command line reads (uses) it
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == lock_speculate.KEEP
    assert "k00.json" in names  # used recently: kept although written first
    assert not any(f"k{i:02}.json" in names for i in range(1, 7))  # the six least recently written or used
    assert all(json.loads((folder / name).read_text()) == _hint() for name in names)


def test_pruning_never_follows_a_link_and_leaves_temporary_and_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "hints"
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious.json"
    precious.write_text("{}")
    _age(precious, 400 * DAY)
    for i in range(4):
        write_private(folder, f"h{i}.json", b"{}")
        _age(folder / f"h{i}.json", (10 - i) * DAY)
    (folder / "old-link.json").symlink_to(precious)  # oldest by its target's time: not ours to judge
    (folder / "sub.json").mkdir()
    (folder / ".h9.json.abc.tmp").write_bytes(b"{")  # a concurrent write_private's temporary file
    (folder / "notes.txt").write_text("x")
    for p in (folder / ".h9.json.abc.tmp", folder / "notes.txt"):
        _age(p, 500 * DAY)
    assert prune_private(folder, 2, ".json") == 2
    assert sorted(os.listdir(folder)) == [".h9.json.abc.tmp", "h2.json", "h3.json", "notes.txt", "old-link.json",
                                          "sub.json"]
    assert precious.read_text() == "{}"


def test_a_linked_hint_folder_is_not_pruned(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        (other / f"h{i}.json").write_text("{}")
    link = tmp_path / "hints"
    link.symlink_to(other)
    assert prune_private(link, 0, ".json") == 0
    assert sorted(os.listdir(other)) == ["h0.json", "h1.json", "h2.json"]


def test_a_reader_that_opened_a_hint_before_it_was_pruned_reads_all_of_it(tmp_path: Path) -> None:
    folder = tmp_path / "hints"
    body = json.dumps(_hint()).encode() * 50
    write_private(folder, "old.json", body)
    write_private(folder, "new.json", b"{}")
    _age(folder / "old.json", DAY)
    fd = os.open(folder / "old.json", os.O_RDONLY | os.O_NOFOLLOW)  # a lock is reading it
    try:
        assert prune_private(folder, 1, ".json") == 1
        with os.fdopen(os.dup(fd), "rb") as fh:
            assert fh.read() == body
    finally:
        os.close(fd)
    assert read_private(folder / "old.json") is None  # a lock after it misses it: no speculation, same lock
    assert read_private(folder / "new.json") == b"{}"


def test_reading_with_touch_marks_the_file_used(tmp_path: Path) -> None:
    write_private(tmp_path / "f", "a.json", b"{}")
    path = tmp_path / "f" / "a.json"
    _age(path, 30 * DAY)
    assert read_private(path) == b"{}" and path.stat().st_mtime < time.time() - 29 * DAY
    assert read_private(path, touch=True) == b"{}" and path.stat().st_mtime > time.time() - 60


def test_remembered_lock_names_keep_only_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # lock_resolve remembers the names a resolution locked, one small file per distinct request: the newest stay.
    from resolver import lock_resolve

    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    keys = [f"k{i:03d}" for i in range(lock_resolve.NAMES_KEPT + 6)]
    for i, key in enumerate(keys):
        lock_resolve.remember_names(key, ["torch", f"dep{i}"])
        os.utime(tmp_path / "lock-names" / f"{key}.json", ns=(i * 10**9, i * 10**9))
    left = sorted(p.stem for p in (tmp_path / "lock-names").glob("*.json"))
    assert left == keys[-lock_resolve.NAMES_KEPT:]
    assert lock_resolve.remembered_names(keys[-1]) == ["dep%d" % (len(keys) - 1), "torch"]
    assert lock_resolve.remembered_names(keys[0]) == []
