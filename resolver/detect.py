"""What this machine is: its NVIDIA GPUs, driver, CUDA toolkit, CPU, memory and target interpreter.

The only module that reads the machine. Each probe is a ``_read_*()`` that does the I/O (and returns ``None`` when
the thing is simply absent) plus a pure ``parse_*(text)`` tested on captured output (``tests/data/probes/``).
``detect()`` tries, in order:

1. NVML (``pynvml``): every GPU, the driver and the newest CUDA it runs;
2. ``nvidia-smi --query-gpu=...``: GPUs and driver; plain ``nvidia-smi`` for ``CUDA Version:``;
3. ``/sys/module/nvidia/version``, then ``/proc/driver/nvidia/version``: the driver alone.

No GPU is not an error (``Host.gpus`` is empty); only real I/O failures raise ``DetectionError``. The target
interpreter is read in a child process (``resolver/_child/probe_env.py``): gpustack itself never imports torch.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from packaging.version import Version

from resolver._subprocess import try_run
from resolver.errors import BadInput, DetectionError
from resolver.logs import Logger
from resolver.models import ComputeCapability, format_driver, parse_driver
from resolver.probes import (DetectedGpu, _driver_or_none, Host, InstalledEnv, env_from_json, last_json_object,
                             parse_meminfo_available_gib,
                             parse_nvcc_version, parse_nvidia_smi_csv, parse_nvidia_smi_csv_driver,
                             parse_nvidia_smi_cuda_version, parse_nvml_cuda_version, parse_proc_driver_version,
                             parse_sys_module_version)
from resolver import probes
from resolver.report import Reporter
from resolver.target import PROBE_SCRIPT, probe_output

# The values and parsers live in resolver.probes; detect re-exports them beside the reads.
__all__ = ["detect", "detect_env", "nvcc", "resources", "format_driver", *probes.__all__]

log = Logger("gpustack.detect")

NVIDIA_SMI_QUERY = ("nvidia-smi", "--query-gpu=name,compute_cap,driver_version,memory.total", "--format=csv,noheader")
SYS_MODULE_VERSION = "/sys/module/nvidia/version"
PROC_DRIVER_VERSION = "/proc/driver/nvidia/version"


# --- probes: I/O only -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NvmlReading:
    gpus: tuple[DetectedGpu, ...]
    driver: Version | None
    driver_cuda: Version | None


_T = TypeVar("_T")


def _read_nvml() -> _NvmlReading | None:
    """Return GPUs, driver and CUDA as NVML reports them, or None when NVML is not there or fails."""
    try:
        import pynvml  # the library itself is loaded only by nvmlInit()
    except ImportError:
        log.debug("NVML: pynvml is not installed")
        return None
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as exc:
        log.debug("NVML unavailable: %s", exc)
        return None

    def ask(fn: Callable[..., _T], *args: object) -> _T | None:
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:  # e.g. memory info is "Not Supported" on some boards
            log.debug("NVML %s: %s", fn.__name__, exc)
            return None

    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = ask(pynvml.nvmlDeviceGetName, handle)
            cc = ask(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            mem = ask(pynvml.nvmlDeviceGetMemoryInfo, handle)
            gpus.append(DetectedGpu(
                index=i,
                name=name.decode() if isinstance(name, bytes) else str(name or f"GPU {i}"),
                compute_capability=ComputeCapability(int(cc[0]), int(cc[1])) if cc else None,
                memory_mib=int(mem.total) // 2**20 if mem is not None else None,
            ))
        driver = ask(pynvml.nvmlSystemGetDriverVersion)
        cuda = ask(pynvml.nvmlSystemGetCudaDriverVersion_v2)
    except pynvml.NVMLError as exc:
        log.debug("NVML failed while listing GPUs: %s", exc)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    driver_text = driver.decode() if isinstance(driver, bytes) else driver
    return _NvmlReading(
        gpus=tuple(gpus),
        driver=_driver_or_none(str(driver_text)) if driver_text else None,
        driver_cuda=parse_nvml_cuda_version(int(cuda)) if cuda is not None else None,
    )


def _read_nvidia_smi_csv() -> str | None:
    """Return the ``nvidia-smi --query-gpu=...`` output, or None when nvidia-smi is missing or fails."""
    done = try_run(NVIDIA_SMI_QUERY)
    return done.stdout if done else None


def _read_nvidia_smi() -> str | None:
    """Return plain ``nvidia-smi`` output (its header says ``CUDA Version:``), or None."""
    done = try_run(["nvidia-smi"])
    return done.stdout if done else None


def _read_text(path: str) -> str | None:
    """Return the file's text, None when it does not exist; ``DetectionError`` when it exists but can't be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DetectionError(f"cannot read {path}: {exc}; pass --driver VERSION to skip driver detection") from exc


def _read_sys_module_version() -> str | None:
    return _read_text(SYS_MODULE_VERSION)


def _read_proc_driver_version() -> str | None:
    return _read_text(PROC_DRIVER_VERSION)


def _read_meminfo() -> str | None:
    try:
        return Path("/proc/meminfo").read_text()
    except OSError:  # not Linux: free memory stays unknown, which is not worth failing for
        return None


def _read_nvcc_version() -> tuple[str, str] | None:
    """Return (``nvcc --version`` output, which nvcc) for the nvcc a source build would use, or None.

    Same order as ``torch.utils.cpp_extension``: ``$CUDA_HOME``/``$CUDA_PATH``, then ``PATH``, then
    ``/usr/local/cuda``.
    """
    candidates = [os.path.join(os.environ[v], "bin", "nvcc") for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    candidates += [p for p in (shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc") if p]
    for nvcc in candidates:
        done = try_run([nvcc, "--version"])
        if done is not None:
            return done.stdout, nvcc
    return None


def nvcc() -> tuple[Version | None, str | None]:
    """Return (CUDA release, path) of the nvcc a source build would use, or (None, None): see ``_read_nvcc_version``."""
    read = _read_nvcc_version()
    if read is None:
        return None, None
    return parse_nvcc_version(read[0]), read[1]


def resources() -> tuple[int, float | None]:
    """Return (usable cores, free RAM in GiB or None): what sizes ``MAX_JOBS`` of a build on this machine."""
    text = _read_meminfo()
    return _cpu_count(), parse_meminfo_available_gib(text) if text else None


def _cpu_count() -> int:
    """Return the cores this process may run on (its affinity mask, as ``MAX_JOBS`` should count them)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _read_env_json(python_exe: str) -> str:
    """Return the stdout of ``python_exe probe_env.py --mode full`` (``resolver.target``, the one reader of a
    target interpreter). Raises ``BadInput`` when ``python_exe`` is no Python."""
    return probe_output(python_exe, "full")


# --- assembly ---------------------------------------------------------------------------------------------------


def detect_env(python_exe: str | None = None) -> InstalledEnv:
    """Return what ``python_exe`` (default: this interpreter) has installed, read in a child process."""
    exe = python_exe or sys.executable
    text = _read_env_json(exe)
    try:
        data = last_json_object(text)
        env = env_from_json(data)
    except (ValueError, KeyError) as exc:
        if python_exe is not None:
            raise BadInput(f"--python-exe {python_exe}: not a python interpreter (its answer to the probe: "
                           f"{text[-200:]!r}); pass the path of a python interpreter") from None
        raise DetectionError(f"{exe} {PROBE_SCRIPT}: unreadable output ({exc}): {text[-200:]!r}") from None
    for note in env.notes:
        log.debug("probe_env: %s", note)
    from resolver.journal import notice

    prefix = data.get("prefix")  # the probe's sys.prefix: where to look needs no second child
    # an interrupted install leaves this environment half changed: say so before anything else
    notice(exe, prefix=prefix if isinstance(prefix, str) else None)
    return env


class _Facts:
    """Collects facts with their sources, logging and reporting each as it is settled."""

    def __init__(self, reporter: Reporter | None) -> None:
        self.sources: dict[str, str] = {}
        self.reporter = reporter

    def settle(self, what: str, value: object | None, source: str) -> None:
        self.sources[what] = source
        text = format_driver(value) if what == "driver" and isinstance(value, Version) else str(value)
        log.debug("%s: %s (from %s)", what, text, source)
        if self.reporter is not None:
            self.reporter.detected(what, text, source)


def _detect_driver(facts: _Facts, nvml: _NvmlReading | None, smi_csv: str | None) -> Version | None:
    """Return the driver: NVML, then ``nvidia-smi``, then /sys, then /proc."""
    if nvml is not None and nvml.driver is not None:
        facts.settle("driver", nvml.driver, "nvml")
        return nvml.driver
    smi_driver = parse_nvidia_smi_csv_driver(smi_csv) if smi_csv else None
    if smi_driver is not None:
        facts.settle("driver", smi_driver, "nvidia-smi")
        return smi_driver
    for path, read, parse in (
        (SYS_MODULE_VERSION, _read_sys_module_version, parse_sys_module_version),
        (PROC_DRIVER_VERSION, _read_proc_driver_version, parse_proc_driver_version),
    ):
        text = read()
        version = parse(text) if text is not None else None
        if version is not None:
            facts.settle("driver", version, path)
            return version
    facts.settle("driver", None, f"not found (tried nvml, nvidia-smi, {SYS_MODULE_VERSION}, {PROC_DRIVER_VERSION})")
    return None


def detect(python_exe: str | None = None, *, driver_override: str | None = None,
           reporter: Reporter | None = None) -> Host:
    """Return the ``Host`` read from this machine and the target interpreter (default: this one).

    ``driver_override`` (``--driver``) replaces the detected driver; the detected ``driver_cuda`` then belongs to
    another driver and is dropped (``None``): the solver derives it from its driver table instead.
    """
    facts = _Facts(reporter)
    override = parse_driver(driver_override) if driver_override is not None else None
    nvml = _read_nvml()
    smi_csv = None if nvml is not None else _read_nvidia_smi_csv()

    gpus: tuple[DetectedGpu, ...] = ()
    if nvml is not None:
        gpus = nvml.gpus
        facts.settle("gpus", len(gpus), "nvml")
    elif smi_csv is not None:
        gpus = tuple(parse_nvidia_smi_csv(smi_csv))
        facts.settle("gpus", len(gpus), "nvidia-smi")
    else:
        facts.settle("gpus", 0, "not found (no NVML, no nvidia-smi)")

    driver: Version | None = override
    driver_cuda: Version | None = None
    if override is not None:
        facts.settle("driver", driver, "--driver")
        facts.settle("driver_cuda", None, "not used: --driver given")
    else:
        driver = _detect_driver(facts, nvml, smi_csv)
        if nvml is not None and nvml.driver_cuda is not None:
            driver_cuda = nvml.driver_cuda
            facts.settle("driver_cuda", driver_cuda, "nvml")
        else:
            smi = _read_nvidia_smi() if driver is not None else None
            driver_cuda = parse_nvidia_smi_cuda_version(smi) if smi else None
            facts.settle("driver_cuda", driver_cuda, "nvidia-smi" if driver_cuda else "not found")

    nvcc_read = _read_nvcc_version()
    nvcc = parse_nvcc_version(nvcc_read[0]) if nvcc_read else None
    facts.settle("nvcc", nvcc, nvcc_read[1] if nvcc_read and nvcc else "not found")

    meminfo = _read_meminfo()
    memory = parse_meminfo_available_gib(meminfo) if meminfo else None
    facts.settle("memory_available_gib", memory, "/proc/meminfo" if memory is not None else "not found")
    cpus = _cpu_count()
    facts.settle("cpu_count", cpus, "sched_getaffinity" if hasattr(os, "sched_getaffinity") else "os.cpu_count")

    env = detect_env(python_exe)
    facts.settle("env", f"Python {env.python} {env.platform}", f"{env.python_exe} {PROBE_SCRIPT.name}")
    return Host(gpus=gpus, driver=driver, driver_cuda=driver_cuda, nvcc=nvcc, cpu_count=cpus,
                memory_available_gib=memory, env=env, sources=facts.sources)
