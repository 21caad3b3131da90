"""The build cache: keys, store/lookup, list and clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver import cache


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPUSTACK_CACHE_DIR", str(tmp_path / "c"))
    return tmp_path / "c"


def key(**over: object) -> cache.BuildKey:
    fields: dict[str, object] = dict(package="flash-attn", source="flash-attn==2.8.3", torch="2.8.0+cu128",
                                     torch_cuda="12.8", python_tag="cp311", cxx11_abi=True, arch_list="8.0;9.0",
                                     platform="linux_x86_64")
    fields.update(over)
    env = {"TORCH_CUDA_ARCH_LIST": "8.0;9.0", "MAX_JOBS": "4", "NVCC_THREADS": "2", "FORCE_CUDA": "1"}
    return cache.BuildKey.from_env(env, **fields)  # type: ignore[arg-type]


def test_cache_dir_follows_the_env(cache_dir: Path) -> None:
    assert cache.cache_dir() == cache_dir


def test_key_keeps_binary_env_only() -> None:
    assert dict(key().env) == {"FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "8.0;9.0"}


@pytest.mark.parametrize("field,value", [("torch", "2.8.0+cu126"), ("torch_cuda", "12.6"), ("python_tag", "cp312"),
                                         ("cxx11_abi", False), ("arch_list", "9.0"), ("platform", "linux_aarch64"),
                                         ("source", "flash-attn==2.8.2")])
def test_every_binary_fact_changes_the_key(field: str, value: object) -> None:
    assert key(**{field: value}).digest() != key().digest()


def test_jobs_do_not_change_the_key() -> None:
    a = cache.BuildKey.from_env({"MAX_JOBS": "1"}, **{k: v for k, v in key().to_dict().items() if k != "env"})
    b = cache.BuildKey.from_env({"MAX_JOBS": "8"}, **{k: v for k, v in key().to_dict().items() if k != "env"})
    assert a.digest() == b.digest()


def test_store_lookup_list_clear(tmp_path: Path) -> None:
    wheel = tmp_path / "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"wheel")
    assert cache.lookup(key()) is None
    stored = cache.store(key(), wheel)
    assert stored.read_bytes() == b"wheel" and cache.lookup(key()) == stored
    assert cache.lookup(key(arch_list="9.0")) is None
    [entry] = cache.entries()
    assert entry.key["torch"] == "2.8.0+cu128" and entry.size == 5
    other = tmp_path / "xformers-0.0.30-cp311-cp311-linux_x86_64.whl"
    other.write_bytes(b"x")
    cache.store(key(package="xformers", source="xformers==0.0.30"), other)
    assert [e.key["package"] for e in cache.clear("xformers")] == ["xformers"]
    assert len(cache.entries()) == 1
    assert len(cache.clear()) == 1 and cache.entries() == []


def test_cli_clear_matches_the_package_by_its_normalized_name(tmp_path: Path) -> None:
    """Keys store the canonical name (flash-attn); ``--package flash_attn`` or ``XFormers`` removed nothing (rc 0)."""
    from click.testing import CliRunner

    from resolver.cli import main

    for name, source in (("flash-attn", "flash-attn==2.8.3"), ("xformers", "xformers==0.0.30")):
        wheel = tmp_path / f"{name.replace('-', '_')}-1-cp311-cp311-linux_x86_64.whl"
        wheel.write_bytes(b"w")
        cache.store(key(package=name, source=source), wheel)
    bad = CliRunner().invoke(main, ["cache", "clear", "--package", "flash attn"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and "'flash attn'" in bad.output
    assert len(cache.entries()) == 2  # bad input removes nothing
    res = CliRunner().invoke(main, ["cache", "clear", "--package", "flash_attn"])
    assert res.exit_code == 0 and "removed 1 cached wheel(s)" in res.output
    assert [e.key["package"] for e in cache.entries()] == ["xformers"]
    res = CliRunner().invoke(main, ["cache", "clear", "--package", "XFormers"])
    assert res.exit_code == 0 and "removed 1 cached wheel(s)" in res.output and cache.entries() == []


def test_store_twice_keeps_one(tmp_path: Path) -> None:
    wheel = tmp_path / "a-1-py3-none-any.whl"
    wheel.write_bytes(b"1")
    first = cache.store(key(), wheel)
    assert cache.store(key(), wheel) == first and len(cache.entries()) == 1


@pytest.mark.parametrize("name,value", [("XFORMERS_DISABLE_FLASH_ATTN", "1"), ("FLASH_ATTENTION_DISABLE_SM80", "TRUE"),
                                        ("CUDA_HOME", "/usr/local/cuda-12.4"), ("CC", "gcc-12"), ("CXX", "g++-12"),
                                        ("NVCC_APPEND_FLAGS", "-lineinfo"), ("TORCH_CUDA_ARCH_LIST", "9.0"),
                                        ("XFORMERS_BUILD_TYPE", "Debug")])
def test_every_binary_changing_variable_changes_the_key(name: str, value: str) -> None:
    base = dict(package="xformers", source="xformers==0.0.28", torch="2.4.0+cu121", torch_cuda="12.1",
                python_tag="cp311", cxx11_abi=False, arch_list="9.0", platform="linux_x86_64")
    plain = cache.BuildKey.from_env({"MAX_JOBS": "4"}, **base)  # type: ignore[arg-type]
    switched = cache.BuildKey.from_env({"MAX_JOBS": "4", name: value}, **base)  # type: ignore[arg-type]
    assert plain.digest() != switched.digest()
    assert cache.BuildKey.from_env({"MAX_JOBS": "64", "NVCC_THREADS": "8"}, **base).digest() == plain.digest()  # type: ignore[arg-type]


def test_build_key_sees_the_shell_environment() -> None:
    from resolver import build
    from resolver.models import Step

    step = Step("build", "xformers", "xformers==0.0.28", env={"TORCH_CUDA_ARCH_LIST": "9.0"})
    target = build.TargetInfo("cp311", "linux_x86_64", "/env", "2.4.0+cu121", "12.1")
    on = build.cache_key(step, target, False, environ={"XFORMERS_DISABLE_FLASH_ATTN": "1", "CUDA_HOME": "/c"})
    off = build.cache_key(step, target, False, environ={"CUDA_HOME": "/c"})
    assert on.digest() != off.digest() and dict(on.env)["XFORMERS_DISABLE_FLASH_ATTN"] == "1"


def test_cli_clear_also_forgets_what_lock_remembered(cache_dir: Path, tmp_path: Path) -> None:
    """lock_speculate's hints (and lock_resolve's remembered names) stayed after `cache clear`; now clear removes
    them, clear --package leaves them, and `cache list` says so."""
    from click.testing import CliRunner

    from resolver import lock_resolve, lock_speculate
    from resolver.cli import main

    lock_speculate.remember(lock_speculate.hint_key(["lock", "torch==2.1.0"]), {
        "constraints": [], "index_url": "https://pypi.org/simple", "python_version": "3.11",
        "python_platform": "x86_64-manylinux_2_28", "project": {}})
    lock_resolve.remember_names("k", ["numpy"])
    wheel = tmp_path / "xformers-0.0.30-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"x")
    cache.store(key(package="xformers", source="xformers==0.0.30"), wheel)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["lock-hints", "lock-names", "wheels"]
    listed = CliRunner().invoke(main, ["cache", "list"])
    assert listed.exit_code == 0 and "`gpustack cache clear` removes these wheels, the build logs and constraints " \
        "files installs left and what lock remembered of earlier runs (lock-hints, lock-names" in listed.output, \
        listed.output
    one = CliRunner().invoke(main, ["cache", "clear", "--package", "xformers"])
    assert one.exit_code == 0 and sorted(p.name for p in cache_dir.iterdir()) == ["lock-hints", "lock-names", "wheels"]
    done = CliRunner().invoke(main, ["cache", "clear"])
    assert done.exit_code == 0 and "and what lock remembered of earlier runs" in done.output, done.output
    assert sorted(p.name for p in cache_dir.iterdir()) == ["wheels"] and cache.entries() == []


def test_clear_removes_a_planted_link_not_what_it_points_to(cache_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.json").write_text("{}")
    cache_dir.mkdir()
    (cache_dir / "lock-hints").symlink_to(elsewhere)
    cache.clear()
    assert not (cache_dir / "lock-hints").exists() and (elsewhere / "keep.json").is_file()


def test_one_cache_root_for_the_build_cache_and_the_matrix_cache(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """cache.cache_dir and matrix_cache.cache_dir each read $GPUSTACK_CACHE_DIR else the user cache: one reading
    now (inputs.cache_dir), in the module matrix_cache's start-up path already imports."""
    from resolver import inputs, matrix_cache

    assert cache.cache_dir is inputs.cache_dir
    monkeypatch.delenv("GPUSTACK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "gpustack" == matrix_cache.cache_dir().parent
