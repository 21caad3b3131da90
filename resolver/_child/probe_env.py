"""Print, as one JSON line on stdout, what the interpreter running this script has installed.

Run as ``python_exe probe_env.py`` by ``resolver.detect``; never imported by gpustack itself. It must run on any
Python 3.8+ the user points at, with nothing but the standard library, and it must not crash when torch is absent
or broken: every problem becomes an entry of ``"notes"``. Versions come from ``importlib.metadata`` (no package is
imported for its version); torch alone is imported, for what only the built binary knows (its CUDA, its compiled
architectures, its C++ ABI).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import re
import sys
import sysconfig
from typing import Any, Dict, List, Optional

try:
    from importlib import metadata
except ImportError:  # pragma: no cover - Python < 3.8 has no importlib.metadata
    metadata = None  # type: ignore[assignment]


def _normalize(name: str) -> str:
    """Return the PEP 503 normalized form of a distribution name (``Flash_Attn`` -> ``flash-attn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages() -> Dict[str, str]:
    """Return every installed distribution as normalized name -> version (first one on sys.path wins)."""
    found: Dict[str, str] = {}
    if metadata is None:
        return found
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        version = dist.version
        if name and version:
            found.setdefault(_normalize(name), version)
    return found


def glibc_version() -> Optional[str]:
    """Return the glibc version this interpreter runs on (``"2.36"``), or ``None`` (musl, Windows, macOS)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, OSError, ValueError):
        text = None
    if text and text.startswith("glibc "):
        return text.split()[1]
    lib, version = platform.libc_ver()
    return version if lib == "glibc" and version else None


def platform_tag() -> str:
    """Return the wheel platform tag of this interpreter: ``linux_x86_64``, ``linux_aarch64``, ``win_amd64``."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def torch_facts(meta_version: str, notes: List[str]) -> Dict[str, Any]:
    """Return torch.version.cuda, the compiled arch list and the C++ ABI flag, read by importing torch (and
    ``torch.__version__`` under ``"torch"`` when it only adds a local tag to the metadata's ``meta_version``).

    The arch list is the compile-time string behind ``torch.cuda.get_arch_list()``, which itself answers ``[]``
    without a visible GPU; a build that does not expose it gives ``None`` (read nothing rather than guess).
    """
    facts: Dict[str, Any] = {"torch_cuda": None, "torch_arch_list": None, "torch_cxx11_abi": None}
    try:
        # Some builds print on import; keep stdout for the JSON line.
        with contextlib.redirect_stdout(sys.stderr):
            torch = importlib.import_module("torch")  # only this child ever imports torch
    except BaseException as exc:  # a broken torch raises anything from ImportError to OSError
        notes.append("import torch failed: %s: %s" % (type(exc).__name__, exc))
        return facts
    # A local build's metadata may say 2.11.0 where the binary says 2.11.0+cu130: the tag is worth keeping.
    imported = str(getattr(torch, "__version__", ""))
    if meta_version and imported.startswith(meta_version + "+"):
        facts["torch"] = imported
    version = getattr(torch, "version", None)
    facts["torch_cuda"] = getattr(version, "cuda", None)
    c_module = getattr(torch, "_C", None)
    abi = getattr(c_module, "_GLIBCXX_USE_CXX11_ABI", None)
    facts["torch_cxx11_abi"] = bool(abi) if abi is not None else None
    get_flags = getattr(c_module, "_cuda_getArchFlags", None)
    if facts["torch_cuda"] and get_flags is not None:
        try:
            flags = get_flags()
        except Exception as exc:
            notes.append("torch._C._cuda_getArchFlags() failed: %s" % exc)
            flags = None
        if flags:
            facts["torch_arch_list"] = str(flags).split()
    return facts


def probe() -> Dict[str, Any]:
    """Return the facts as a JSON-ready dict (keys mirror ``resolver.detect.InstalledEnv``)."""
    notes: List[str] = []
    packages = installed_packages()
    if metadata is None:
        notes.append("importlib.metadata is missing (Python < 3.8): installed packages unknown")
    facts: Dict[str, Any] = {
        "python_exe": sys.executable,
        "python": "%d.%d" % sys.version_info[:2],
        "platform": platform_tag(),
        "glibc": glibc_version(),
        "torch": packages.get("torch"),
        "xformers": packages.get("xformers"),
        "flash_attn": packages.get("flash-attn"),
        "packages": packages,
        "torch_cuda": None,
        "torch_arch_list": None,
        "torch_cxx11_abi": None,
    }
    if facts["torch"] is not None:
        facts.update(torch_facts(facts["torch"], notes))
    facts["notes"] = notes
    return facts


if __name__ == "__main__":
    result = probe()
    sys.stdout.write("\n" + json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
