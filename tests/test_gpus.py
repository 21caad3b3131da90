from __future__ import annotations

import pytest

from resolver import matrix
from resolver.errors import BadInput
from resolver.gpus import find_gpu_row, lookup_gpu
from resolver.models import ComputeCapability


@pytest.mark.parametrize(
    ("name", "cc"),
    [
        ("Tesla K80", "3.7"),
        ("NVIDIA H100 80GB HBM3", "9.0"),  # as nvidia-smi prints it on the H100 host
        ("NVIDIA GeForce RTX 4090", "8.9"),
        ("rtx 5090", "12.0"),
        ("Tesla V100-SXM2-16GB", "7.0"),
        ("V100", "7.0"),  # a short name that every V100 row shares
        ("8.6", "8.6"),
        ("sm_120", "12.0"),
    ],
)
def test_lookup(name: str, cc: str) -> None:
    assert lookup_gpu(name, matrix.load()).compute_capability == ComputeCapability.parse(cc)


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(BadInput) as info:
        lookup_gpu("RTX 4090x", matrix.load())
    msg = str(info.value)
    assert msg.startswith("--gpu 'RTX 4090x': unknown GPU name; did you mean 'GeForce RTX 4090'")
    assert "--gpu 8.6" in msg and "\n" not in msg


def test_every_nvidia_smi_name_resolves_to_its_row() -> None:
    m = matrix.load()
    for row in m.gpus:
        for smi in row.nvidia_smi_names:
            found = find_gpu_row(smi, m)
            assert found is not None and found.compute_capability == row.compute_capability, smi


def test_a_grace_superchip_plans_for_its_arm_machine_and_refuses_another() -> None:
    # `plan --gpu GH200` planned x86_64 wheels (this machine's platform): a GH200's host is a Grace CPU, aarch64.
    import json
    import sys

    from click.testing import CliRunner

    from resolver.cli import main

    for gpu in ("GH200", "GB200", "GB10"):
        out = CliRunner().invoke(main, ["plan", "--gpu", gpu, "--driver", "580.95.05", "--json"])
        assert out.exit_code == 0, out.output
        plan = json.loads(out.stdout)
        assert plan["target"]["platform"] == "linux_aarch64", plan["target"]
        said = f"platform linux_aarch64: {plan['target']['gpus'][0]['name']} comes only in linux_aarch64 machines"
        assert any(n.startswith(said) for n in plan["detection"]), plan
    for given in (["--platform", "linux_x86_64"], ["--python-exe", sys.executable]):
        out = CliRunner().invoke(main, ["plan", "--gpu", "GH200", "--driver", "580.95.05", *given])
        assert out.exit_code == 2, out.output
        assert out.output.strip().splitlines() == [
            "gpustack: --gpu NVIDIA GH200: only in linux_aarch64 machines, and the target's platform is linux_x86_64; "
            "pass --platform linux_aarch64 (or leave --platform out), or plan for that machine's GPU"]
    kept = CliRunner().invoke(main, ["plan", "--gpu", "H100", "--driver", "580.95.05", "--platform", "linux_aarch64",
                                     "--json"])  # a PCIe GPU goes in either: the platform given stays
    assert kept.exit_code == 0 and json.loads(kept.stdout)["target"]["platform"] == "linux_aarch64", kept.output
