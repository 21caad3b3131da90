"""The cache of wheels built from source: one folder per build key, holding the wheel and the key that made it.

A key holds everything that changes the binary (the package and its version or source tree, torch's version and
CUDA, the Python tag, the C++ ABI, the architecture list, the platform and the build variables that reach the
compiler); anything else (``MAX_JOBS``, ``NVCC_THREADS``) only changes how long the build takes and stays out.
The cache lives in ``platformdirs.user_cache_dir("gpustack")``, or in ``$GPUSTACK_CACHE_DIR`` when set
(``inputs.cache_dir``, re-exported here). ``clear`` also forgets what ``lock`` remembered of earlier runs
(``REMEMBERED``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resolver.inputs import cache_dir

__all__ = ["cache_dir", "REMEMBERED", "LOCK_HINTS", "LOCK_NAMES", "BuildKey", "CacheEntry", "lookup", "store", "entries", "clear", "BINARY_ENV",
           "BINARY_ENV_PREFIXES", "changes_binary"]

# Build variables that change what ends up in the binary. MAX_JOBS and NVCC_THREADS are missing on purpose.
BINARY_ENV = (
    "TORCH_CUDA_ARCH_LIST",
    "FLASH_ATTN_CUDA_ARCHS",
    "FORCE_CUDA",
    "FLASH_ATTENTION_FORCE_CXX11_ABI",
    "FLASH_ATTENTION_DISABLE_BACKWARD",
    "FLASH_ATTENTION_DISABLE_SM80",
    "FLASH_ATTENTION_DISABLE_FP8",
    "FLASH_ATTENTION_DISABLE_HDIMDIFF64",
    "FLASH_ATTENTION_DISABLE_HDIMDIFF192",
    "XFORMERS_DISABLE_FLASH_ATTN",
    "_GLIBCXX_USE_CXX11_ABI",
    # the toolchain: which CUDA, which compilers, with which flags (torch.utils.cpp_extension reads these)
    "CUDA_HOME", "CUDA_PATH", "CUDACXX", "CC", "CXX", "CUDAHOSTCXX", "NVCC_CCBIN", "CFLAGS", "CXXFLAGS", "CPPFLAGS",
    "LDFLAGS", "NVCC_FLAGS", "NVCC_APPEND_FLAGS", "NVCC_PREPEND_FLAGS", "TORCH_NVCC_FLAGS", "CMAKE_ARGS",
    "PYTORCH_ROCM_ARCH", "ROCM_HOME", "TORCH_DONT_CHECK_COMPILER_ABI",
)
# Every package switch in these families changes what is compiled (xformers' XFORMERS_DISABLE_FLASH_ATTN,
# XFORMERS_BUILD_TYPE; flash-attn's FLASH_ATTENTION_*/FLASH_ATTN_*; SageAttention's; BUILD_TYPE-like).
BINARY_ENV_PREFIXES = ("FLASH_ATTENTION_", "FLASH_ATTN_", "XFORMERS_", "SAGEATTENTION_", "SAGE_")
# ... except those that only change how long the build takes.
_TIMING_ONLY = frozenset({"MAX_JOBS", "NVCC_THREADS", "FLASH_ATTENTION_SKIP_CUDA_BUILD_CACHE"})


def changes_binary(name: str) -> bool:
    """Return whether the environment variable ``name`` changes what a source build produces."""
    return name not in _TIMING_ONLY and (name in BINARY_ENV or name.startswith(BINARY_ENV_PREFIXES))
_KEY_FILE = "key.json"


# What ``lock`` remembers of earlier runs, under the cache root: the uv run a command line asked for
# (``lock_speculate``) and the names a request locked (``lock_resolve.remember_names``). ``clear`` removes them.
LOCK_HINTS = "lock-hints"
LOCK_NAMES = "lock-names"
REMEMBERED = (LOCK_HINTS, LOCK_NAMES)
LEFT_BY_RUNS = ("logs", "constraints")  # build logs, and the constraints files each install step holds its pins in


def left_by_runs() -> dict[str, int]:
    """Return how many files earlier runs left in each of ``LEFT_BY_RUNS`` (``cache list`` says so)."""
    out = {}
    for name in LEFT_BY_RUNS:
        folder = cache_dir() / name
        try:
            out[name] = sum(1 for f in folder.iterdir() if f.is_file()) if folder.is_dir() and not folder.is_symlink() else 0
        except OSError:
            out[name] = 0
    return out


def _wheels_dir() -> Path:
    return cache_dir() / "wheels"


@dataclass(frozen=True, slots=True)
class BuildKey:
    """Everything that changes a source-built binary. ``source`` is ``name==version`` or a source tree's hash."""

    package: str
    source: str
    torch: str
    torch_cuda: str | None
    python_tag: str
    cxx11_abi: bool | None
    arch_list: str | None
    platform: str
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str], **fields: Any) -> BuildKey:
        """Return a key whose ``env`` holds the binary-changing variables of ``env`` (sorted, others dropped)."""
        kept = tuple(sorted((k, v) for k, v in env.items() if changes_binary(k)))
        return cls(env=kept, **fields)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["env"] = dict(self.env)
        return d

    def digest(self) -> str:
        """Return the key's sha256 (hex, 24 characters): the name of its cache folder."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached wheel, the key that built it, its size and when it was stored (Unix time)."""

    digest: str
    wheel: Path
    key: dict[str, Any]
    size: int
    created: float


def lookup(key: BuildKey) -> Path | None:
    """Return the cached wheel built for ``key``, or ``None`` when there is none (or it is incomplete)."""
    folder = _wheels_dir() / key.digest()
    if not (folder / _KEY_FILE).is_file():
        return None
    wheels = sorted(folder.glob("*.whl"))
    return wheels[0] if wheels else None


def store(key: BuildKey, wheel: Path) -> Path:
    """Return the cached copy of ``wheel`` stored under ``key``; a folder appears whole or not at all."""
    root = _wheels_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / key.digest()
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        shutil.copy2(wheel, staging / wheel.name)
        record = {"key": key.to_dict(), "created": time.time()}
        (staging / _KEY_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
        if final.exists():  # a concurrent build of the same key won; keep the older one
            shutil.rmtree(staging)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    found = lookup(key)
    assert found is not None
    return found


def _read_record(path: Path) -> tuple[dict[str, Any], float] | None:
    """Return (key, created) of a ``key.json``: a regular file of this user's under 1 MB holding
    ``{"key": {...}, "created": <finite number>}``; ``None`` for anything else."""
    import math

    from resolver.safefiles import read_private

    blob = read_private(path, limit=1 << 20)
    try:
        record = json.loads(blob) if blob is not None else None
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("key", {}), dict):
        return None
    created = record.get("created", 0.0)
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not math.isfinite(created):
        return None
    return dict(record.get("key", {})), float(created)


def entries() -> list[CacheEntry]:
    """Return every complete cache entry, oldest first."""
    found: list[CacheEntry] = []
    root = _wheels_dir()
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        key_file = folder / _KEY_FILE
        wheels = sorted(folder.glob("*.whl"))
        if folder.name.startswith(".") or not key_file.is_file() or not wheels:
            continue
        record = _read_record(key_file)
        if record is None:
            continue  # a malformed or planted key.json: not an entry (never a traceback)
        try:
            size = wheels[0].stat().st_size
        except OSError:
            continue
        found.append(CacheEntry(folder.name, wheels[0], record[0], size, record[1]))
    return sorted(found, key=lambda e: e.created)


def clear(package: str | None = None) -> list[CacheEntry]:
    """Return the entries removed: every one, or those of ``package``, compared by PEP 503 normalized name
    (``flash_attn`` and ``Flash-Attn`` are ``flash-attn``, as keys store it). Without ``package`` it also removes
    what lock remembered (``REMEMBERED``) and what earlier runs left (``LEFT_BY_RUNS``: build logs, constraints files). ``BadInput`` for a string that is no package name (nothing is removed)."""
    from packaging.utils import InvalidName, canonicalize_name

    from resolver.errors import BadInput
    from resolver.inputs import check_text

    wanted = None
    if package is not None:
        check_text(package, "--package")  # too long, or a control character: the shared rule's line
        try:
            wanted = canonicalize_name(package, validate=True)
        except InvalidName:
            raise BadInput(f"--package {package!r}: not a package name; pass a project name such as "
                           "flash-attn or xformers") from None
    removed = []
    for entry in entries():
        if wanted is not None and canonicalize_name(str(entry.key.get("package", ""))) != wanted:
            continue
        shutil.rmtree(entry.wheel.parent, ignore_errors=True)
        removed.append(entry)
    if wanted is None:
        for name in (*REMEMBERED, *LEFT_BY_RUNS):
            folder = cache_dir() / name
            if folder.is_symlink():  # not ours to empty: the link goes, never what it points to
                folder.unlink()
            else:
                shutil.rmtree(folder, ignore_errors=True)
    return removed
