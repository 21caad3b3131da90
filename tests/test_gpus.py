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
