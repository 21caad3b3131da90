"""``gpustack matrix show|validate``: read the compatibility matrices, check them, print them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from resolver import matrix as matrix_mod
from resolver.matrix_types import Matrix

__all__ = ["matrix"]

_dir_option = click.option("--matrix-dir", type=click.Path(file_okay=False), help="Read matrices from DIR instead of the shipped ones.")


def _load(matrix_dir: str | None) -> Matrix:
    return matrix_mod.load_dir(Path(matrix_dir)) if matrix_dir else matrix_mod.load()


@click.group()
def matrix() -> None:
    """Show or validate the compatibility matrices (matrices/*.toml)."""


@matrix.command()
@_dir_option
def validate(matrix_dir: str | None) -> None:
    """Check every file against the schema and the files against each other. Exit 0 sound, 1 inconsistent, 2 unreadable."""
    m = _load(matrix_dir)  # schema errors raise InvalidMatrix -> one line, exit 2
    problems = matrix_mod.validate(m)
    from resolver.render import print_validation

    if not print_validation(problems, m, matrix_dir or str(matrix_mod.matrix_dir())):
        sys.exit(1)


def _rows(m: Matrix, subject: str) -> tuple[list[str], list[list[str]]]:
    if subject == "torch":
        return ["torch", "Pythons", "variants (arch list)", "PyPI build"], [
            [str(t.version), " ".join(t.pythons),
             "\n".join(f"{v.tag}{'?' if v.unverified else ''}: {v.arch.to_torch_arch_list()}" for v in t.variants),
             t.pypi_cuda["linux_x86_64"]]
            for t in m.torch
        ]
    if subject == "xformers":
        return ["xformers", "torch", "PyPI build", "arch list", "index builds", "components"], [
            [str(x.version), str(x.torch), x.pypi_torch or "", x.arch.to_torch_arch_list(), " ".join(x.index_variants or ("?",)),
             "yes" if x.has_components else "no"]
            for x in m.xformers
        ]
    if subject == "flash-attn":
        return ["flash-attn", "wheels (torch minors)", "CUDA builds", "GPU CC", "unverified"], [
            [str(f.version), " ".join(sorted({f"{w.torch.major}.{w.torch.minor}" for w in f.wheels}, key=lambda s: tuple(map(int, s.split("."))))),
             " ".join(sorted({str(w.cuda_build) for w in f.wheels})), f"{f.min_cc}–{f.max_cc}" if f.max_cc else f">= {f.min_cc}", "yes" if f.wheels_unverified else ""]
            for f in m.flash_attn
        ]
    if subject == "cuda":
        from resolver.models import format_driver

        # NVIDIA's two columns: a Windows driver's number differs from Linux's for the same toolkit (N/A from 13.0)
        minors = [[str(c.cuda), format_driver(c.ga_min_driver_linux) if c.ga_min_driver_linux else "?",
                   format_driver(c.ga_min_driver_windows) if c.ga_min_driver_windows else "N/A",
                   " ".join(s.sm for s in sorted(c.nvcc_sms))] for c in m.cuda]
        return ["CUDA", "toolkit driver (Linux)", "toolkit driver (Windows)", "nvcc targets"], minors
    if subject == "gpus":
        return ["GPU", "CC", "nvidia-smi names", "architecture"], [
            [g.name, str(g.compute_capability), ", ".join(g.nvidia_smi_names), g.architecture] for g in m.gpus
        ]
    if subject == "platforms":  # platforms.toml: each Linux release's glibc, with where it was read
        return ["OS", "glibc", "source"], [[o.name, str(o.glibc), o.source] for o in m.oses]
    if subject == "profiles":
        return ["profile", "requirements", "constraints", "needs", "summary"], [
            [p.name, " ".join(p.requirements), " ".join(p.constraints), " ".join(p.needs), p.summary] for p in m.profiles
        ]
    # removed: gone from Docker Hub (docker.toml removed = true; the plan never takes it); '?': unverified
    return ["CUDA", "runtime image", "devel image", "status"], [
        [str(d.cuda), d.runtime, d.devel,
         ("removed (gone from Docker Hub)" if d.removed else d.status or "?") + ("?" if d.unverified else "")]
        for d in m.docker]


def _json_rows(m: Matrix, subject: str, header: list[str], rows: list[list[str]]) -> list[dict[str, Any]]:
    """Return the rows as JSON objects; docker's also carry each image's ``removed``, ``status``, ``unverified`` and
    ``source`` (the facts the table only marks), platforms' each release's ``note``."""
    out: list[dict[str, Any]] = [dict(zip(header, r)) for r in rows]
    if subject == "platforms":
        for row, o in zip(out, m.oses):
            row.update(note=o.note or None)
    if subject == "docker":
        for row, d in zip(out, m.docker):
            row.update(status=d.status or None, removed=d.removed, unverified=d.unverified, source=d.source)
    return out


@matrix.command()
@click.option("--package", "packages", multiple=True, metavar="NAME",
              help="Read only this package (repeatable; default: torch, xformers, flash-attn, flash-attn-4, sageattention).")
@click.option("--since", "since_text", multiple=True, metavar="NAME=VERSION",
              help="Skip releases of NAME older than VERSION, a release the index lists (default: the oldest the matrix covers).")
@click.option("--metadata", is_flag=True, help="Also read each release's METADATA (torch's CUDA pins, xformers' torch pin).")
@click.option("--arch", is_flag=True, help="Also read the compiled arch lists from inside the Linux wheels (range reads).")
@click.option("--index", default="https://pypi.org/simple", show_default=True, help="Simple-API index to read.")
@click.option("--write", is_flag=True, help="Write the new wheels.toml (default: print the diff only).")
@_dir_option
def refresh(packages: tuple[str, ...], since_text: tuple[str, ...], metadata: bool, arch: bool, index: str, write: bool,
            matrix_dir: str | None) -> None:
    """Read PyPI and print how matrices/wheels.toml would change (a reviewable diff), then the facts to review.

    New or changed rows are marked unverified until a maintainer reviews them. Exit 0 unchanged, 1 changed or the
    index did not answer, 2 bad input or a malformed answer (nothing is written).
    """
    import datetime
    from resolver import toml_read

    import requests

    from resolver import refresh as refresh_mod
    from resolver.errors import BadInput

    refresh_mod.check_index(index)
    packages = refresh_mod.check_packages(packages)
    since = refresh_mod.parse_since(since_text)
    _load(matrix_dir)  # a folder that holds no matrix is refused as show and validate refuse it (exit 2)
    directory = Path(matrix_dir) if matrix_dir else matrix_mod.matrix_dir()
    path = directory / "wheels.toml"
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        current = toml_read.loads(old_text).get("wheel", []) if old_text else []
    except toml_read.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML ({exc}); fix or remove it and run refresh again") from None
    xf = directory / "xformers.toml"
    pins = {str(r.get("version")): str(r.get("requires_dist_torch")) for r in
            (toml_read.loads(xf.read_text(encoding="utf-8")).get("release", []) if xf.exists() else [])}
    result = refresh_mod.refresh(requests.Session(), current, packages or refresh_mod.PACKAGES, since=since,
                                 metadata=metadata, arch=arch, today=datetime.date.today().isoformat(), index=index,
                                 torch_pins=pins)
    new_text = refresh_mod.render(result.rows)
    patch = refresh_mod.diff(old_text, new_text)
    click.echo(patch, nl=False)
    from resolver.render import console, line

    err = console(stderr=True)
    for text in result.review:
        line(err, f"review: {text}")
    if not patch:
        line(err, "wheels.toml is up to date")
        return
    if write:
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(new_text, encoding="utf-8")
        tmp.replace(path)
        line(err, f"wrote {path}: review the rows marked unverified, then run `gpustack matrix validate`")
    sys.exit(1)


@matrix.command()
@click.argument("subject", type=click.Choice(["torch", "xformers", "flash-attn", "cuda", "gpus", "profiles", "docker",
                                                 "platforms"]))
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
def show(subject: str, matrix_dir: str | None, as_json: bool) -> None:
    """Print one matrix as a table (a '?' marks an unverified row)."""
    m = _load(matrix_dir)
    header, rows = _rows(m, subject)
    if as_json:
        click.echo(json.dumps(_json_rows(m, subject, header, rows), indent=2))
        return
    from resolver.render import console, print_table

    print_table(console(), f"{subject} ({len(rows)} rows)", header, rows, show_lines=subject == "torch")
