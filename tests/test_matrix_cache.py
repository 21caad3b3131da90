"""Issue 12: the matrix cache cannot run code, and a corrupted or planted cache is never loaded.

The cache used to be a pickle under a predictable name in a user-writable folder: planted code ran, and 44 of 100
bit flips loaded a different matrix silently. It is now JSON bound to the TOML's SHA-256 with a checksum of its own.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from pathlib import Path

import pytest

from resolver import matrix, matrix_cache
from resolver.errors import InvalidMatrix


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path))
    matrix.load.cache_clear()
    yield tmp_path / "matrix"
    matrix.load.cache_clear()


def _fresh() -> str:
    """Return the repr of a fresh ``matrix.load()`` (rows compare by identity; their repr shows every field)."""
    matrix.load.cache_clear()
    return repr(matrix.load())


def _reference() -> str:
    return repr(matrix.load_dir(matrix.matrix_dir()))


def _only_file(folder: Path) -> Path:
    files = [p for p in folder.iterdir()]
    assert len(files) == 1, files
    return files[0]


def test_cache_is_json_in_a_private_folder(cache: Path) -> None:
    reference = _reference()
    assert _fresh() == reference
    f = _only_file(cache)
    assert f.suffix == ".json" and stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert f.read_bytes().startswith(b"gpustack-matrix-cache ")
    assert _fresh() == reference  # the second load reads the cache


def test_planted_pickle_never_runs(cache: Path, tmp_path: Path) -> None:
    _fresh()
    f = _only_file(cache)
    marker = tmp_path / "pwned"
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    f.write_bytes(pickle.dumps(Evil()))
    (cache / f.name.replace(".json", ".pickle")).write_bytes(pickle.dumps(Evil()))
    assert _fresh() == _reference()
    assert not marker.exists()
    assert f.read_bytes().startswith(b"gpustack-matrix-cache ")  # rebuilt


def test_bit_flips_never_load_another_matrix(cache: Path) -> None:
    reference = _reference()
    assert _fresh() == reference
    f = _only_file(cache)
    digest = f.stem
    good = f.read_bytes()
    rng = random.Random(12)
    for n in range(100):
        data = bytearray(good)
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
        f.write_bytes(bytes(data))
        assert matrix_cache.read(digest) is None  # every flip is a miss, never another matrix
        if n % 40 == 0:
            assert _fresh() == reference
            assert f.read_bytes() == good  # ignored and rewritten


def test_edited_body_with_stale_checksum_is_ignored(cache: Path) -> None:
    reference = _reference()
    assert _fresh() == reference
    f = _only_file(cache)
    header, body = f.read_bytes().split(b"\n", 1)
    f.write_bytes(header + b"\n" + body.replace(b'"8.0"', b'"9.0"', 1))
    assert _fresh() == reference


def test_symlinked_cache_file_and_folder_are_not_followed(cache: Path, tmp_path: Path) -> None:
    reference = _reference()
    assert _fresh() == reference
    f = _only_file(cache)
    elsewhere = tmp_path / "elsewhere.json"
    shutil.move(f, elsewhere)
    f.symlink_to(elsewhere)
    assert _fresh() == reference
    assert f.is_symlink() or f.is_file()
    # a cache folder that is a link to someone else's folder is not used at all
    shutil.rmtree(cache)
    other = tmp_path / "other"
    other.mkdir()
    cache.symlink_to(other)
    assert _fresh() == reference
    assert list(other.iterdir()) == []


def test_unreadable_cache_costs_speed_not_correctness(cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("a file where the folder should be")
    assert _fresh() == _reference()
    assert matrix_cache.read("0" * 64) is None


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    for f in matrix.matrix_dir().glob("*.toml"):
        shutil.copy(f, d)
    return d


@pytest.mark.parametrize(("name", "content", "message"), [
    ("torch", b"", "torch.toml: release: no [[release]] rows"),
    ("torch", b"\xff\xfe\x00", "torch.toml: not UTF-8"),
    ("gpus", b"gpu = 3", "gpus.toml: gpu: expected an array of tables"),
    ("cuda", b"[[cuda_minor]]\ncuda = 12\n", "cuda.toml: cuda_minor[0]"),
])
def test_bad_matrix_files_are_located_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    d = _copy(tmp_path)
    (d / f"{name}.toml").write_bytes(content)
    with pytest.raises(InvalidMatrix) as info:
        matrix.load_dir(d)
    assert message in str(info.value)


def test_fifo_matrix_file_does_not_hang(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "gpus.toml").unlink()
    os.mkfifo(d / "gpus.toml")
    with pytest.raises(InvalidMatrix, match="not a regular file"):
        matrix.load_dir(d)


def test_a_cache_hit_is_not_checked_for_unknown_keys_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver import matrix_rows

    calls = []
    real = matrix_rows.check_keys
    monkeypatch.setattr(matrix_rows, "check_keys", lambda data: calls.append(1) or real(data))
    reference = _reference()
    calls.clear()
    assert _fresh() == reference and len(calls) == 1  # a miss: the TOML is checked, then cached
    assert _fresh() == reference and len(calls) == 1  # a hit: checked when it was written


def test_a_matrix_edited_after_caching_is_checked_again(cache: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    d = _copy(tmp_path)
    monkeypatch.setattr(matrix, "matrix_dir", lambda: d)
    assert _fresh() == repr(matrix.load_dir(d))  # cached
    gpus = d / "gpus.toml"
    text = gpus.read_text(encoding="utf-8")
    gpus.write_text(text.replace("[[gpu]]\n", "[[gpu]]\ncolour = \"green\"\n", 1), encoding="utf-8")
    with pytest.raises(InvalidMatrix, match=r"gpus.toml: gpu\[0\].*colour: unknown key"):
        _fresh()


def test_a_cache_checked_under_other_key_rules_is_a_miss(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver import matrix_rows

    reference = _reference()
    assert _fresh() == reference  # cached under today's KEYS
    # a gpustack whose rules no longer list a key the matrix uses must refuse it, not trust the old cache
    narrower = dict(matrix_rows.KEYS)
    narrower[("gpus", "gpu")] = narrower[("gpus", "gpu")] - {"source"}
    monkeypatch.setattr(matrix_rows, "KEYS", narrower)
    with pytest.raises(InvalidMatrix, match="source: unknown key"):
        _fresh()


def test_only_the_newest_matrix_versions_stay_cached(cache: Path) -> None:
    # One file per matrix version: writing one keeps the KEPT newest; an older version is a miss (read from TOML).
    digests = [f"{i:064x}" for i in range(matrix_cache.KEPT + 3)]
    for i, d in enumerate(digests):
        matrix_cache.write(d, {"n": i})
        path = matrix_cache.cache_dir() / f"{d}.json"
        os.utime(path, ns=(i * 10**9, i * 10**9))  # written in this order, a second apart
    left = sorted(p.name for p in matrix_cache.cache_dir().glob("*.json"))
    assert left == sorted(f"{d}.json" for d in digests[-matrix_cache.KEPT:])
    assert matrix_cache.read(digests[-1]) == {"n": len(digests) - 1}
    assert matrix_cache.read(digests[0]) is None
