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

__all__ = ["lookup_gpu", "find_gpu_row", "normalize_name"]

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


def lookup_gpu(text: str, matrix: Matrix) -> Gpu:
    """Return the ``Gpu`` for ``--gpu`` text: a name (``"Tesla K80"``, ``"NVIDIA H100 80GB HBM3"``) or a capability.

    An unknown name is bad input: the message suggests the closest known names and the capability form.
    """
    hint = "pass a GPU name such as 'Tesla T4' or a compute capability such as 8.6"
    t = text.strip()
    if not t:
        raise BadInput(f"--gpu '': empty; {hint}")
    check_name(text, "--gpu", hint=hint)
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
    index = _index(matrix)
    # A short name ("V100", "A100") stands for every model it is part of, when they share one capability.
    words = set(normalize_name(t).split())
    partial = {row.name: row for key, row in index.items() if words and words <= set(key.split())}
    caps = {row.compute_capability for row in partial.values()}
    if len(caps) == 1:
        return Gpu(name=t, compute_capability=caps.pop())
    close = difflib.get_close_matches(normalize_name(t), list(index), n=3, cutoff=0.5)
    names = list(dict.fromkeys(index[c].name for c in close))
    hint = f"did you mean {', '.join(repr(n) for n in names)}? " if names else ""
    raise BadInput(
        f"--gpu {t!r}: unknown GPU name; {hint}or pass its compute capability (e.g. --gpu 8.6); "
        "`gpustack matrix show gpus` lists the known names"
    )
