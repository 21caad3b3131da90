"""Refusal rows that share one cause over several torch builds print as one line naming the builds, in every command
that prints refusals (``resolver.refusal.folded``, applied where ``NoCompatibleStack`` orders them), and no
distinct cause is lost: each cause of the unfolded rows (``explain_failure``, the rows before folding) is in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.version import Version

from _isolation import isolate_installers
from resolver.cli import main
from resolver.explain import explain_failure
from resolver.matrix import load
from resolver.models import ComputeCapability, Gpu, Target, parse_driver
from resolver.refusal import Refusal, folded, joined, refusal
from resolver.request import parse_request

ROOT = Path(__file__).resolve().parents[1]
M = load()
H100_570 = ["--gpu", "H100", "--driver", "570", "--python", "3.11", "--glibc", "2.35"]
UNVERIFIED = [*H100_570, "--verified-only", "flash-attn==2.8.3.post2"]
A100_R470 = ["--gpu", "A100", "--driver", "470.82.01", "--python", "3.11", "--glibc", "2.35", "--nvcc", "11.4",
             "flash-attn==2.8.3.post2"]
CAUSE = ("flash-attn 2.8.3.post2 relies on an unverified fact (--verified-only): no matching git tag in the fetched "
         "snapshot")


def _target(gpu: str, cc: ComputeCapability, driver: str, nvcc: str | None = None) -> Target:
    return Target(gpus=(Gpu(gpu, cc),), python="3.11", platform="linux_x86_64", driver=parse_driver(driver),
                  glibc=Version("2.35"), nvcc=Version(nvcc) if nvcc else None, source="given")


def _leaves(r: Refusal) -> list[str]:
    if r.causes and r.template == "{causes}":
        return [t for c in r.causes for t in _leaves(c)]
    return [r.text]


def _unfolded(target: Target, lines: list[str], verified_only: bool = False) -> list[Refusal]:
    request = parse_request(lines, M, verified_only=verified_only)
    return explain_failure(target, M, request)[0]


def _refused(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["plan", "--json", *args])
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_verified_only_rows_of_one_cause_fold_into_one_line_and_keep_every_build() -> None:
    raw = _unfolded(_target("H100", ComputeCapability(9, 0), "570"), ["flash-attn==2.8.3.post2"], verified_only=True)
    assert len(raw) == 6 and len({r.facts["with_torch"] for r in raw}) == 6, [r.text for r in raw]
    data = _refused(*UNVERIFIED)
    [row] = data["refusals"]  # type: ignore[misc]
    assert row["kind"] == "unverified"
    assert row["text"].startswith("flash-attn 2.8.3.post2 with torch 2.14.1, 2.14.0, 2.13.0, 2.12.1, 2.12.0 (each "
                                  f"+cu126), 2.11.0+cu128: {CAUSE}"), row["text"]
    assert row["text"].count("relies on an unverified fact") == 1
    assert row["facts"]["builds"].split(", ") == [r.facts["with_torch"] for r in raw]
    assert {t for r in raw for t in _leaves(r.causes[0])} == {c["text"] for c in row["causes"]}
    assert data["reasons"] == [row["text"]]


def test_nvcc_rows_fold_and_keep_each_distinct_cause_once_the_blocking_one_last() -> None:
    """#5: a flash-attn source build that nvcc 11.4 cannot run printed one line per torch build, the same 'needs
    nvcc >= 11.7' each time; now one line with the builds and each build's own missing-wheel fact."""
    raw = _unfolded(_target("A100", ComputeCapability(8, 0), "470.82.01", "11.4"), ["flash-attn==2.8.3.post2"])
    assert len(raw) == 6, [r.text for r in raw]
    data = _refused(*A100_R470)
    [row] = data["refusals"]  # type: ignore[misc]
    assert row["kind"] == "toolkit" and row["facts"]["min_cuda"] == "11.7", row
    text = row["text"]
    assert text.startswith("flash-attn 2.8.3.post2 with torch 2.7.1, 2.7.0, 2.6.0, 2.5.1, 2.5.0, 2.4.1 (each +cu118): "
                           "no prebuilt wheel for torch 2.7 + CUDA 11 + cxx11abi True + Python 3.11; "), text
    blocker = "a source build needs nvcc >= 11.7 (its setup.py refuses older); the target's nvcc is 11.4"
    assert text.endswith(blocker) and text.count(blocker) == 1, text
    distinct = {t for r in raw for t in _leaves(r.causes[0])}
    assert len(distinct) == 5 and all(t in text for t in distinct), (distinct, text)
    assert [c["text"] for c in row["causes"]][-1] == blocker


@pytest.mark.parametrize("command", [["plan"], ["lock"], ["dockerfile"], ["install", "--dry-run"]])
def test_every_command_prints_the_folded_line(command: list[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_installers(monkeypatch)
    monkeypatch.chdir(tmp_path)
    args = [a for a in UNVERIFIED if command[0] != "install" or a not in ("--python", "3.11")]
    result = CliRunner().invoke(main, [*command, *args])
    assert result.exit_code == 1, result.output
    rows = [line for line in result.output.splitlines() if line.lstrip(" -").startswith("flash-attn 2.8.3.post2 with")]
    assert len(rows) == 1 and "(each +cu126), 2.11.0+cu128: " + CAUSE in rows[0], result.output
    assert "flash-attn==2.8.3.post1 works with the rest of the request here" in result.output
    assert list(tmp_path.iterdir()) == []  # a refusal changes nothing on disk


def test_a_fleet_class_prints_the_folded_line() -> None:
    fleet = ROOT / "tests" / "fixtures" / "fleet" / "scontrol-nodes.json"
    result = CliRunner().invoke(main, ["plan", "--per-class", "--fleet", str(fleet), "--verified-only",
                                       "flash-attn==2.8.3.post2"])
    assert result.exit_code == 1, result.output
    rows = [line for line in result.output.splitlines() if "relies on an unverified fact" in line]
    assert len(rows) == 2, result.output  # the a100 and h100 classes, one line each
    assert all(r.startswith("  - flash-attn 2.8.3.post2 with torch 2.15.0, 2.14.1, 2.14.0 (each +cu132), ") for r in rows)


def test_rows_with_another_blocking_fact_or_release_stay_apart_and_folding_is_idempotent() -> None:
    def row(version: str, torch: str, why: Refusal) -> Refusal:
        return Refusal("xformers", version, why.kind, {**why.facts, "name": "xformers", "versions": version,
                                                       "with_torch": torch},
                       "{name} {versions} with torch {with_torch}: {causes}", causes=(why,))

    wheel = refusal("xformers", "0.0.22", "variant", "no wheel for torch {torch}", torch="x")
    old = refusal("xformers", "0.0.22", "toolkit", "nvcc {nvcc} is too old", nvcc="11.4")
    other = refusal("xformers", "0.0.22", "toolkit", "nvcc {nvcc} is too new", nvcc="12.0")
    rows = [row("0.0.22", "2.1.0+cu118", joined(wheel, old)), row("0.0.22", "2.1.0+cu121", joined(wheel, other)),
            row("0.0.22", "2.0.1+cu118", joined(wheel, old)), row("0.0.21", "2.0.1+cu118", joined(wheel, old))]
    got = folded(rows)
    assert [r.text for r in got] == [
        "xformers 0.0.22 with torch 2.1.0, 2.0.1 (each +cu118): no wheel for torch x; nvcc 11.4 is too old",
        "xformers 0.0.22 with torch 2.1.0+cu121: no wheel for torch x; nvcc 12.0 is too new",
        "xformers 0.0.21 with torch 2.0.1+cu118: no wheel for torch x; nvcc 11.4 is too old"]
    assert folded(got) == got
    plain = refusal("torch", "", "gpu_code", "no code")
    assert folded([plain, plain]) == [plain, plain]  # not a per-build row: left to ordered's each-text-once
