"""One stack for a fleet read from a cluster (resolver/fleet_plan.py): every answer is the solver's, for the whole
fleet or for the classes named. Fixtures: tests/fixtures/fleet (README.md cites the formats)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from resolver import fleet
from resolver.errors import BadInput, NoCompatibleStack
from resolver.fleet_plan import class_target, fleet_target, solve_classes, solve_fleet
from resolver.matrix import load
from resolver.models import Target
from resolver.request import parse_request
from resolver.solve import solve

K8S = Path(__file__).parent / "fixtures" / "fleet" / "kubectl-nodes.json"
SLURM = Path(__file__).parent / "fixtures" / "fleet" / "scontrol-nodes.json"


@pytest.fixture(scope="module")
def matrix() -> Any:
    return load()


def _base(python: str = "3.12", driver: str | None = None) -> Target:
    return Target(gpus=(), python=python, platform="linux_x86_64", driver=Version(driver) if driver else None)


def _k8s(matrix: Any, edit: Any = None) -> fleet.Fleet:
    doc = json.loads(K8S.read_text())
    for item in doc["items"]:
        labels = item["metadata"]["labels"]
        if edit and "nvidia.com/gpu.product" in labels:
            edit(labels, item)
    return fleet.parse(json.dumps(doc), "nodes.json", matrix)


def _driver_580(labels: dict[str, str], item: Any) -> None:
    labels.update({"nvidia.com/cuda.driver.major": "580", "nvidia.com/cuda.driver.minor": "95",
                   "nvidia.com/cuda.driver.rev": "05"})


def test_fleet_target_is_the_union_of_gpus_and_the_lowest_driver(matrix: Any) -> None:
    f = _k8s(matrix)
    t = fleet_target(f.classes, _base())
    assert [str(c) for c in t.capabilities] == ["7.0", "7.5", "8.0", "9.0"]
    assert t.driver == Version("535.216.1")
    h100 = f.classes[-1]
    assert class_target(h100, _base()).driver == Version("550.127.5")


def test_one_stack_names_the_class_that_keeps_torch_back(matrix: Any) -> None:
    f = _k8s(matrix, _driver_580)
    request = parse_request([], matrix)
    stack = solve_fleet(f, _base(), matrix, request)
    # The same answer as the solver gives for the fleet's target, typed by hand:
    assert stack.torch.version == solve(fleet_target(f.classes, _base()), matrix, request).torch.version
    without_v100 = solve(fleet_target(f.classes[1:], _base()), matrix, request).torch.version
    assert without_v100 != stack.torch.version
    assert f"Tesla V100-SXM2-16GB nodes keep torch at {stack.torch.version} (without them: {without_v100})" \
        in stack.notes
    assert "driver floor 580.95.05: the lowest in the fleet (every class)" in stack.notes


def test_a_class_that_forces_a_source_build_is_named(matrix: Any) -> None:
    f = _k8s(matrix)
    stack = solve_fleet(f, _base("3.11"), matrix, parse_request(["xformers"], matrix))
    xformers = stack.get("xformers")
    assert xformers is not None and xformers.method == "source"
    assert xformers.build_env["TORCH_CUDA_ARCH_LIST"].split(";")[:1] == ["7.0"]  # the union arch list is built
    assert any(n.startswith("Tesla V100-SXM2-16GB nodes") and "make xformers" in n and "a source build" in n
               for n in stack.notes), stack.notes
    assert "driver floor 535.216.01: the lowest in the fleet (Tesla V100-SXM2-16GB, Tesla T4 and " \
           "NVIDIA A100-SXM4-40GB nodes)" in stack.notes


def test_refusal_names_conflicting_classes_and_what_serves_each(matrix: Any) -> None:
    def pascal_and_blackwell(labels: dict[str, str], item: Any) -> None:
        _driver_580(labels, item)
        if labels["nvidia.com/gpu.product"] == "Tesla-T4":
            labels.update({"nvidia.com/gpu.product": "NVIDIA-GeForce-GTX-1080", "nvidia.com/gpu.compute.major": "6",
                           "nvidia.com/gpu.compute.minor": "1"})
        if labels["nvidia.com/gpu.product"].startswith("NVIDIA-H100"):
            labels.update({"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-5090", "nvidia.com/gpu.compute.major": "12",
                           "nvidia.com/gpu.compute.minor": "0"})

    f = _k8s(matrix, pascal_and_blackwell)
    request = parse_request([], matrix)
    with pytest.raises(NoCompatibleStack) as err:
        solve_fleet(f, _base(), matrix, request)
    reasons, alternatives = err.value.reasons, [a.text for a in err.value.alternatives]
    assert "classes that cannot share one stack: GeForce GTX 1080 with NVIDIA GeForce RTX 5090" in reasons
    for c in f.classes:  # every suggestion is the solver's answer for that class alone
        own = solve(class_target(c, _base()), matrix, request)
        assert f"{c.label} nodes alone: torch {own.torch.version}" in alternatives
    assert alternatives[-1] == "pass --per-class for one plan (lock, image) per class"


def test_refusal_when_a_class_has_no_stack_of_its_own(matrix: Any) -> None:
    f = _k8s(matrix)
    with pytest.raises(NoCompatibleStack) as err:
        solve_fleet(f, _base(), matrix, parse_request(["flash-attn"], matrix))
    assert any("even on their own" in r and "Tesla V100-SXM2-16GB" in r for r in err.value.reasons)
    assert any(a.text.startswith("NVIDIA H100 80GB HBM3 nodes alone: torch ") for a in err.value.alternatives)


def test_classes_on_two_platforms_cannot_share_one_stack(matrix: Any) -> None:
    def arm_h100(labels: dict[str, str], item: Any) -> None:
        if labels["nvidia.com/gpu.product"].startswith("NVIDIA-H100"):
            item["status"]["nodeInfo"]["architecture"] = "arm64"

    f = _k8s(matrix, arm_h100)
    with pytest.raises(NoCompatibleStack,
                       match="different platforms \\(linux_x86_64: .*; linux_aarch64: NVIDIA H100 80GB HBM3\\)"):
        solve_fleet(f, _base(), matrix, parse_request([], matrix))
    per_class = solve_classes(f, _base(), matrix, parse_request([], matrix))
    assert [c.platform for c, _ in per_class] == ["linux_x86_64"] * 3 + ["linux_aarch64"]
    assert all(not isinstance(s, NoCompatibleStack) for _, s in per_class)


def test_slurm_fleet_takes_the_driver_from_the_command_line(matrix: Any) -> None:
    f = fleet.read_fleet(str(SLURM), matrix)
    request = parse_request([], matrix)
    stack = solve_fleet(f, _base(driver="535.104.05"), matrix, request)
    assert stack.target.driver == Version("535.104.05")
    unknown = solve_fleet(f, _base(), matrix, request)
    assert any("no driver given or detected" in n for n in unknown.notes)
    with pytest.raises(BadInput, match="--driver with --fleet: the fleet's labels give every node's driver"):
        solve_fleet(_k8s(matrix), _base(driver="535.104.05"), matrix, request)


def test_per_class_answers_are_the_solver_answers(matrix: Any) -> None:
    f = _k8s(matrix)
    request = parse_request(["flash-attn"], matrix)
    got = solve_classes(f, _base(), matrix, request)
    assert [type(s).__name__ for _, s in got] == ["NoCompatibleStack", "NoCompatibleStack", "Stack", "Stack"]
    for c, s in got:
        if not isinstance(s, NoCompatibleStack):
            assert s == solve(class_target(c, _base()), matrix, request)
