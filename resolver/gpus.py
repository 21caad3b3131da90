"""GPU names to compute capabilities, from ``matrices/gpus.toml``: what ``--gpu`` accepts and how it is matched.

Pure: takes the matrix, returns ``Gpu`` values or raises ``BadInput`` with the closest known names.
"""

from __future__ import annotations

import difflib
import re

from resolver.errors import BadInput
from resolver.inputs import check_name
from resolver.matrix_types import GpuRow, Matrix
from resolver.models import ComputeCapability, Gpu

__all__ = ["lookup_gpu", "check_gpu_text", "find_gpu_row", "gpu_rows", "normalize_name", "host_platform"]

_CC = re.compile(r"^(?:sm_?)?\d{1,2}\.?\d$", re.IGNORECASE | re.ASCII)


def normalize_name(name: str) -> str:
    """Return a GPU name folded for matching: lower case, no vendor words, single spaces, ``-`` as space."""
    s = name.lower().replace("-", " ").replace("_", " ")
    s = re.sub(r"\b(nvidia|geforce|tesla)\b", " ", s)
    return " ".join(s.split())


def _index(matrix: Matrix) -> dict[str, GpuRow]:
    out: dict[str, GpuRow] = {}
    for row in matrix.gpus:
        for n in (row.name, *row.nvidia_smi_names):
            out.setdefault(normalize_name(n), row)
    return out


def find_gpu_row(name: str, matrix: Matrix) -> GpuRow | None:
    """Return the matrix row for a GPU name (as ``nvidia-smi`` prints it or as the table names it), or ``None``."""
    return _index(matrix).get(normalize_name(name))


def gpu_rows(name: str, matrix: Matrix) -> list[GpuRow]:
    """Return the rows a GPU name stands for: its own row, else every model a short name is part of ("V100", "GB10"),
    else none."""
    row = find_gpu_row(name, matrix)
    if row is not None:
        return [row]
    words = set(normalize_name(name).split())
    return list({r.name: r for key, r in _index(matrix).items() if words and words <= set(key.split())}.values())


_GPU_HINT = "pass a GPU name such as 'Tesla T4' or a compute capability such as 8.6"


def check_gpu_text(text: str) -> str:
    """Return ``--gpu`` text stripped when it can name a GPU at all (one short line); ``BadInput`` otherwise. Checked
    where the options are read, before any work or message quotes it, and again by ``lookup_gpu``."""
    t = text.strip()
    if not t:
        raise BadInput(f"--gpu '': empty; {_GPU_HINT}")
    check_name(text, "--gpu", hint=_GPU_HINT)
    return t


def lookup_gpu(text: str, matrix: Matrix) -> Gpu:
    """Return the ``Gpu`` for ``--gpu`` text: a name (``"Tesla K80"``, ``"NVIDIA H100 80GB HBM3"``) or a capability.

    An unknown name is bad input: the message suggests the closest known names and the capability form.
    """
    t = check_gpu_text(text)
    if _CC.match(t):
        cc = ComputeCapability.parse(t)
        known = sorted({row.compute_capability for row in matrix.gpus})
        if known and cc not in known:  # 99.9 or 0.0 used to plan a PTX-only stack for sm_999, or fail with exit 1
            raise BadInput(f"--gpu {t}: no GPU in the GPU table has compute capability {cc} (known: "
                           f"{', '.join(map(str, known))}); pass the GPU's name or its capability as nvidia-smi "
                           "--query-gpu=compute_cap prints it")
        return Gpu(name=f"GPU with compute capability {cc}", compute_capability=cc)
    row = find_gpu_row(t, matrix)
    if row is not None:
        # Keep the name nvidia-smi prints when that is what was given: it is what the user will see on the machine.
        smi = next((n for n in row.nvidia_smi_names if normalize_name(n) == normalize_name(t)), None)
        return Gpu(name=smi or row.name, compute_capability=row.compute_capability)
    caps = {row.compute_capability for row in gpu_rows(t, matrix)}
    if len(caps) == 1:
        return Gpu(name=t, compute_capability=caps.pop())
    index = _index(matrix)
    close = difflib.get_close_matches(normalize_name(t), list(index), n=3, cutoff=0.5)
    names = list(dict.fromkeys(index[c].name for c in close))
    hint = f"did you mean {', '.join(repr(n) for n in names)}? " if names else ""
    raise BadInput(
        f"--gpu {t!r}: unknown GPU name; {hint}or pass its compute capability (e.g. --gpu 8.6); "
        "`gpustack matrix show gpus` lists the known names"
    )


def host_platform(gpus: tuple[Gpu, ...], platform: str | None, matrix: Matrix) -> tuple[str | None, str | None]:
    """Return the target's platform and a note when the GPUs decided it: GPUs that come only in machines of one
    platform (``host_platforms`` in the GPU table: a Grace superchip's host is Arm, ``linux_aarch64``) give it when
    ``platform`` is not known yet. ``BadInput`` when the platform given (``--platform``, or the interpreter's) is not
    theirs: such a plan would pick wheels for a machine that cannot hold that GPU."""
    bound: dict[str, set[str]] = {}  # a GPU name -> the platforms of every model it stands for
    for g in gpus:
        rows = gpu_rows(g.name, matrix)
        if rows and all(r.host_platforms for r in rows):
            bound[g.name] = set.intersection(*(set(r.host_platforms) for r in rows))
    if not bound:
        return platform, None
    allowed = set.intersection(*bound.values())
    names = ", ".join(bound)
    if platform is None and len(allowed) == 1:
        [only] = allowed
        return only, f"platform {only}: {names} comes only in {only} machines (pass --platform to plan for another " \
                     "GPU's machine)"
    if platform is None or platform not in allowed:
        theirs = sorted(set().union(*bound.values()))
        said = f"the target's platform is {platform}" if platform else "no one platform holds them all"
        raise BadInput(f"--gpu {names}: only in {' or '.join(theirs)} machines, and {said}; pass --platform {theirs[0]}"
                       f" (or leave --platform out), or plan for that machine's GPU")
    return platform, None
