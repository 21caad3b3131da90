"""The wheel tags a *described* target accepts (its Python, platform and glibc, never this machine's) are one answer,
``resolver.hashes.accepted_tags``, and plan's pass-through pins and download both follow it.

numpy's page is PyPI's own PEP 691 JSON, recorded (tests/data/pypi/numpy.json) and served on loopback: numpy 2.3.0
and 2.4.6 publish x86_64 Linux wheels for glibc 2.27/2.28 only (and an sdist), 2.2.6 for manylinux2014 (glibc 2.17).
The download test runs the real pip against a file:// index laid out like PyPI.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from fakewheels import make_wheel, serve_pages, write_index  # noqa: E402
from resolver.cli import main  # noqa: E402

DATA = Path(__file__).parent / "data" / "pypi"
A100 = ["--gpu", "A100", "--driver", "550.54.15", "--python", "3.11", "--platform", "linux_x86_64"]


@pytest.fixture(scope="module")
def pypi() -> Iterator[str]:
    """A loopback simple index serving the recorded numpy page as PyPI does (PEP 691 JSON)."""
    body = (DATA / "numpy.json").read_bytes()

    with serve_pages({"/simple/numpy/": ("application/vnd.pypi.simple.v1+json", body)}) as url:
        yield url


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def plan_json(*args: str) -> tuple[int, dict[str, object]]:
    code, out = invoke("plan", "--json", *args)
    return code, json.loads(out)


def test_a_pass_through_pin_takes_the_newest_release_with_a_wheel_for_the_targets_glibc(pypi: str) -> None:
    code, data = plan_json(*A100, "--glibc", "2.17", "--index-url", pypi, "torch==2.6.0", "numpy")
    assert code == 0, data
    assert data["other_requirements"] == ["numpy==2.2.6"]  # 2.4.6's sdist does not count: numpy builds no 2.17 wheel
    assert any("pinned to 2.2.6" in n and "glibc 2.17" in n for n in data["notes"]), data["notes"]  # type: ignore[attr-defined]
    code, data = plan_json(*A100, "--glibc", "2.28", "--index-url", pypi, "torch==2.6.0", "numpy")
    assert code == 0 and data["other_requirements"] == ["numpy==2.4.6"]


def test_no_release_for_the_targets_glibc_is_refused_with_the_glibc_that_solves(pypi: str) -> None:
    code, data = plan_json(*A100, "--glibc", "2.17", "--index-url", pypi, "torch==2.6.0", "numpy>=2.3")
    assert code == 1 and data["ok"] is False
    [why] = data["refusals"]  # type: ignore[misc]
    assert why["kind"] == "glibc" and why["facts"]["glibc"] == "2.17" and why["facts"]["glibc_needed"] == "2.27"
    [alt] = data["alternatives"]  # type: ignore[misc]
    assert alt["change"] == {"target": {"glibc": "2.27"}, "request": {}}
    # the alternative was solved: planning with the glibc it names gives a plan
    code, data = plan_json(*A100, "--glibc", alt["change"]["target"]["glibc"], "--index-url", pypi, "torch==2.6.0",
                           "numpy>=2.3")
    assert code == 0 and data["other_requirements"] == ["numpy==2.4.6"]
    code, out = invoke("plan", *A100, "--glibc", "2.17", "--index-url", pypi, "torch==2.6.0", "numpy>=2.3")
    assert code == 1 and "need glibc 2.27 or newer" in out and "pass its --glibc" in out


def test_when_torch_is_refused_too_only_alternatives_that_also_pin_are_offered(pypi: str) -> None:
    args = [*A100, "--index-url", pypi, "torch==2.8.0", "numpy>=2.3"]  # torch 2.8.0: manylinux_2_28 wheels only
    code, data = plan_json(*args, "--glibc", "2.17")
    assert code == 1
    assert {(r["package"], r["kind"]) for r in data["refusals"]} == {("numpy", "glibc"), ("torch", "glibc")}  # type: ignore[attr-defined]
    # glibc 2.27 serves numpy but not torch, torch==2.6.0 serves torch but not numpy: neither is offered
    assert [a["change"] for a in data["alternatives"]] == [{"target": {"glibc": "2.28"}, "request": {}}]  # type: ignore[attr-defined]
    code, data = plan_json(*args, "--glibc", "2.28")
    assert code == 0 and data["other_requirements"] == ["numpy==2.4.6"]


def test_a_described_target_without_glibc_pins_for_the_assumed_one(pypi: str) -> None:
    code, data = plan_json(*A100, "--index-url", pypi, "torch==2.6.0", "numpy>=2.3,<2.4")
    assert code == 0 and data["other_requirements"] == ["numpy==2.3.0"]  # assumed 2.28: manylinux_2_28 installs


def platforms(line: str) -> list[str]:
    words = line.split()
    return [words[i + 1] for i, w in enumerate(words) if w == "--platform"]


def test_download_passes_the_platform_tags_of_the_targets_glibc(pypi: str, tmp_path: Path) -> None:
    dest = tmp_path / "d"
    code, out = invoke("download", *A100, "--glibc", "2.17", "--index-url", pypi, "torch==2.6.0", "numpy",
                       "--dest", str(dest), "--dry-run")
    assert code == 0, out
    lines = [ln for ln in out.splitlines() if "--platform" in ln]
    assert len(lines) == 2 and any("numpy==2.2.6" in ln for ln in lines), out
    for ln in lines:
        tags = platforms(ln)
        assert tags[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"] and tags[-1] == "linux_x86_64"
        assert not [t for t in tags if t.startswith("manylinux_2_") and int(t.split("_")[2]) > 17], tags
    assert not dest.exists()  # a dry run writes nothing
    # no --glibc: the plan's assumed 2.28, the same glibc the plan said it assumed
    code, out = invoke("download", *A100, "torch==2.6.0", "--dest", str(dest), "--dry-run")
    assert code == 0 and platforms(out)[0] == "manylinux_2_28_x86_64" and "manylinux_2_29_x86_64" not in out


def test_pip_downloads_the_wheel_the_targets_glibc_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pip, run by the real download command, fetches the manylinux2014 wheel for glibc 2.17 where the
    same release also has a manylinux_2_28 one (which pip prefers when the target allows it)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    built = make_wheel(tmp_path / "w", "glibcdemo", "1.0")
    files = []
    for tag in ("manylinux_2_28_x86_64", "manylinux2014_x86_64"):
        files.append(tmp_path / "w" / f"glibcdemo-1.0-cp311-cp311-{tag}.whl")
        shutil.copy(built, files[-1])
    index = write_index(tmp_path / "idx", files).as_uri()
    got = {}
    for glibc in ("2.17", "2.28"):
        code, out = invoke("plan", "--json", *A100, "--glibc", glibc, "--index-url", index, "torch==2.6.0", "glibcdemo")
        assert code == 0, out
        plan = json.loads(out)
        plan["steps"] = [s for s in plan["steps"] if s["package"] == "glibcdemo"]  # torch's files: not on this index
        (tmp_path / f"plan-{glibc}.json").write_text(json.dumps(plan))
        dest = tmp_path / f"d-{glibc}"
        code, out = invoke("download", "--plan", str(tmp_path / f"plan-{glibc}.json"), "--dest", str(dest))
        assert code == 0, out
        got[glibc] = sorted(p.name for p in dest.iterdir())
    assert got == {"2.17": ["glibcdemo-1.0-cp311-cp311-manylinux2014_x86_64.whl"],
                   "2.28": ["glibcdemo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"]}


@pytest.mark.network
def test_pypi_numpy_for_glibc_2_17_is_a_release_with_a_manylinux2014_wheel() -> None:
    from packaging.utils import parse_wheel_filename

    from resolver.index_lookup import lookup

    got = lookup(["numpy"], "https://pypi.org/simple", timeout=15)["numpy"]
    if got.error and "could not check" in got.error:
        pytest.skip("PyPI does not answer: " + got.error)
    code, data = plan_json(*A100, "--glibc", "2.17", "torch==2.6.0", "numpy")
    assert code == 0, data
    [pin] = data["other_requirements"]  # type: ignore[misc]
    version = pin.split("==")[1]
    linux = {t.platform for f in got.files if f.filename.endswith(".whl") and str(f.version) == version
             for t in parse_wheel_filename(f.filename)[3] if t.interpreter == "cp311"}
    assert "manylinux2014_x86_64" in linux or "manylinux_2_17_x86_64" in linux, (version, linux)


FLEET = str(Path(__file__).parent / "fixtures" / "fleet" / "kubectl-nodes.json")


def test_a_fleet_is_planned_for_the_glibc_given(pypi: str) -> None:
    """The nodes do not report their glibc: --glibc says it, and torch and the pass-through pins both follow it (the
    fleet used to drop it, and to leave pass-through requirements unchecked)."""
    code, data = plan_json("--fleet", FLEET, "--python", "3.11", "--glibc", "2.17", "torch==2.8.0")
    assert code == 1 and {r["kind"] for r in data["refusals"]} >= {"glibc"}, data  # type: ignore[attr-defined]
    code, data = plan_json("--fleet", FLEET, "--python", "3.11", "--glibc", "2.17", "--index-url", pypi,
                           "torch==2.6.0", "numpy")
    assert code == 0 and data["target"]["glibc"] == "2.17", data  # type: ignore[index]
    assert data["other_requirements"] == ["numpy==2.2.6"]
    code, data = plan_json("--fleet", FLEET, "--python", "3.11", "--index-url", pypi, "torch==2.6.0", "numpy")
    assert code == 0 and data["other_requirements"] == ["numpy==2.4.6"]
