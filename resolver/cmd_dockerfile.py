"""``gpustack dockerfile``: a Dockerfile (or, for a fleet, one per class, or k8s node affinity) for the stack solved
for a target, over ``resolver.dockerfile`` and ``resolver.dockerfile_fleet`` (docs/dockerfile.md, docs/fleet.md)."""

from __future__ import annotations

import dataclasses

from collections.abc import Callable
from typing import Any
from pathlib import Path
from urllib.parse import urlsplit

import click
from packaging.version import Version

from resolver.cmd_common import check_output, per_class_plans, write_atomic
from resolver.errors import BadInput, NoCompatibleStack
from resolver.installers import with_mirrors
from resolver.models import Plan
from resolver.options import fleet_options, mirror_options, target_options
from resolver.pipeline import Context, PlanOptions, fresh_plan_for

__all__ = ["dockerfile"]


@click.command("dockerfile")
@click.argument("requirements", nargs=-1, metavar="[REQ]...")
@fleet_options
@target_options
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE", help="Where to write it (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["dockerfile", "k8s"]), default="dockerfile", show_default=True,
              help="With --fleet: k8s prints node-affinity snippets (GPU Feature Discovery labels) for the image(s).")
@mirror_options
def dockerfile(requirements: tuple[str, ...], output: str, fmt: str, opts: PlanOptions,
               torch_index_url: str | None = None) -> None:
    """Print a Dockerfile for the stack solved for a target: the nvidia/cuda image of torch's CUDA, a devel stage for
    source builds, pinned installs from the right indexes. With --fleet: one image for every GPU class of a cluster
    (or one per class with --per-class) that checks its backends with `gpustack verify` at start.
    Exit codes: 0 written, 1 no compatible stack, 2 bad input."""
    from resolver.dockerfile import refuse_platform, render

    if fmt == "k8s" and not opts.fleet:
        raise BadInput("--format k8s needs --fleet: node affinity is written on the fleet's node labels")
    check_output(output)
    if opts.platform_tag:
        refuse_platform(opts.platform_tag)  # before any solving: a Windows target gets no Linux image
    mirrors = _image_mirrors(torch_index_url, opts.index_url, opts.allow_insecure_index, opts.index_from)
    if opts.fleet:
        _fleet_dockerfile(requirements, output, fmt, opts, mirrors)
        return
    [(_, _, plan)], ctx, glibc = _for_the_image(lambda o: _one(requirements, o, output), opts)
    plan = with_mirrors(plan, *mirrors)
    write_atomic(output, _rendered(lambda: render(plan, ctx.matrix, header=_said(glibc, plan, ctx),
                                                  index_url=mirrors[1], file_name=_name(output)), plan, ctx))


def _name(output: str) -> str | None:
    """Return the file name the build command names (``-f``), ``None`` for stdout."""
    return None if output == "-" else Path(output).name


Planned = list[tuple[Any, str, Plan]]  # (a fleet's GPU class or None, the file it goes to, its plan)


def _one(requirements: tuple[str, ...], opts: PlanOptions, output: str) -> tuple[Planned, Context]:
    plan, ctx = fresh_plan_for(requirements, opts)
    return [(None, output, plan)], ctx


def _for_the_image(plan_with: Callable[[PlanOptions], tuple[Planned, Context]],
                   opts: PlanOptions) -> tuple[Planned, Context, Version | None]:
    """Return the plans for their images' glibc, their context, and that glibc when it was taken so (``_said``
    writes it in each Dockerfile). Without --glibc a
    plan takes an assumed (2.28) or this machine's glibc, but what runs in an image is the image's own: its Ubuntu's
    (``dockerfile.image_glibc``). So the stacks are planned again for that glibc when every image has the same one
    (a flash-attn wheel built on Ubuntu 22.04 then fits a 22.04 image, and an older image's glibc is never
    exceeded), and taken when each image of the new plans has at least that glibc."""
    from resolver.dockerfile import image_glibc

    planned, ctx = plan_with(opts)
    if opts.glibc is not None:
        return planned, ctx, None
    found = [image_glibc(plan, ctx.matrix) for _, _, plan in planned]
    glibcs = {f[0] for f in found if f is not None}
    if None in found or len(glibcs) != 1:
        return planned, ctx, None
    glibc = glibcs.pop()
    if all(plan.stack.target.glibc == glibc for _, _, plan in planned):
        return planned, ctx, None
    again, ctx2 = plan_with(dataclasses.replace(opts, glibc=glibc))
    still = [image_glibc(plan, ctx2.matrix) for _, _, plan in again]
    if len(again) != len(planned) or any(s is None or s[0] < glibc for s in still):
        return planned, ctx, None
    return again, ctx2, glibc


def _said(glibc: Version | None, plan: Plan, ctx: Context) -> list[str]:
    """Return the Dockerfile comment saying the plan is for its image's glibc (``_for_the_image``), if it is."""
    from resolver.dockerfile import image_glibc

    found = image_glibc(plan, ctx.matrix) if glibc is not None else None
    return [f"glibc {glibc}: the image's ({found[1]}); pass --glibc X.Y to plan for another"] if found else []


def _image_mirrors(torch_index_url: str | None, index_url: str | None, allow_insecure: bool,
                   index_from: str = "--index-url") -> tuple[str | None, str | None]:
    """Return the PyTorch and PyPI mirrors as install takes them (``installers.torch_mirror`` / ``pypi_mirror``),
    refusing (bad input) what an image build cannot use: a ``file://`` folder of this machine, which the build does
    not see, and a URL with a password, which the Dockerfile and the image's history would keep."""
    from resolver.installers import mirrors as mirrors_of
    from resolver.redact import redact

    mirrors = mirrors_of(torch_index_url, index_url, allow_insecure=allow_insecure)
    named = ("--torch-index-url" if torch_index_url else "$GPUSTACK_TORCH_INDEX_URL",
             f"${index_from}" if index_from.isidentifier() else index_from)  # a variable, an option or a file
    for url, what in zip(mirrors, named):
        if url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme == "file":
            raise BadInput(f"dockerfile {what} {url}: a folder on this machine, which the image build cannot see; "
                           "pass an http(s) mirror the build can reach, or leave it out")
        if "@" in parts.netloc:  # user:password@ or token@
            raise BadInput(f"dockerfile {what} {redact(url)}: the Dockerfile (and the image's history) would keep "
                           "its credentials; pass the mirror without them and give the build a pip.conf or .netrc "
                           "as a build secret")
    return mirrors


def _rendered(make: Callable[[], str], plan: Plan, ctx: Context) -> str:
    """Return ``make()``; when the stack's CUDA has no image, the refusal says which torch build has one (solved)."""
    try:
        return make()
    except NoCompatibleStack as exc:
        from resolver.dockerfile import with_image_alternative

        raise with_image_alternative(exc, plan.stack.target, ctx.matrix, ctx.request) from None


def _fleet_dockerfile(requirements: tuple[str, ...], output: str, fmt: str, opts: PlanOptions,
                      mirrors: tuple[str | None, str | None]) -> None:
    """Write the fleet's image (or one per class), or with ``--format k8s`` the node affinity of each image."""
    from resolver.dockerfile_fleet import affinity_yaml, render_fleet

    if opts.per_class:  # with --format k8s, the images are named after the Dockerfiles --per-class writes
        plans, ctx, glibc = _for_the_image(
            lambda o: per_class_plans(requirements, o, "Dockerfile" if fmt == "k8s" else output), opts)
    else:
        plans, ctx, glibc = _for_the_image(lambda o: _one(requirements, o, output), opts)
        assert ctx.fleet is not None
    plans = [(c, path, with_mirrors(plan, *mirrors)) for c, path, plan in plans]
    fleet = ctx.fleet
    assert fleet is not None
    from resolver.render import console, line

    err = console(stderr=True)
    for text in ctx.lines:
        line(err, text)
    if fmt == "k8s":
        if fleet.kind != "kubernetes":
            raise BadInput(f"--format k8s: the fleet of {fleet.origin} is {fleet.kind}, without Kubernetes node "
                           "labels; pass a kubectl node list")
        groups = [(f"the image of {Path(path).name}", [c]) for c, path, _ in plans] if opts.per_class else \
            [("the fleet's image", list(fleet.classes))]
        write_atomic(output, affinity_yaml(fleet, groups))
        return
    for _, path, _ in plans:
        check_output(path)
    texts = [(path, _rendered(lambda: render_fleet(plan, ctx.matrix, fleet, [c] if c is not None else None,
                                                   header=_said(glibc, plan, ctx), index_url=mirrors[1],
                                                   file_name=_name(path), driver=opts.driver),
                              plan, ctx))
             for c, path, plan in plans]
    for path, text in texts:  # every image rendered before the first file is written
        write_atomic(path, text)
        if path != "-":
            line(err, f"wrote {path}")
