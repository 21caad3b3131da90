"""Pass-through requirements are checked against their index and pinned, or the plan refuses with the reason.

The index is a loopback HTTP server laid out like PyPI's simple API (PEP 691 JSON for one project, PEP 503 HTML for
another), a file:// folder, or (marked ``network``) PyPI itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.tags import Tag
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from fakewheels import serve_pages  # noqa: E402
from resolver.cli import main  # noqa: E402
from resolver.index_lookup import lookup, lookup_or_folders  # noqa: E402
from resolver.models import ComputeCapability, Gpu, Target  # noqa: E402
from resolver.passthrough import IndexFile, IndexProject, pin_others  # noqa: E402

H100 = Target(gpus=(Gpu("H100", ComputeCapability(9, 0)),), python="3.12", platform="linux_x86_64")


def wheel(name: str, version: str, tag: str = "py3-none-any", **kw: object) -> IndexFile:
    interp, abi, plat = tag.split("-")
    return IndexFile(f"{name}-{version}-{tag}.whl", Version(version), tags=frozenset({Tag(interp, abi, plat)}),
                     **kw)  # type: ignore[arg-type]


def project(name: str, *files: IndexFile, error: str | None = None) -> IndexProject:
    return IndexProject(name, "http://index/simple", tuple(files), error)


def test_pins_the_newest_release_that_installs_on_the_target() -> None:
    numpy = project("numpy", wheel("numpy", "1.26.4", "cp312-cp312-manylinux_2_17_x86_64"),
                    wheel("numpy", "2.0.0", "cp312-cp312-manylinux_2_17_x86_64"),
                    wheel("numpy", "1.27.0", "cp312-cp312-win_amd64"),  # no Linux file: not a candidate here
                    wheel("numpy", "1.26.9", "cp312-cp312-manylinux_2_17_x86_64", yanked=True))
    pinned, notes, why = pin_others(("numpy[dev]<2; python_version>'3'",), {"numpy": numpy}, H100)
    assert why == [] and pinned == ('numpy[dev]==1.26.4; python_version > "3"',)
    assert "pinned to 1.26.4" in notes[0]


@pytest.mark.parametrize("proj,reason", [
    (project("flash-attn-3", wheel("flash_attn_3", "0.0.0", yanked=True)), "only yanked files (0.0.0): a placeholder"),
    (project("nope", error="nope does not exist on http://index/simple"), "nope does not exist"),
    (project("empty"), "has no files at all"),
    (project("old", wheel("old", "1.0")), "matches >=2 (newest: 1.0)"),
    (project("py", wheel("py", "3.0", requires_python=">=3.13")), "installs on Python 3.12 linux_x86_64"),
])
def test_refuses_with_the_reason(proj: IndexProject, reason: str) -> None:
    req = f"{proj.name}>=2" if proj.name == "old" else proj.name
    pinned, _, why = pin_others((req,), {proj.name: proj}, H100)
    assert len(why) == 1 and reason in why[0].text, why


def test_a_wheel_needing_a_newer_glibc_does_not_count() -> None:
    import dataclasses

    old = dataclasses.replace(H100, glibc=Version("2.17"))
    lib = project("lib", wheel("lib", "2.0", "cp312-cp312-manylinux_2_28_x86_64"),
                  wheel("lib", "1.0", "cp312-cp312-manylinux2014_x86_64"))
    assert pin_others(("lib",), {"lib": lib}, old)[0] == ("lib==1.0",)
    assert pin_others(("lib",), {"lib": lib}, H100)[0] == ("lib==2.0",)


def test_an_sdist_counts_unless_its_release_builds_wheels_only_for_a_newer_glibc() -> None:
    import dataclasses

    old = dataclasses.replace(H100, glibc=Version("2.17"))
    sdist = IndexFile("lib-3.0.tar.gz", Version("3.0"))
    binary = project("lib", wheel("lib", "3.0", "cp312-cp312-manylinux_2_28_x86_64"), sdist,
                     wheel("lib", "1.0", "cp312-cp312-manylinux2014_x86_64"))
    assert pin_others(("lib",), {"lib": binary}, old)[0] == ("lib==1.0",)
    source_only = project("lib", sdist, wheel("lib", "1.0", "cp312-cp312-manylinux2014_x86_64"))
    assert pin_others(("lib",), {"lib": source_only}, old)[0] == ("lib==3.0",)
    windows_only = project("lib", wheel("lib", "3.0", "cp312-cp312-win_amd64"), sdist)
    assert pin_others(("lib",), {"lib": windows_only}, old)[0] == ("lib==3.0",)


def test_torch_family_is_left_to_torchs_index() -> None:
    pinned, notes, why = pin_others(("torchvision",), {}, H100)
    assert pinned == ("torchvision",) and why == [] and notes == []


# ---------------------------------------------------------------- a loopback index laid out like PyPI


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    pages = {
        "/simple/numpy/": ("application/vnd.pypi.simple.v1+json", json.dumps({"meta": {"api-version": "1.1"}, "name": "numpy", "files": [
            {"filename": "numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "url": "x",
             "hashes": {}, "requires-python": ">=3.9"},
            {"filename": "numpy-2.3.0-cp312-cp312-manylinux_2_28_x86_64.whl", "url": "x", "hashes": {},
             "requires-python": ">=3.11"},
            {"filename": "numpy-2.3.1.tar.gz", "url": "x", "hashes": {}, "yanked": "broken build"}]})),
        "/simple/flash-attn-3/": ("text/html", '<html><body><a href="../../f/flash_attn_3-0.0.0-py3-none-any.whl#sha256=0"'
                                              ' data-yanked="">flash_attn_3-0.0.0-py3-none-any.whl</a></body></html>'),
    }

    with serve_pages({path: (kind, body.encode()) for path, (kind, body) in pages.items()}) as url:
        yield url


def test_lookup_reads_json_and_html_pages(index: str) -> None:
    got = lookup(["NumPy", "flash_attn_3", "no-such-thing"], index)
    assert sorted(str(f.version) for f in got["numpy"].files) == ["1.26.4", "2.3.0", "2.3.1"]
    assert [f.yanked for f in got["numpy"].files if f.filename.endswith(".tar.gz")] == [True]
    assert [(str(f.version), f.yanked) for f in got["flash-attn-3"].files] == [("0.0.0", True)]
    assert got["no-such-thing"].error and "does not exist" in got["no-such-thing"].error


def test_lookup_reads_a_file_url_folder(tmp_path: Path) -> None:
    (tmp_path / "einops-0.8.2-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "other-1.0.tar.gz").write_bytes(b"")
    got = lookup(["einops", "absent"], tmp_path.as_uri())
    assert [str(f.version) for f in got["einops"].files] == ["0.8.2"] and got["absent"].error


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_plan_pins_a_pass_through_package_from_the_index(index: str) -> None:
    code, out = run("plan", "--gpu", "H100", "--driver", "580.65.06", "--python", "3.12", "--index-url", index,
                    "numpy", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["other_requirements"] == ["numpy==2.3.0"]
    step = next(s for s in data["steps"] if s["package"] == "numpy")
    assert step["requirement"] == "numpy==2.3.0" and step["index_url"] == index


def test_plan_refuses_a_package_that_does_not_exist_or_is_a_placeholder(index: str) -> None:
    code, out = run("plan", "--gpu", "H100", "--python", "3.12", "--index-url", index, "no-such-thing")
    assert code == 1 and "no-such-thing does not exist on" in out
    code, out = run("plan", "--gpu", "H100", "--python", "3.12", "--index-url", index, "flash_attn_3")
    assert code == 0 and "flash_attn_3" in out  # the kernel name: solved from the matrix, never from the index


def test_pass_through_refusals_are_values_in_plan_json(index: str) -> None:
    code, out = run("plan", "--json", "--gpu", "H100", "--python", "3.12", "--index-url", index, "no-such-thing",
                    "numpy>=3")
    assert code == 1
    by_name = {r["package"]: r for r in json.loads(out)["refusals"]}
    assert by_name["no-such-thing"]["kind"] == "index" and by_name["no-such-thing"]["facts"]["index"] == index
    assert by_name["numpy"]["kind"] == "no_release"
    assert (by_name["numpy"]["facts"]["spec"], by_name["numpy"]["facts"]["newest"]) == (">=3", "2.3.0")


def test_an_index_that_does_not_answer_is_not_a_misspelled_name() -> None:
    # "check the spelling" was offered for a name the index never answered about (a dead index, an air-gapped box)
    code, out = run("plan", "--gpu", "H100", "--python", "3.12", "--index-url", "http://127.0.0.1:9/simple", "numpy")
    assert code == 1 and "could not check numpy on http://127.0.0.1:9/simple" in out, out
    assert "check the spelling" not in out and "pass --index-url of a reachable index" in out, out


def test_the_find_links_folders_answer_where_the_index_does_not(tmp_path: Path) -> None:
    (tmp_path / "einops-0.8.2-py3-none-any.whl").write_bytes(b"")
    dead = "http://127.0.0.1:9/simple"
    got = lookup_or_folders(["einops", "absent"], dead, (str(tmp_path),))
    assert [str(f.version) for f in got["einops"].files] == ["0.8.2"]
    assert got["einops"].index_url == f"--find-links {tmp_path}"
    assert got["absent"].unreachable and got["absent"].error is not None
    assert got["absent"].error.startswith(f"could not check absent on {dead} (ConnectionError), and absent is not in "
                                          f"--find-links {tmp_path}")
    # --offline: the index is not asked at all, even when it would answer
    offline = lookup_or_folders(["einops"], "http://unused.invalid/simple", (str(tmp_path),), offline=True)
    assert [str(f.version) for f in offline["einops"].files] == ["0.8.2"]


def test_bad_index_url_is_one_line() -> None:
    code, out = run("plan", "--gpu", "H100", "--index-url", "ftp://x/simple", "numpy")
    assert code == 2 and len(out.strip().splitlines()) == 1 and "--index-url" in out


@pytest.mark.network
def test_pypi_flash_attn_3_is_a_yanked_placeholder() -> None:
    got = lookup(["flash-attn-3"], "https://pypi.org/simple", timeout=15)["flash-attn-3"]
    if got.error and "could not check" in got.error:
        pytest.skip("PyPI does not answer: " + got.error)
    _, _, why = pin_others(("flash-attn-3",), {"flash-attn-3": got}, H100)
    assert why and "only yanked files (0.0.0)" in why[0].text
