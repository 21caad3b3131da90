"""The pure half of detection: the values ``resolver.detect`` returns and the parsers of what it reads.

Each ``parse_*(text)`` takes the text of one probe (``nvidia-smi``, ``/proc/driver/nvidia/version``, ``nvcc
--version``, ``/proc/meminfo``, the target interpreter's ``probe_env.py``) and is tested on captured real output
(``tests/data/probes/``). Nothing here touches the machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from resolver.errors import BadInput
from resolver.logs import Logger
from resolver.models import ComputeCapability, format_driver, parse_driver

__all__ = [
    "DetectedGpu",
    "last_json_object",
    "env_from_json",
    "InstalledEnv",
    "Host",
    "parse_nvidia_smi_csv",
    "parse_nvidia_smi_csv_driver",
    "parse_proc_driver_version",
    "parse_sys_module_version",
    "parse_nvidia_smi_cuda_version",
    "parse_nvml_cuda_version",
    "parse_nvcc_version",
    "parse_meminfo_available_gib",
]

log = Logger("gpustack.detect")


@dataclass(frozen=True)
class DetectedGpu:
    """One GPU as read here. ``compute_capability`` is ``None`` when the source did not say (old ``nvidia-smi``
    prints ``[N/A]``): the caller then looks the name up in the GPU table."""

    index: int
    name: str
    compute_capability: ComputeCapability | None
    memory_mib: int | None

    def to_dict(self) -> dict[str, Any]:
        cc = self.compute_capability
        return {"index": self.index, "name": self.name, "compute_capability": None if cc is None else str(cc),
                "memory_mib": self.memory_mib}


@dataclass(frozen=True)
class InstalledEnv:
    """What the target interpreter has: its version and platform, and the installed torch stack.

    ``torch_arch_list`` is ``None`` when it could not be read without a GPU. ``packages`` maps every installed
    distribution's normalized name to its version. ``notes`` holds what the probe could not read, and why.
    """

    python_exe: str
    python: str
    platform: str
    glibc: str | None
    torch: str | None
    torch_cuda: str | None
    torch_arch_list: tuple[str, ...] | None
    torch_cxx11_abi: bool | None
    xformers: str | None
    flash_attn: str | None
    packages: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # its PEP 508 marker environment (probe_env.marker_environment: python_full_version with its patch release);
    # empty where the probe did not give one
    markers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "python_exe": self.python_exe, "python": self.python, "platform": self.platform, "glibc": self.glibc,
            "torch": self.torch, "torch_cuda": self.torch_cuda,
            "torch_arch_list": None if self.torch_arch_list is None else list(self.torch_arch_list),
            "torch_cxx11_abi": self.torch_cxx11_abi, "xformers": self.xformers, "flash_attn": self.flash_attn,
            "packages": dict(sorted(self.packages.items())), "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Host:
    """Everything detected here. ``driver_cuda`` is the newest CUDA the driver runs; ``sources`` maps each fact
    (``gpus``, ``driver``, ``driver_cuda``, ``nvcc``, ...) to where it came from, or to what was tried."""

    gpus: tuple[DetectedGpu, ...]
    driver: Version | None
    driver_cuda: Version | None
    nvcc: Version | None
    cpu_count: int
    memory_available_gib: float | None
    env: InstalledEnv
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (versions as strings), the ``gpustack detect --json`` output."""
        return {
            "gpus": [g.to_dict() for g in self.gpus],
            "driver": None if self.driver is None else format_driver(self.driver),
            "driver_cuda": _str_or_none(self.driver_cuda),
            "nvcc": _str_or_none(self.nvcc),
            "cpu_count": self.cpu_count,
            "memory_available_gib": self.memory_available_gib,
            "env": self.env.to_dict(),
            "sources": dict(self.sources),
        }


def _str_or_none(value: object | None) -> str | None:
    return None if value is None else str(value)


# --- pure parsers ----------------------------------------------------------------------------------------------


def _na(field_text: str) -> bool:
    return field_text.strip() in ("", "[N/A]", "N/A", "[Not Supported]")


def _csv_rows(text: str) -> list[list[str]]:
    """Return the 4 fields of each ``name, compute_cap, driver_version, memory.total`` line; others are skipped."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("name,"):
            continue
        fields = [f.strip() for f in line.rsplit(",", 3)]
        if len(fields) != 4 or not fields[0]:
            log.debug("nvidia-smi: skipped unparsable line %r", line)
            continue
        rows.append(fields)
    return rows


def parse_nvidia_smi_csv(text: str) -> list[DetectedGpu]:
    """Return the GPUs of ``nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total
    --format=csv,noheader`` output, indexed in line order. The driver column is read by
    ``parse_nvidia_smi_csv_driver``.

    ``NVIDIA H100 80GB HBM3, 9.0, 580.159.04, 81559 MiB``. A ``[N/A]`` capability or memory becomes ``None``.
    """
    gpus = []
    for index, (name, cc_text, _driver, mem_text) in enumerate(_csv_rows(text)):
        cc: ComputeCapability | None = None
        if not _na(cc_text):
            try:
                cc = ComputeCapability.parse(cc_text)
            except BadInput:
                log.debug("nvidia-smi: unreadable compute_cap %r for %s", cc_text, name)
        m = re.fullmatch(r"(\d+)\s*MiB", mem_text)
        gpus.append(DetectedGpu(index, name, cc, int(m.group(1)) if m else None))
    return gpus


def parse_nvidia_smi_csv_driver(text: str) -> Version | None:
    """Return the driver version from the same ``nvidia-smi --query-gpu`` output (first readable line), or None."""
    for row in _csv_rows(text):
        version = _driver_or_none(row[2])
        if version is not None:
            return version
    return None


def _driver_or_none(text: str) -> Version | None:
    try:
        return parse_driver(text)
    except BadInput:
        return None


def parse_sys_module_version(text: str) -> Version | None:
    """Return the driver version in ``/sys/module/nvidia/version`` (``580.159.04``), or None."""
    return _driver_or_none(text.strip().splitlines()[0] if text.strip() else "")


def parse_proc_driver_version(text: str) -> Version | None:
    """Return the driver version from ``/proc/driver/nvidia/version``, or None.

    Open module: ``NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)``;
    proprietary: ``NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023``.
    """
    for line in text.splitlines():
        if not line.startswith("NVRM version:"):
            continue
        for token in line.split()[2:]:
            if re.fullmatch(r"\d{2,4}\.\d{1,3}(\.\d{1,3})?", token):
                return parse_driver(token)
    return None


def parse_nvidia_smi_cuda_version(text: str) -> Version | None:
    """Return the newest CUDA the driver runs from ``nvidia-smi`` (``CUDA Version: 13.0``) or ``nvidia-smi -q``
    (``CUDA Version : 13.0``) output, or None."""
    m = re.search(r"CUDA Version\s*:\s*(\d+\.\d+)", text)
    return Version(m.group(1)) if m else None


def parse_nvml_cuda_version(value: int) -> Version | None:
    """Return NVML's ``nvmlSystemGetCudaDriverVersion_v2()`` integer (``13000``) as ``Version("13.0")``."""
    if value <= 0:
        return None
    return Version(f"{value // 1000}.{value % 1000 // 10}")


def parse_nvcc_version(text: str) -> Version | None:
    """Return the CUDA toolkit release (major.minor, e.g. ``13.0``) of ``nvcc --version`` output, or None.

    Reads ``Cuda compilation tools, release 13.0, V13.0.88``, else ``Build cuda_13.0.r13.0/compiler...``.
    """
    m = re.search(r"release (\d+\.\d+)", text) or re.search(r"\bcuda_(\d+\.\d+)", text)
    return Version(m.group(1)) if m else None


def parse_meminfo_available_gib(text: str) -> float | None:
    """Return ``MemAvailable`` of ``/proc/meminfo`` in GiB (two decimals), or None when absent (kernel < 3.14)."""
    m = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return round(int(m.group(1)) / 1024**2, 2) if m else None


def last_json_object(text: str) -> dict[str, Any]:
    """Return the last line of ``text`` that is a JSON object (a child prints it last, after any noise of its
    imports); ValueError if there is none."""
    lines = [line for line in text.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise ValueError("no JSON line in the probe's output")
    data = json.loads(lines[-1])
    if not isinstance(data, dict):
        raise ValueError("the probe's JSON line is not an object")
    return data


def env_from_json(data: Mapping[str, Any]) -> InstalledEnv:
    """Return the ``InstalledEnv`` of ``probe_env.py --mode full``'s JSON object (``last_json_object``); KeyError
    when a field it must have is missing."""
    arch = data.get("torch_arch_list")
    abi = data.get("torch_cxx11_abi")
    return InstalledEnv(
        python_exe=str(data["python_exe"]),
        python=str(data["python"]),
        platform=str(data["platform"]),
        glibc=data.get("glibc"),
        torch=data.get("torch"),
        torch_cuda=data.get("torch_cuda"),
        torch_arch_list=None if arch is None else tuple(str(a) for a in arch),
        torch_cxx11_abi=None if abi is None else bool(abi),
        xformers=data.get("xformers"),
        flash_attn=data.get("flash_attn"),
        packages={str(k): str(v) for k, v in data.get("packages", {}).items()},
        notes=tuple(str(n) for n in data.get("notes", [])),
        markers={str(k): str(v) for k, v in (data.get("markers") or {}).items()},
    )
