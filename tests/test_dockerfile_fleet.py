"""``dockerfile --fleet`` output checked by the programs that consume it: hadolint (the Dockerfile), /bin/sh (the
entrypoint check) and kubectl (the node-affinity YAML, parsed offline with ``--local``); the affinity terms are then
matched against the fixture's node labels with the Kubernetes operator semantics (In, Gt)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _hadolint import hadolint

from resolver import fleet
from resolver.dockerfile_fleet import affinity_yaml, gpustack_wheel, render_fleet
from resolver.fleet_plan import solve_fleet
from resolver.matrix import load
from resolver.models import Target
from resolver.plan import make_plan
from resolver.request import parse_request

K8S = Path(__file__).parent / "fixtures" / "fleet" / "kubectl-nodes.json"


@pytest.fixture(scope="module")
def matrix() -> Any:
    return load()


@pytest.fixture(scope="module")
def the_fleet(matrix: Any) -> fleet.Fleet:
    return fleet.read_fleet(str(K8S), matrix)




def _dockerfile(the_fleet: fleet.Fleet, matrix: Any, requirements: list[str]) -> str:
    base = Target(gpus=(), python="3.11", platform="linux_x86_64")
    stack = solve_fleet(the_fleet, base, matrix, parse_request(requirements, matrix))
    return render_fleet(make_plan(stack), matrix, the_fleet)


def test_fleet_image_builds_the_union_arch_list_and_passes_hadolint(the_fleet: fleet.Fleet, matrix: Any,
                                                                     tmp_path: Path) -> None:
    text = _dockerfile(the_fleet, matrix, ["xformers"])
    hadolint(text, tmp_path)
    assert "FROM nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04 AS build" in text
    assert "TORCH_CUDA_ARCH_LIST='7.0;7.5;8.0;9.0'" in text  # every class's capability, in the source build
    assert "#   Tesla V100-SXM2-16GB x24 on 3 nodes (compute capability 7.0, driver 535.216.01" in text
    assert "# note: Tesla V100-SXM2-16GB nodes make xformers 0.0.35 a source build (without them: a wheel)" in text
    assert f"RUN --mount=type=bind,source={gpustack_wheel()},target=/tmp/{gpustack_wheel()}" in text
    entry = next(line for line in text.splitlines() if line.startswith("ENTRYPOINT "))
    argv = json.loads(entry.removeprefix("ENTRYPOINT "))
    assert argv[:2] == ["/bin/sh", "-c"]
    assert "/opt/gpustack/bin/gpustack verify --python-exe /opt/venv/bin/python --expect sdpa,xformers" in argv[2]
    assert text.rstrip().endswith('CMD ["python"]') and text.count("CMD ") == 1


def test_wheel_only_fleet_image_passes_hadolint(the_fleet: fleet.Fleet, matrix: Any, tmp_path: Path) -> None:
    text = _dockerfile(the_fleet, matrix, [])
    hadolint(text, tmp_path)
    assert " AS build" not in text
    assert "--expect sdpa ||" in text


def test_flash_attn_fleet_image_of_the_ampere_and_hopper_classes(the_fleet: fleet.Fleet, matrix: Any,
                                                                  tmp_path: Path) -> None:
    modern = dataclasses.replace(the_fleet, classes=tuple(c for c in the_fleet.classes
                                                          if c.gpu.compute_capability.major >= 8))
    text = _dockerfile(modern, matrix, ["flash-attn"])
    hadolint(text, tmp_path)
    assert "--expect sdpa,flash-attn ||" in text
    assert "Tesla V100" not in text


def test_entrypoint_check_runs_verify_before_the_command(the_fleet: fleet.Fleet, matrix: Any) -> None:
    text = _dockerfile(the_fleet, matrix, [])
    entry = json.loads(next(line for line in text.splitlines() if line.startswith("ENTRYPOINT "))[11:])
    sh = shutil.which("sh")
    assert sh is not None
    skipped = subprocess.run([sh, *entry[1:], "echo", "ran", "the command"], capture_output=True, text=True,
                             env={"GPUSTACK_VERIFY": "0", "PATH": "/usr/bin:/bin"})
    assert (skipped.returncode, skipped.stdout) == (0, "ran the command\n")
    # With the check on and no gpustack in /opt/gpustack (as on this machine), the command never runs.
    checked = subprocess.run([sh, *entry[1:], "echo", "ran"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"})
    assert checked.returncode == 1 and checked.stdout == ""


def _matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    for e in term["matchExpressions"]:
        value = labels.get(e["key"])
        if value is None:
            return False
        if e["operator"] == "In" and value not in e["values"]:
            return False
        if e["operator"] == "Gt" and not int(value) > int(e["values"][0]):
            return False
    return True


def test_affinity_yaml_parses_with_kubectl_and_selects_each_class(the_fleet: fleet.Fleet, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH")
    text = affinity_yaml(the_fleet, [("the fleet image", the_fleet.classes)])
    indented = "".join("  " + line + "\n" for line in text.splitlines())
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\nspec:\n  containers:\n  - name: c\n"
                   "    image: fleet\n" + indented)
    done = subprocess.run([kubectl, "label", "--local", "-f", str(pod), "checked=yes", "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    terms = json.loads(done.stdout)["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == len(the_fleet.classes)
    items = json.loads(K8S.read_text())["items"]
    labels = {i["metadata"]["name"]: {**i["metadata"]["labels"]} for i in items}
    for term, c in zip(terms, the_fleet.classes):
        selected = {name for name, ls in labels.items() if _matches(term, ls)}
        assert selected == {n.name for n in c.nodes}
    # A CPU node or a node on an older driver of the same branch is selected by no term.
    older = dict(labels["gpu-v100-1"], **{"nvidia.com/cuda.driver.minor": "54"})
    assert not any(_matches(t, older) for t in terms)
    assert not any(_matches(t, labels["ip-10-0-4-52.ec2.internal"]) for t in terms)


def test_per_class_affinity_is_one_document_per_image(the_fleet: fleet.Fleet) -> None:
    text = affinity_yaml(the_fleet, [(f"image {c.slug}", [c]) for c in the_fleet.classes])
    docs = text.split("---\n")
    assert len(docs) == 4
    assert "node affinity for image v100-sxm2-16gb-d535" in docs[0]
    assert 'values: ["NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"]' in docs[2]


def test_a_fleet_image_is_planned_for_its_images_glibc(tmp_path: Path) -> None:
    # The fleet's nodes run CentOS 7 (glibc 2.17), so their plan builds flash-attn from source; but what runs in the
    # image is the image's glibc (Ubuntu 22.04: 2.35), where the GitHub wheel runs: as `dockerfile` without --fleet,
    # it plans for the image's.
    from click.testing import CliRunner

    from resolver.cli import main

    nodes = json.loads(K8S.read_text())
    nodes["items"] = [n for n in nodes["items"]
                      if any(g in n["metadata"]["labels"].get("nvidia.com/gpu.product", "") for g in ("A100", "H100"))]
    for n in nodes["items"]:
        n["status"]["nodeInfo"]["osImage"] = "CentOS Linux 7 (Core)"
    ampere_up = tmp_path / "nodes.json"
    ampere_up.write_text(json.dumps(nodes))
    out = CliRunner().invoke(main, ["dockerfile", "--fleet", str(ampere_up), "torch==2.6.0", "flash-attn"])
    assert out.exit_code == 0, out.output
    assert "# glibc 2.35: the image's (nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04); pass --glibc X.Y to plan for " \
           "another" in out.stdout.splitlines()
    assert " AS build" not in out.stdout and "'flash-attn @ https://github.com/Dao-AILab/" in out.stdout
    (tmp_path / "per").mkdir()
    each = CliRunner().invoke(main, ["dockerfile", "--fleet", str(ampere_up), "--per-class", "-o",
                                     str(tmp_path / "per" / "Dockerfile"), "torch==2.6.0", "flash-attn"])
    assert each.exit_code == 0, each.output
    files = sorted((tmp_path / "per").iterdir())
    assert len(files) == 2 and all("# glibc 2.35: the image's" in f.read_text() and " AS build" not in f.read_text()
                                   for f in files), [f.name for f in files]
