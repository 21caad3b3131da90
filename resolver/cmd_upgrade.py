"""``gpustack check-upgrade``: whether moving to new versions is safe, from a lock or an environment, over
``resolver.upgrade`` (docs/check-upgrade.md)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any
from urllib.parse import unquote

import click

from resolver.errors import BadInput, NoCompatibleStack
from resolver.gpus import lookup_gpu
from resolver.options import glibc_option, index_url_option, insecure_index_option
from resolver.pipeline import parse_driver_option

__all__ = ["check_upgrade"]


def _wheel_name_pattern(template: str) -> re.Pattern[str]:
    """Return the pattern of the file names the matrix's flash-attn ``wheel_url`` template writes: each ``{field}``
    a named group (a field the template repeats must repeat its value). Built once per lock read."""
    pattern, seen = "", set()
    for i, part in enumerate(re.split(r"\{(\w+)\}", template.rsplit("/", 1)[-1])):
        if i % 2 == 0:
            pattern += re.escape(part)
        else:
            pattern += f"(?P={part})" if part in seen else f"(?P<{part}>.+?)"
            seen.add(part)
    return re.compile(pattern)


def _built_for_torch(url: str, wheel_name: re.Pattern[str]) -> str | None:
    """Return the torch ``major.minor`` a flash-attn wheel was built for, read from its file name by
    ``wheel_name`` (``_wheel_name_pattern``: ``flash_attn-2.5.8+cu122torch2.3cxx11abiFALSE-...whl`` -> ``2.3``);
    ``None`` for an sdist or a file the template does not describe."""
    found = wheel_name.fullmatch(unquote(url.rsplit("/", 1)[-1]))
    return found["torch_minor"] if found and "torch_minor" in wheel_name.groupindex else None


def _current_from_lock(path: str, template: str) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    """Return the ``Installed`` set a lock file describes, the request it was made for and its profiles (absent from
    locks older than those fields: then nothing). Its target is the lock's, with the driver and glibc it recorded,
    and the options it was made with (``cmd_lock.replayed_options``: its nvcc, --verified-only, --prefer-wheels)."""
    from resolver.lock import read
    from resolver.models import Target, parse_glibc
    from resolver.pipeline import glibc_for
    from resolver.upgrade import Installed

    locked = read(path, hint="pass a file written by `gpustack lock`")
    from resolver.cmd_lock import replayed_options
    from resolver.pipeline import PlanOptions

    made_with = replayed_options(locked, PlanOptions())  # what a re-lock replays: --nvcc, --verified-only, ...
    t = locked.target
    driver = parse_driver_option(locked.driver) if locked.driver else None
    glibc = parse_glibc(locked.glibc, f"--lock {path}: glibc") if locked.glibc else None
    # a lock describes its target as --gpu / --cpu do: without a recorded glibc, plan's assumption for it
    glibc, assumed = glibc_for(t.platform, glibc, described=True)
    target = Target(gpus=t.gpus, python=t.python, platform=t.platform, driver=driver, glibc=glibc,
                    glibc_assumed=assumed, source="lock", nvcc=made_with.nvcc)
    everything = (*locked.packages, *locked.missing)
    wheel_name = _wheel_name_pattern(template)
    built = {p.name: torch for p in everything if (torch := _built_for_torch(p.url, wheel_name)) is not None}
    versions = {p.name: p.version for p in everything}
    source = frozenset(p.name for p in everything if p.method == "source")
    profiles = tuple(p for p in (locked.profile or "").split(",") if p)
    return Installed(target, versions, built, source, floor=t.min_driver, verified_only=made_with.verified_only,
                     prefer_wheels=made_with.prefer_wheels), tuple(locked.request), profiles


def _current_from_env(python_exe: str | None, driver: str | None, with_requires: bool) -> Any:
    """Return the ``Installed`` set of the target interpreter (with its glibc) and this machine's GPUs; with
    ``with_requires``, also each installed package's declared requirements (its metadata's Requires-Dist)."""
    from resolver.detect import detect
    from resolver.lock_install import host_target
    from resolver.upgrade import Installed

    host = detect(python_exe, driver_override=driver)
    if host.env.torch is None:
        raise BadInput("no torch is installed in the target interpreter; pass --python-exe or --lock FILE")
    versions = dict(host.env.packages)
    versions["torch"] = host.env.torch
    requires: dict[str, list[str]] = {}
    if with_requires:
        from resolver._child.probe_env import dist_requires
        from resolver.envstate import snapshot

        for name, folder in snapshot(host.env.python_exe).dist_paths.items():
            requires[name] = dist_requires(folder)
    return Installed(host_target(host), versions, requires=requires)


def _pass_through(requirements: tuple[str, ...]) -> list[str]:
    """Return the names of the requirements that gpustack does not solve itself and plan looks up on the index
    (``passthrough.checked_names``: numpy, sympy, ...; not triton, torch's own pin in matrices/torch.toml)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from resolver.passthrough import checked_names
    from resolver.request import SOLVED

    others = tuple(r for r in requirements if str(canonicalize_name(Requirement(r).name)) not in SOLVED)
    return [n for n in checked_names(others) if n != "triton"]


def _index(names: list[str], index_url: str | None) -> Any:
    """Return what the index (``--index-url``, else PyPI, as plan asks) holds for ``names``
    (``resolver.index_lookup``), or ``None`` when there are none."""
    from resolver.index_lookup import lookup
    from resolver.models import PYPI_SIMPLE

    return lookup(names, index_url or PYPI_SIMPLE) if names else None


@click.command("check-upgrade")
@click.argument("requirements", nargs=-1, required=True, metavar="REQ...")
@click.option("--lock", "lock_file", metavar="FILE", help="Compare against this lock instead of the environment.")
@click.option("--python-exe", metavar="PATH", help="Interpreter whose packages are the current set.")
@click.option("--driver", metavar="VERSION", help="Driver of the target (default: detected, or the lock's).")
@click.option("--gpu", "gpus", multiple=True, metavar="NAME_OR_CC",
              help="GPU of the target (repeatable): check for a described machine instead of this one's GPUs.")
@glibc_option
@click.option("--profile", "profiles", multiple=True, metavar="NAME",
              help="What the set serves (audiocraft, fairseq, ...): its requirements and needs join the request checked.")
@index_url_option
@insecure_index_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_upgrade(requirements: tuple[str, ...], lock_file: str | None, python_exe: str | None, driver: str | None,
                  gpus: tuple[str, ...], profiles: tuple[str, ...], index_url: str | None, as_json: bool,
                  allow_insecure_index: bool = False, glibc: str | None = None) -> None:
    """Say whether moving to REQ (e.g. torch==2.2.0) is safe, needs a rebuild, or breaks something, and the nearest
    safe set of versions. Exit codes: 0 safe, 1 not safe, 2 bad input."""
    from dataclasses import replace

    from resolver.matrix import load
    from resolver.pipeline import PlanOptions
    from resolver.request import parse_requirement
    from resolver.upgrade import check_upgrade as check, proposed_versions

    for req in requirements:  # bad input first: before reading any lock or environment
        parse_requirement(req)
    if lock_file and python_exe:
        raise BadInput(f"--lock {lock_file} and --python-exe {python_exe} both name the current set: pass one")
    given_driver = parse_driver_option(driver) if driver else None
    opts = PlanOptions.from_cli({"index_url": index_url, "glibc": glibc,  # checked as plan checks them
                                 "allow_insecure_index": allow_insecure_index})
    index_url = opts.index_url
    matrix = load()
    for name in profiles:
        if matrix.profile(name) is None:
            known = ", ".join(p.name for p in matrix.profiles)
            raise BadInput(f"--profile {name!r}: unknown profile; known: {known}")
    given_gpus = tuple(lookup_gpu(g, matrix) for g in gpus)
    made_for: tuple[str, ...] = ()
    if lock_file:
        current, made_for, lock_profiles = _current_from_lock(lock_file, matrix.facts.flash_wheel_url)
        profiles += tuple(p for p in lock_profiles if p not in profiles)
    else:
        current = _current_from_env(python_exe, driver, with_requires=bool(_pass_through(requirements)))
    if given_gpus:  # the driver (read here, or the lock's) is now one of a described machine: checked as such
        current = replace(current, target=replace(current.target, gpus=given_gpus, driver_described=True))
    if given_driver is not None and lock_file and current.target.is_cpu:  # a described CPU target: as plan --cpu
        raise BadInput(f"--driver {driver}: the lock {lock_file} is for a CPU target, which has no NVIDIA driver; "
                       "drop --driver, or check for a GPU machine with --gpu NAME")
    if opts.glibc is not None:  # the target's glibc, as plan --glibc gives it (over the lock's record, or the probe's)
        from resolver.pipeline import glibc_for

        told, assumed = glibc_for(current.target.platform, opts.glibc, described=True)
        current = replace(current, target=replace(current.target, glibc=told, glibc_assumed=assumed))
    if given_driver is not None:  # a described driver, over this machine's GPUs too (compat.gpu_driver_refusals)
        current = replace(current, target=replace(current.target, driver=given_driver, driver_described=True))
    # The verdict and the nearest safe set are solved under the whole original request: the lock's requirements
    # and the profiles (the lock's and --profile), with each new requirement in place of the bound it replaces.
    try:
        proposed = proposed_versions(current, requirements, matrix, _index(_pass_through(requirements), index_url))
    except NoCompatibleStack as exc:  # a well-formed requirement no release meets: unsafe (exit 1), as plan refuses it
        from resolver.upgrade import Finding, UpgradeReport

        report = UpgradeReport("unsafe", dict(current.versions), dict(current.versions),
                               tuple(Finding(r.package, "unsafe", r.text, r.kind) for r in exc.refusals))
    else:
        report = check(current, proposed, matrix, original=made_for, profiles=profiles, requirements=requirements,
                       index=lambda names: _index(names, index_url))  # asked only to move a package out of a hold
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        from resolver.render import console, print_upgrade

        print_upgrade(console(), report, current.versions)
    sys.exit(0 if report.verdict == "safe" else 1)
