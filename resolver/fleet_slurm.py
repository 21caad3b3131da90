"""Slurm's nodes as a GPU fleet: the ``nodes`` of ``scontrol show node --json`` (data_parser; the node schema of
slurmrestd), GPUs from ``gres`` (``gpu:a100:8(S:0-1)``, ``gpu:4``, ``gpu:a100_1g.10gb:7``), GPU names from the gres type
or a feature, platform from ``architecture``. Slurm reports no NVIDIA driver. Called by ``resolver.fleet.parse``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resolver.errors import BadInput
from resolver.fleet import _MIG_PROFILE, _PLATFORM, Fleet, Node, _fleet, _gpu, _int, _text
from resolver.matrix_types import Matrix
from resolver.models import Gpu

__all__ = ["slurm_fleet"]


def _split_gres(text: str) -> list[str]:
    """Return the entries of a gres string, splitting on commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [e.strip() for e in out if e.strip() and e.strip() != "(null)"]


def _gres_gpus(text: str, where: str) -> list[tuple[str | None, int]]:
    """Return ``(type, count)`` of each ``gpu`` entry of a gres string (``gpu:a100:8(S:0-1)`` -> ``("a100", 8)``)."""
    found = []
    for entry in _split_gres(text):
        entry = entry.split("(", 1)[0]
        parts = entry.split(":")
        if parts[0] != "gpu":
            continue
        if len(parts) == 2:
            gtype, count = (None, parts[1]) if parts[1].isdigit() else (parts[1], "1")
        elif len(parts) >= 3:
            gtype, count = ":".join(parts[1:-1]), parts[-1]
        else:
            gtype, count = None, "1"
        found.append((gtype or None, _int(count, f"{where}: gres {entry!r} count")))
    return found


def _features(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "(null)"]
    return []


def _slurm_product(gtype: str | None, features: Sequence[str], where: str, matrix: Matrix) -> tuple[str, Gpu, str]:
    """Return (product, GPU, MIG mode) of a gres type, falling back to a feature that names a known GPU."""
    from resolver.gpus import lookup_gpu

    mig = "off"
    name = gtype
    if gtype and (m := _MIG_PROFILE.search(gtype)):
        mig = "single " + m.group(1).lower()
        name = gtype[: m.start()].strip("_-. ") or None
    candidates = [name] if name else []
    candidates += list(features)
    for cand in candidates:
        try:
            lookup_gpu(cand.replace("_", " "), matrix)
        except BadInput:
            continue
        return cand, _gpu(cand, None, None, where, matrix), mig
    what = f"gres type {gtype!r}" if gtype else "a gres with no GPU type"
    raise BadInput(f"{where}: unknown GPU product ({what}, features {', '.join(features) or 'none'}); name the GPU "
                   "type in slurm.conf's gres (gpu:a100:8) or add the product to matrices/gpus.toml")


def slurm_fleet(items: Sequence[Any], origin: str, matrix: Matrix) -> Fleet:
    """Return the fleet of the ``nodes`` of ``scontrol show node --json``."""
    nodes: list[Node] = []
    skipped: list[tuple[str, str]] = []
    read = {"gres"}
    for item in items:
        if not isinstance(item, dict):
            raise BadInput(f"--fleet {origin}: an entry of nodes is not an object")
        name = _text(item.get("name") or item.get("hostname") or "?", f"--fleet {origin}: a node name")
        where = f"--fleet {origin}: node {name}"
        gres = item.get("gres")
        if gres is not None and not isinstance(gres, str):
            raise BadInput(f"{where}: gres is not a string")
        gpus = _gres_gpus(_text(gres or "", f"{where}: gres"), where)
        if not gpus or sum(c for _, c in gpus) == 0:
            skipped.append((name, "no gpu gres" if not gpus else "gpu gres count 0"))
            continue
        arch = str(item.get("architecture") or "")
        if not arch:
            raise BadInput(f"{where}: no architecture; pass the full `scontrol show node --json` output "
                           "(the node may never have registered: its slurmd reports it)")
        read.add("architecture")
        plat = _PLATFORM.get(("linux", arch))
        if plat is None:
            raise BadInput(f"{where}: architecture {arch!r} is not one gpustack plans for (x86_64, aarch64)")
        features = [_text(f, f"{where}: feature") for f in _features(item.get("features"))]
        if features:
            read.add("features")
        for gtype, count in gpus:
            if count == 0:
                continue
            product, gpu, mig = _slurm_product(gtype, features, where, matrix)
            nodes.append(Node(name, product, gpu, count, plat, None, None, mig))
    return _fleet(origin, "slurm", nodes, skipped, read, len(items))
