"""The shipped matrices: schema, internal consistency, sources, and the errors a broken file gets."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

from resolver import matrix
from resolver.errors import InvalidMatrix
from resolver.models import ComputeCapability

SHIPPED = Path(matrix.matrix_dir())


def test_shipped_matrix_is_consistent() -> None:
    assert matrix.validate(matrix.load()) == []


def test_every_row_has_a_source() -> None:
    for path in SHIPPED.glob("*.toml"):
        data = tomllib.loads(path.read_text())
        for key, rows in data.items():
            if not isinstance(rows, list):
                continue
            for i, row in enumerate(rows):
                if isinstance(row, dict):
                    assert str(row.get("source", "")).strip(), f"{path.name}: {key}[{i}] has no source"
                    for sub in row.get("variant", []):
                        assert sub.get("source"), f"{path.name}: {key}[{i}] variant has no source"


def test_coverage_the_issue_asks_for() -> None:
    m = matrix.load()
    torch = {str(t.version) for t in m.torch}
    assert {"1.12.0", "1.12.1", "2.0.0", "2.1.0", "2.15.0"} <= torch
    xformers = {str(x.version) for x in m.xformers}
    assert {"0.0.16", "0.0.22.post7", "0.0.35"} <= xformers
    flash = {str(f.version) for f in m.flash_attn}
    assert {"2.0.0.post1", "2.8.3", "2.8.3.post2"} <= flash
    assert len(m.gpus) >= 100
    assert {p.name for p in m.profiles} == {"audiocraft", "fairseq", "diffusers"}


def test_known_facts() -> None:
    m = matrix.load()
    # torch 2.15 dropped cu126, the last variant with Maxwell/Pascal/Volta code.
    t215 = m.torch_release("2.15.0")
    assert t215 is not None and all(ComputeCapability(6, 1) not in v.arch.sass for v in t215.variants)
    # The PyPI cu130 wheels carry no PTX (read from the wheel, NOTES.md contradiction 1).
    t211 = m.torch_release("2.11.0")
    assert t211 is not None and not t211.pypi_arch["linux_x86_64"].ptx
    # xformers 0.0.22.post7 pins torch 2.1.0 and was built with CUDA 12.1 for PyPI.
    x = next(x for x in m.xformers if str(x.version) == "0.0.22.post7")
    assert x.torch.contains("2.1.0") and not x.torch.contains("2.1.1")
    assert x.pypi_cuda == Version("12.1")
    # Minor-version compatibility floors.
    assert m.compat(12) is not None and m.compat(12).min_driver_linux == Version("525.60.13")
    assert m.compat(13) is not None and m.compat(13).min_driver_linux == Version("580")
    # nvcc 11.8 is the last that targets Kepler.
    c118, c120 = m.cuda_minor(Version("11.8")), m.cuda_minor(Version("12.0"))
    assert c118 is not None and ComputeCapability(3, 7) in c118.nvcc_sms
    assert c120 is not None and ComputeCapability(3, 7) not in c120.nvcc_sms


def _copy(tmp_path: Path) -> Path:
    out = tmp_path / "m"
    shutil.copytree(SHIPPED, out, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return out


def test_wrong_type_names_file_row_and_field(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "gpus.toml").read_text().replace('compute_capability = "3.7"', "compute_capability = 3.7", 1)
    (d / "gpus.toml").write_text(text)
    with pytest.raises(InvalidMatrix) as info:
        matrix.load_dir(d)
    assert str(info.value) == "gpus.toml: gpu[0] (Tesla K80): compute_capability: expected a string, got float 3.7"


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "profiles.toml").read_text()
    start = text.index('source = "facebookresearch/audiocraft')
    end = text.index("\n", start)
    (d / "profiles.toml").write_text(text[:start] + text[end + 1 :])
    with pytest.raises(InvalidMatrix, match=r"profiles.toml: profile\[0\] \(audiocraft\): source: missing"):
        matrix.load_dir(d)


def test_bad_toml_is_an_error(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "cuda.toml").write_text("[[cuda_minor]\n")
    with pytest.raises(InvalidMatrix, match="cuda.toml: not valid TOML"):
        matrix.load_dir(d)


def test_inconsistent_pin_is_reported(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "xformers.toml").read_text().replace('requires_dist_torch = "torch ==2.1.0"', 'requires_dist_torch = "torch ==2.1.7"', 1)
    (d / "xformers.toml").write_text(text)
    problems = matrix.validate(matrix.load_dir(d))
    assert any("0.0.22.post7: requires_dist_torch: ==2.1.7 names no torch release" in p for p in problems), problems


def test_variant_cuda_missing_from_cuda_table_is_reported(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "cuda.toml").read_text()
    start = text.index('[[cuda_minor]]\ncuda = "11.3"')
    end = text.index("[[cuda_minor]]", start + 5)
    (d / "cuda.toml").write_text(text[:start] + text[end:])
    problems = matrix.validate(matrix.load_dir(d))
    assert any("variant cu113: CUDA 11.3 is not in cuda.toml" in p for p in problems), problems[:3]


def test_arch_beyond_nvcc_is_reported(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "torch.toml").read_text()
    text = text.replace('torch_cuda_arch_list = "3.7;5.0;6.0;7.0"\nsm_list = ["sm_37", "sm_50", "sm_60", "sm_70"]',
                        'torch_cuda_arch_list = "3.7;5.0;6.0;7.0;9.0"\nsm_list = ["sm_37", "sm_50", "sm_60", "sm_70", "sm_90"]', 1)
    (d / "torch.toml").write_text(text)
    problems = matrix.validate(matrix.load_dir(d))
    assert any("sm_90 cannot be built by nvcc 10.2" in p for p in problems), problems[:3]


def test_matrices_found_from_an_uninstalled_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """PYTHONPATH=checkout without `pip install`: resolver.matrices does not exist, matrices/ beside resolver/ does."""
    def no_package(anchor: str) -> None:
        raise ModuleNotFoundError(anchor)

    monkeypatch.setattr(matrix.resources, "files", no_package)
    assert (matrix.matrix_dir() / "torch.toml").is_file()


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("gpus.toml", 'compute_capability = "3.7"', 'compute_capabilty = "3.7"\ncompute_capability = "3.7"',
         "gpus.toml: gpu[0] (Tesla K80): compute_capabilty: unknown key (expected one of architecture, "),
        ("cuda.toml", "[[cuda_minor]]", "[[cuda_minr]]\ncuda = \"1\"\n\n[[cuda_minor]]",
         "cuda.toml: top level: cuda_minr: unknown key (expected one of cuda_minor, meta, minor_version_compat, "
         "toolkit_release)"),
        ("torch.toml", 'tag = "', 'tagg = "x"\ntag = "',
         "torch.toml: release[0] (1.12.0): variant[0] (10.2): tagg: unknown key"),
        ("attention.toml", 'source = "', 'sorce = "x"\nsource = "', "attention.toml: release[0] ("),
    ],
)
def test_unknown_key_names_file_row_and_field(tmp_path: Path, file: str, old: str, new: str, message: str) -> None:
    d = _copy(tmp_path)
    text = (d / file).read_text()
    assert old in text
    (d / file).write_text(text.replace(old, new, 1))
    with pytest.raises(InvalidMatrix) as info:
        matrix.load_dir(d)
    assert str(info.value).startswith(message), str(info.value)
    assert "unknown key (expected one of" in str(info.value)


def test_validate_command_refuses_an_unknown_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from resolver.cli import main

    d = _copy(tmp_path)
    text = (d / "build.toml").read_text()
    (d / "build.toml").write_text(text.replace("gib_per_job = ", "gib_per_jobs = 1\ngib_per_job = ", 1))
    result = CliRunner().invoke(main, ["matrix", "validate", "--matrix-dir", str(d)])
    assert result.exit_code != 0
    assert "build.toml: job[0]" in result.output and "gib_per_jobs: unknown key" in result.output


def test_a_host_platform_fact_names_its_source_and_a_known_platform(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "gpus.toml").read_text()
    start = text.index("host_platforms_source = ")
    (d / "gpus.toml").write_text(text[:start] + text[text.index("\n", start) + 1:])
    with pytest.raises(InvalidMatrix, match=r"gpus.toml: gpu\[\d+\] \(NVIDIA GH200\): host_platforms_source: missing"):
        matrix.load_dir(d)
    (d / "gpus.toml").write_text(text.replace('host_platforms = ["linux_aarch64"]', 'host_platforms = ["arm64"]', 1))
    with pytest.raises(InvalidMatrix, match=r"\(NVIDIA GH200\): host_platforms: unknown platform 'arm64'"):
        matrix.load_dir(d)
