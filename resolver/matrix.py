"""Load the compatibility matrices: the only module that knows where ``matrices/*.toml`` live.

``load()`` reads the files (shipped inside the wheel as ``resolver.matrices``) and caches the parsed rows;
``resolver.matrix_rows.from_dicts()`` (re-exported here) turns parsed TOML into typed rows, raising ``InvalidMatrix``
with ``file: row: field: what is wrong``. ``validate()`` checks consistency across files. It knows nothing about the
host.
"""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from resolver.errors import BadInput, InvalidMatrix
from resolver.matrix_rows import FILES, OPTIONAL, from_dicts, keys_fingerprint
from resolver.matrix_types import Matrix

__all__ = ["FILES", "load", "load_dir", "from_dicts", "read_files", "validate", "matrix_dir"]

def matrix_dir() -> Path:
    """Return the folder holding the shipped matrices (``resolver/matrices`` in a wheel, ``matrices/`` in a checkout)."""
    try:
        return Path(str(resources.files("resolver.matrices")))
    except ModuleNotFoundError:  # a source checkout on PYTHONPATH, not installed: matrices/ sits beside resolver/
        return Path(__file__).resolve().parent.parent / "matrices"


def _decode(name: str, raw: bytes) -> dict[str, Any]:
    """Return one matrix file's TOML table; ``InvalidMatrix`` naming the file when it is not UTF-8 TOML."""
    from resolver import toml_read  # only on a cache miss: the parsed matrix is normally read from the cache

    try:
        data = toml_read.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidMatrix(f"not UTF-8 (byte {exc.start}); save it as UTF-8", f"{name}.toml") from None
    except toml_read.TOMLDecodeError as exc:
        raise InvalidMatrix(f"not valid TOML: {exc}", f"{name}.toml") from None
    return data


def _read_raw(directory: Path) -> dict[str, bytes]:
    """Return the bytes of each matrix file of ``directory`` (regular files under 16 MB), keyed by stem."""
    from resolver.inputs import read_bytes

    raw: dict[str, bytes] = {}
    for name in FILES:
        path = directory / f"{name}.toml"
        if not path.exists():
            if name in OPTIONAL:
                continue
            raise InvalidMatrix("file missing: a matrix folder holds every file of the shipped matrices/ "
                                "(copy that folder to start one)", f"{path}")
        try:
            raw[name] = read_bytes(str(path), f"{name}.toml")
        except BadInput as exc:
            raise InvalidMatrix(str(exc).split(": ", 1)[-1], f"{name}.toml") from None
    return raw


def read_files(directory: Path) -> dict[str, dict[str, Any]]:
    """Return each matrix file of ``directory`` parsed as TOML, keyed by stem. Raises ``InvalidMatrix`` on bad TOML."""
    return {name: _decode(name, raw) for name, raw in _read_raw(directory).items()}


def load_dir(directory: Path) -> Matrix:
    """Return the matrix read from ``directory`` (for ``--matrix-dir`` and tests)."""
    if not os.path.isdir(directory):  # os.path: False, not OSError, for a name the OS refuses (too long)
        raise BadInput(f"--matrix-dir {directory}: not a folder; pass a folder holding the matrix files (a copy of "
                       "the shipped matrices/)")
    return from_dicts(read_files(directory))


# Bump when the cached data changes shape.
_CACHE_FORMAT = "matrix-json-v1"


def _digest(raw: dict[str, bytes]) -> str:
    """Return the cache key of the matrix files ``raw``: their bytes, the cache format, and the key rule (``KEYS``)
    the cached tables were checked against (a cache hit is not checked again)."""
    h = hashlib.sha256(_CACHE_FORMAT.encode() + b"\0" + keys_fingerprint().encode())
    for name, data in raw.items():
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def load() -> Matrix:
    """Return the shipped matrix, cached for the life of the process and, parsed, in the user cache.

    Parsing ~400 KB of TOML costs more than the solve itself, so the parsed tables are kept as JSON (data, never
    code: no pickle) in a private folder, named by and holding the SHA-256 of the TOML files, with a SHA-256 of its
    own body. Any edit to a matrix file, any bit flip, a foreign owner or a link makes it a miss: the TOML is read
    afresh and the cache rewritten. The typed rows are always rebuilt and checked by ``from_dicts``; only the check
    for unknown keys is not rerun on a hit (the tables passed it when written, and the key covers ``KEYS``).
    """
    from resolver import matrix_cache

    raw = _read_raw(matrix_dir())
    digest = _digest(raw)
    cached = matrix_cache.read(digest)
    if cached is not None:
        try:
            return from_dicts(cached, keys_checked=True)
        except (InvalidMatrix, KeyError, TypeError, ValueError, AttributeError):
            pass  # a cache that passed its checksum but not the schema: rebuilt below
    data = {name: _decode(name, b) for name, b in raw.items()}
    m = from_dicts(data)
    matrix_cache.write(digest, data)
    return m


def _pin_problems(m: Matrix) -> list[str]:
    """Return the problems of ``pins.toml``: a pin applies to a package of the stack and bounds another one."""
    problems = []
    stack_packages = {"torch", "xformers", "flash-attn"}
    for i, pin in enumerate(m.pins):
        if canonicalize_name(Requirement(pin.when).name) not in stack_packages:
            problems.append(f"pins.toml: pin[{i}] ({pin.requirement}): when: {pin.when!r} names no stack package "
                            f"({', '.join(sorted(stack_packages))})")
        if canonicalize_name(pin.package) in stack_packages:
            problems.append(f"pins.toml: pin[{i}] ({pin.requirement}): package: {pin.package} is solved by the "
                            "matrix itself, not pinned")
    return problems


def validate(m: Matrix) -> list[str]:
    """Return every consistency problem across the files as ``file: row: field: what is wrong`` (empty when sound)."""
    problems: list[str] = []
    problems += _pin_problems(m)
    torch_versions = {t.version for t in m.torch}
    cuda_minors = {(c.cuda.major, c.cuda.minor) for c in m.cuda}
    majors = {c.major for c in m.minor_compat}
    for t in m.torch:
        defaults = [v for v in t.variants if v.pypi_default]
        if len(defaults) > 1:
            problems.append(f"torch.toml: release {t.version}: variant: more than one pypi_default")
        pypi_tag = t.pypi_cuda.get("linux_x86_64")
        if defaults and defaults[0].tag != pypi_tag:
            problems.append(f"torch.toml: release {t.version}: pypi_default: variant {defaults[0].tag} but PyPI serves {pypi_tag}")
        for v in t.variants:
            if (v.cuda.major, v.cuda.minor) not in cuda_minors:
                problems.append(f"torch.toml: release {t.version}: variant {v.tag}: CUDA {v.cuda} is not in cuda.toml")
            elif v.cuda.major not in majors:
                problems.append(f"torch.toml: release {t.version}: variant {v.tag}: no minor_version_compat row for CUDA {v.cuda.major}")
            cm = m.cuda_minor(v.cuda)
            if cm is not None:
                for cc in v.arch.sass | v.arch.ptx:
                    if cc not in cm.nvcc_sms:
                        problems.append(f"torch.toml: release {t.version}: variant {v.tag}: sm_{cc.major}{cc.minor} cannot be built by nvcc {v.cuda}")
            if v.pypi_default:
                sass = t.pypi_arch["linux_x86_64"].sass | t.pypi_arch["linux_x86_64"].sass_exact
                if not sass <= (v.arch.sass | v.arch.sass_exact):
                    problems.append(f"torch.toml: release {t.version}: variant {v.tag}: PyPI wheel has SASS the build list lacks")
    for x in m.xformers:
        pins = [tv for tv in torch_versions if x.torch.contains(str(tv), prereleases=True)]
        if not pins:
            problems.append(f"xformers.toml: release {x.version}: requires_dist_torch: {x.torch} names no torch release in torch.toml")
        if x.pypi_torch:
            base = Version(x.pypi_torch.split("+")[0])
            if not x.torch.contains(str(base), prereleases=True):
                problems.append(f"xformers.toml: release {x.version}: pypi_build_torch: {x.pypi_torch} is outside requires_dist_torch {x.torch}")
            local = x.pypi_torch.split("+")[1] if "+" in x.pypi_torch else ""
            rel = m.torch_release(base)
            if rel is not None and local.startswith("cu") and rel.variant(local) is None:
                problems.append(f"xformers.toml: release {x.version}: pypi_build_torch: torch {base} has no {local} variant in torch.toml")
        if x.pypi_cuda is not None and (x.pypi_cuda.major, x.pypi_cuda.minor) not in cuda_minors:
            problems.append(f"xformers.toml: release {x.version}: pypi_build_cuda: CUDA {x.pypi_cuda} is not in cuda.toml")
    for f in m.flash_attn:
        for w in f.wheels:
            if w.cuda_build.major not in majors:
                problems.append(f"flash_attn.toml: release {f.version}: torch: CUDA build {w.cuda_build} has no minor_version_compat row")
    for c in m.cuda:
        if c.cuda.major not in majors:
            problems.append(f"cuda.toml: cuda_minor {c.cuda}: major: no minor_version_compat row for {c.cuda.major}")
    seen: dict[str, str] = {}
    for g in m.gpus:
        for n in (g.name, *g.nvidia_smi_names):
            key = n.lower()
            if key in seen and seen[key] != str(g.compute_capability):
                problems.append(f"gpus.toml: gpu {g.name}: nvidia_smi_name: {n!r} also names a GPU of another compute capability")
            seen[key] = str(g.compute_capability)
    from packaging.requirements import Requirement

    for p in m.profiles:
        for req in p.requirements:
            r = Requirement(req)
            if r.name == "xformers" and not any(r.specifier.contains(str(x.version), prereleases=True) for x in m.xformers):
                problems.append(f"profiles.toml: profile {p.name}: requirements: {req!r} matches no xformers release")
    for f in m.flash_attn:
        if f.requires_dist is not None and "torch" not in {canonicalize_name(Requirement(r).name) for r in f.requires_dist}:
            problems.append(f"flash_attn.toml: release {f.version}: install_requires: names no torch (every flash-attn "
                            "wheel is built against torch and declares it)")
    for x in m.xformers:
        if (x.source_requires_dist is not None
                and "torch" not in {canonicalize_name(Requirement(r).name) for r in x.source_requires_dist}):
            problems.append(f"xformers_source.toml: release {x.version}: install_requires: names no torch (a wheel "
                            "built from source is built against torch and declares it)")
    return problems
