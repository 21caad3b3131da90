"""What the file-writing commands (``lock``, ``dockerfile``) share: checking and writing ``-o``, and the plans of a
fleet's classes, one file each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from resolver.errors import BadInput
from resolver.models import Plan
from resolver.pipeline import Context, PlanOptions

__all__ = ["check_output", "write_atomic", "class_path", "per_class_plans"]


def check_output(path: str) -> None:
    """Refuse a bad ``-o`` (missing folder, a folder, a device) before any solving or network: bad input first."""
    if path != "-":
        from resolver.safefiles import check_output

        check_output(path, "-o")


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (``-`` is stdout) safely: ``resolver.safefiles.write_output`` (docs/input.md)."""
    if path == "-":
        click.echo(text, nl=False)
        return
    from resolver.safefiles import write_output

    write_output(path, text, "-o")


def class_path(output: str, class_id: str) -> str:
    """Return the file of one class beside ``output``: ``pylock.toml`` -> ``pylock.<id>.toml`` and
    ``pylock.prod.toml`` -> ``pylock.prod-<id>.toml`` (PEP 751's ``pylock.<name>.toml``: the name holds no dot),
    ``Dockerfile`` -> ``Dockerfile.<id>``."""
    from packaging.pylock import is_valid_pylock_path

    path = Path(output)
    if is_valid_pylock_path(path):
        name = path.name[len("pylock."):-len(".toml")]  # "" for pylock.toml
        return str(path.with_name(f"pylock.{name}-{class_id}.toml" if name else f"pylock.{class_id}.toml"))
    if path.suffix in (".toml", ".txt", ".yaml", ".yml"):
        return str(path.with_name(f"{path.stem}.{class_id}{path.suffix}"))
    return str(path.with_name(f"{path.name}.{class_id}"))


def per_class_plans(requirements: tuple[str, ...], opts: PlanOptions,
                     output: str) -> tuple[list[tuple[Any, str, Plan]], Context]:
    """Return ``(class, file, plan)`` for every class of the fleet; exit 1 (nothing written) when one has no stack."""
    from resolver.errors import NoCompatibleStack
    from resolver.fleet_plan import plans_per_class
    from resolver.refusal import Refusal, advice

    if output == "-":
        raise BadInput("--per-class writes one file per class: pass -o FILE (each class's file is named after it)")
    answers, ctx = plans_per_class(requirements, opts)
    assert ctx.fleet is not None
    out: list[tuple[Any, str, Plan]] = []
    refused: list[Refusal] = []
    for (c, got), cid in zip(answers, ctx.fleet.class_ids()):
        if isinstance(got, NoCompatibleStack):
            root = got.refusals[0]
            instead = f" (instead: {got.alternatives[0].text})" if got.alternatives else ""
            refused.append(Refusal(root.package, root.candidate, root.kind,
                                   {**root.facts, "class_id": cid, "class_label": c.label, "instead": instead},
                                   "class {class_id} ({class_label}): {causes}{instead}", root.alternative,
                                   tuple(got.refusals)))
        else:
            out.append((c, class_path(output, cid), got))
    if refused:
        raise NoCompatibleStack(refused, [advice("leave the class's nodes out of the fleet file, or change the request")])
    return out, ctx
