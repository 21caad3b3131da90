"""The click options every planning command shares (target, request), and nothing else.

``@target_options`` adds them and hands the command one checked ``opts: PlanOptions`` (``resolver.pipeline``) in
place of the separate values; the command passes it to ``pipeline.plan_for`` / ``solve_request`` / ``target_from``.
To add an option: a ``click.option`` here whose parameter name is a new ``PlanOptions`` field, checked in
``PlanOptions.from_cli``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from resolver.models import DEFAULT_GLIBC, PLATFORMS
from resolver.pipeline import PYPI_INDEX_VARIABLES, PlanOptions

__all__ = ["target_options", "fleet_options", "mirror_options", "glibc_option", "insecure_index_option",
           "target_flags"]

F = TypeVar("F", bound=Callable[..., Any])

_FIELDS = frozenset(f.name for f in dataclasses.fields(PlanOptions))


def _collect(f: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so the target/request values arrive as one ``opts: PlanOptions``."""

    @functools.wraps(f)
    def command(*args: Any, **params: Any) -> Any:
        mine = {k: params.pop(k) for k in list(params) if k in _FIELDS}
        return f(*args, opts=PlanOptions.from_cli(mine), **params)

    return command


insecure_index_option = click.option(
    "--allow-insecure-index", is_flag=True,
    help="Accept plain http:// indexes that are not on this machine (anyone on the path can swap files).")

# --index-url, read with the environment's mirror by ``PlanOptions.from_cli`` (``pipeline.pypi_index``): plan's target
# options (plan, install, lock, dockerfile, download) and check-upgrade share it, so its help says the same true thing.
index_url_option = click.option(
    "--index-url", metavar="URL",
    help="Your PyPI or its mirror (a simple-API URL, https or file://): requirements gpustack does not solve itself "
         "(numpy, diffusers ...) are checked against it, and install, lock, download and dockerfile take PyPI's files "
         "from it (default: " + ", else ".join(f"${v}" for v in PYPI_INDEX_VARIABLES) + ", else pypi.org).")

# --glibc, read by ``PlanOptions.from_cli`` (its ``glibc`` field): plan's target options and check-upgrade share it.
glibc_option = click.option(
    "--glibc", metavar="X.Y",
    help=f"glibc of the target (Linux; `ldd --version` prints it). A described target without it is assumed to have "
         f"{DEFAULT_GLIBC}; wheels needing a newer one are refused.")


def target_options(f: F) -> F:
    """Add the target and request options (``--gpu``, ``--driver``, ``--python``, ``--platform``, ``--cpu``, ...);
    the command receives them as ``opts: PlanOptions``."""
    opts = [
        click.option("--gpu", "gpus", multiple=True, metavar="NAME_OR_CC",
                     help="Plan for this GPU (name as nvidia-smi prints it, or a compute capability such as 8.6). "
                          "Repeat for a fleet that must all be served."),
        click.option("--driver", metavar="VERSION", help="NVIDIA driver version of the target (e.g. 535.104.05)."),
        click.option("--python", "python_version", metavar="X.Y", help="Python version of the target."),
        click.option("--platform", "platform_tag", type=click.Choice(PLATFORMS), help="Platform of the target."),
        click.option("--cpu", is_flag=True, help="Plan a CPU-only stack."),
        glibc_option,
        click.option("--nvcc", metavar="X.Y", help="CUDA toolkit (nvcc) a source build would use on the target."),
        click.option("--python-exe", metavar="PATH", help="Target interpreter (default: the one running gpustack)."),
        click.option("-r", "--requirement", "requirement_files", multiple=True, metavar="FILE",
                     type=click.Path(dir_okay=False), help="Read requirements from FILE (PEP 508 lines)."),
        click.option("--profile", "profiles", multiple=True, metavar="NAME",
                     help="Add a known consumer's requirements (audiocraft, fairseq, diffusers)."),
        click.option("--verified-only", is_flag=True, help="Refuse facts the matrices mark unverified."),
        click.option("--prefer-wheels", is_flag=True, help="Prefer an older torch with prebuilt wheels over source builds."),
        click.option("--upgrade", is_flag=True,
                     help="Plan the newest torch that fits even when the installed one would do (default: keep it)."),
        index_url_option,
        insecure_index_option,
        click.option("--matrix-dir", type=click.Path(file_okay=False), hidden=True, help="Read matrices from DIR."),
    ]
    wrapped = _collect(f)
    for opt in reversed(opts):
        wrapped = opt(wrapped)
    return wrapped  # type: ignore[return-value]


def fleet_options(f: F) -> F:
    """Add ``--fleet SOURCE`` and ``--per-class`` (plan, lock, dockerfile); put it above ``@target_options`` so the
    values reach ``PlanOptions``. The fleet module is imported only when ``--fleet`` is given (docs/fleet.md)."""
    f = click.option("--per-class", is_flag=True,
                     help="With --fleet: one plan (lock, image) per GPU class instead of one for the whole fleet.")(f)
    f = click.option("--fleet", metavar="SOURCE",
                     help="Plan for a cluster's GPU nodes: a file of `kubectl get nodes -o json` or `scontrol show "
                          "node --json` output, or k8s / slurm to run the client.")(f)
    return f


def mirror_options(f: F) -> F:
    """Add ``--torch-index-url`` to a command that installs or writes down a plan's indexes (install, lock,
    dockerfile, download). The command passes it, with ``--index-url`` and ``--allow-insecure-index``
    (``target_options``), to ``installers.mirrors`` and the plan to ``installers.with_mirrors``: the same mirrors,
    read by the same code, in every command."""
    f = click.option("--torch-index-url", metavar="URL",
                     help="Mirror of download.pytorch.org/whl (same layout: URL/cu121); also "
                          "$GPUSTACK_TORCH_INDEX_URL.")(f)
    return f


def target_flags(opts: PlanOptions, with_deps: bool = True) -> str:
    """Return the target and planning options of ``opts`` as the command line says them (``--gpu 'NVIDIA H100'
    --driver ... --prefer-wheels``): what a re-lock is for, and what ``download`` tells the target's install."""
    from resolver.models import format_driver

    parts = [f"--gpu {g!r}" if " " in g else f"--gpu {g}" for g in opts.gpus] or (["--cpu"] if opts.cpu else [])
    if opts.fleet_record is not None:  # each class of the recorded fleet, for its own driver
        classes = opts.fleet_record["classes"]
        parts.append(f"the fleet it was locked for ({len(classes)} class{'es' if len(classes) != 1 else ''}: "
                     + ", ".join(f"{c['name']} driver {c.get('driver') or 'as --driver'}" for c in classes) + ")")
    if opts.driver is not None:
        parts.append(f"--driver {format_driver(opts.driver)}")
    if opts.python_version:
        parts.append(f"--python {opts.python_version}")
    if opts.platform_tag:
        parts.append(f"--platform {opts.platform_tag}")
    if opts.glibc is not None:
        parts.append(f"--glibc {opts.glibc}")
    if opts.nvcc is not None:
        parts.append(f"--nvcc {opts.nvcc}")
    parts += [flag for flag, on in (("--verified-only", opts.verified_only), ("--prefer-wheels", opts.prefer_wheels),
                                    ("--upgrade", opts.upgrade), ("--no-deps", not with_deps)) if on]
    return " ".join(parts)
