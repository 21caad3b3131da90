"""Properties over targets and requests drawn from the shipped matrices: the commands agree because they ask one
compatibility layer (resolver.compat).

* whatever plan calls feasible, check-upgrade calls safe for the same set and target;
* every alternative of a refusal solves (its change applied with ``resolver.refusal.apply``);
* plan, lock and Dockerfile agree on versions, indexes / URLs, arch lists and build env (MAX_JOBS included);
* solve and check-upgrade agree on every (flash-attn release x torch build) pair;
* a nearest safe set check-upgrade prints solves and checks safe (a nearest set once rebuilt: needs-rebuild).

Bounded (max_examples, no deadline per example) so the file stays well under a minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from resolver import compat, hashes, lock, upgrade
from resolver.candidates import TorchOption, torch_options
from resolver.dockerfile import render
from resolver.errors import NoCompatibleStack
from resolver.matrix import load
from resolver.matrix_types import FlashRelease
from resolver.models import PYTORCH_INDEX, ComputeCapability, Gpu, Plan, Target, parse_driver
from resolver.plan import make_plan
from resolver.refusal import Alternative, apply
from resolver.request import Request, parse_request
from resolver.solve import feasible, solve

M = load()
GPUS = sorted({(g.name, g.compute_capability) for g in M.gpus if not g.integrated and g.compute_capability.major >= 5},
              key=lambda g: (g[1], g[0]))
DRIVERS = ["470.256.02", "525.60.13", "535.104.05", "550.54.15", "570.86.15", "580.65.06", None]
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
REQUESTS = [[], ["xformers"], ["flash-attn"], ["torch==2.1.0", "xformers<0.0.23"], ["torch>=2.6", "flash-attn"],
            ["xformers", "torch==2.10.0"]]
PROFILES = [[], ["fairseq"], ["audiocraft"]]

targets = st.builds(
    lambda gpus, driver, python, platform: Target(
        gpus=tuple(Gpu(n, cc) for n, cc in gpus), python=python, platform=platform,
        driver=parse_driver(driver) if driver else None, cpu_count=8, memory_gib=32.0, source="given"),
    st.lists(st.sampled_from(GPUS), min_size=1, max_size=2, unique=True),
    st.sampled_from(DRIVERS), st.sampled_from(PYTHONS), st.sampled_from(["linux_x86_64", "linux_aarch64"]),
)
asks = st.tuples(st.sampled_from(REQUESTS), st.sampled_from(PROFILES))  # (requirement lines, profiles)
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _alternative_solves(alt: Alternative, target: Target, request: Request) -> bool:
    """Each change the alternative carries, applied by ``resolver.refusal.apply`` (the producers' own reading),
    solves; advice without a change (tests/test_alternatives_property.ADVICE) has nothing to solve."""
    return all(feasible(t, M, r) for t, r in (apply(c, target, request) for c in alt.changes))


@SETTINGS
@given(targets, asks)
def test_plan_feasible_means_check_upgrade_safe_and_alternatives_solve(
        target: Target, ask: tuple[list[str], list[str]]) -> None:
    lines, profiles = ask
    request = parse_request(lines, M, profiles=profiles)
    try:
        stack = solve(target, M, request)
    except NoCompatibleStack as refusal:
        for alt in refusal.alternatives:
            assert _alternative_solves(alt, target, request), f"printed but does not solve: {alt.to_dict()}"
        return
    versions = {p.name: p.version for p in stack.packages}
    source = frozenset(p.name for p in stack.packages if p.method == "source")
    current = upgrade.Installed(target, versions, source_built=source)
    report = upgrade.check_upgrade(current, versions, M, original=lines, profiles=profiles)
    assert report.verdict == "safe", (versions, report.findings)
    _plan_lock_dockerfile_agree(make_plan(stack, matrix=M))


TORCHES = [str(r.version) for r in M.torch if not r.version.is_prerelease]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(targets, asks, st.sampled_from(TORCHES))
def test_a_printed_nearest_safe_set_solves_and_checks_safe(
        target: Target, ask: tuple[list[str], list[str]], torch: str) -> None:
    lines, profiles = ask
    try:
        stack = solve(target, M, parse_request(lines, M, profiles=profiles))
    except NoCompatibleStack:
        return
    current = upgrade.Installed(target, {p.name: p.version for p in stack.packages},
                                source_built=frozenset(p.name for p in stack.packages if p.method == "source"))
    move = [f"torch=={torch}"]
    report = upgrade.check_upgrade(current, upgrade.proposed_versions(current, move, M), M, original=lines,
                                   profiles=profiles, requirements=move)
    assert report.nearest is None or report.rebuild is None  # the set once rebuilt only where no safe set is
    near = report.nearest or report.rebuild
    if near is None:
        return
    # the nearest safe set checks safe; the nearest set once rebuilt checks needs-rebuild (never unsafe)
    assert upgrade.check_upgrade(current, near, M, original=lines, profiles=profiles,
                                 requirements=move).verdict == ("safe" if report.nearest else "needs-rebuild")
    pins = [f"{k}=={v}" for k, v in near.items() if k in ("torch", "xformers", "flash-attn")]
    needs = frozenset(n for name in profiles for n in M.profile(name).needs)  # type: ignore[union-attr]
    assert feasible(target, M, dataclasses.replace(parse_request(pins, M), needs=needs)), pins


def _index_page(url: str) -> str:
    """Return a PEP 691 page of ``url`` laid out like the real index (INDEXES.md): every release the matrices know
    of the project, as a wheel any target takes and an sdist; on the PyTorch index with its ``+cuXYZ`` label."""
    index, name = url.rstrip("/").rsplit("/", 1)
    rows = {"torch": M.torch, "xformers": M.xformers, "flash-attn": M.flash_attn}.get(name) or \
        [a for a in M.attention if a.name == name]
    local = "+" + index.rsplit("/", 1)[1] if index.startswith(PYTORCH_INDEX) else ""
    stem = name.replace("-", "_")
    names = [f"{stem}-{r.version}{local}{ext}" for r in rows for ext in ("-py3-none-any.whl", ".tar.gz")]
    files = [{"filename": n, "url": n, "hashes": {"sha256": hashlib.sha256(n.encode()).hexdigest()}} for n in names]
    return json.dumps({"meta": {"api-version": "1.0"}, "name": name, "files": files})


def _dockerfile(text: str) -> tuple[dict[str, list[str]], list[dict[str, str]]]:
    """Return the rendered Dockerfile's pip commands (requirement -> arguments) and its ENV instructions."""
    commands: dict[str, list[str]] = {}
    envs = []
    joined = text.replace("\\\n", " ")
    for line in joined.splitlines():
        if line.startswith("ENV "):
            envs.append(dict(w.split("=", 1) for w in shlex.split(line[4:])))
        if line.startswith("RUN "):
            for command in line[4:].split("&&"):
                argv = shlex.split(command)
                if argv[:2] in (["pip", "install"], ["pip", "wheel"]):
                    for a in argv[2:]:
                        if not a.startswith("-") and not a.startswith("/") and a not in argv[argv.index(a) - 1:argv.index(a)]:
                            commands.setdefault(a, argv)
    return commands, envs


def _plan_lock_dockerfile_agree(plan: Plan) -> None:
    """plan, lock (the plan's files from indexes laid out like the real ones, through ``hashes.lookup``,
    ``lock.dumps`` and ``lock.loads``) and Dockerfile agree on every step's version, index or URL, arch list and
    build environment."""
    files, _ = hashes.lookup(plan, fetch=_index_page)
    loaded = lock.loads(lock.dumps(plan, files, matrix=M))
    locked = {p.name: p for p in (*loaded.packages, *loaded.missing)}
    commands, envs = _dockerfile(render(plan, M))
    for step in plan.steps:
        choice = plan.stack.get(step.package)
        assert choice is not None
        got = locked[step.package]
        if step.url:
            assert got.url == step.url == choice.url
            assert choice.version == got.version
        else:
            spec = Requirement(step.requirement).specifier
            assert spec.contains(choice.version) and spec.contains(got.version), (step.requirement, got.version)
            assert got.index == step.index_url
        assert got.arch_list == choice.arch_list
        assert (got.method == "source") == (step.action == "build") == (choice.method == "source")
        assert dict(got.build_env) == (dict(step.env) if step.action == "build" else {})
        by_url = step.action == "install" and step.url and " @ " not in step.requirement
        # the Dockerfile installs (a wheel the plan takes by URL: from that URL, as install does) or builds the same
        argv = commands[f"{step.package} @ {step.url}" if by_url else step.requirement]
        if step.action == "install" and step.index_url and not step.url:
            assert argv[argv.index("--index-url") + 1] == step.index_url
        if step.action == "build":
            jobs = step.env["MAX_JOBS"]
            assert jobs == str(compat.max_jobs(step.package, M, plan.stack.target.cpu_count,
                                                plan.stack.target.memory_gib))
            env = next(e for e in envs if e.get("MAX_JOBS", "").endswith("_MAX_JOBS}")
                       and all(e.get(k) == v for k, v in step.env.items() if k != "MAX_JOBS"))
            arg = env["MAX_JOBS"][2:-1]
            assert re.search(rf"^ARG {arg}={jobs}$", render(plan, M), re.M)
            # The Dockerfile's build env is the plan's (arch list and FORCE_CUDA included), MAX_JOBS as a build arg.
            assert {k: v for k, v in env.items() if k != "MAX_JOBS"} == {k: v for k, v in step.env.items() if k != "MAX_JOBS"}
            assert step.env["FORCE_CUDA"] == "1" and step.env["TORCH_CUDA_ARCH_LIST"] == (choice.arch_list or step.env["TORCH_CUDA_ARCH_LIST"])


def _pair_verdicts(target: Target, opt: TorchOption, f: FlashRelease) -> tuple[str, str]:
    """Return (what solve says of torch build ``opt`` + flash-attn ``f`` as a check-upgrade verdict: a wheel is
    ``safe``, a source build ``needs-rebuild``, a refusal ``unsafe``; what check-upgrade says of adding ``f``)."""
    pinned = Request(torch=SpecifierSet(f"=={opt.release.version}"), torch_variant=opt.tag,
                     flash_attn=SpecifierSet(f"=={f.version}"))
    try:
        choice = solve(target, M, pinned).get("flash-attn")
        said = "safe" if choice is not None and choice.method == "wheel" else "needs-rebuild"
    except NoCompatibleStack:
        said = "unsafe"
    current = upgrade.Installed(target, {"torch": opt.version})
    report = upgrade.check_upgrade(current, {"torch": opt.version, "flash-attn": str(f.version)}, M, nearest=False)
    return said, report.verdict


def _pairs(python: str) -> list[tuple[Target, TorchOption, FlashRelease]]:
    target = Target(gpus=(Gpu("H100", ComputeCapability(9, 0)),), python=python, platform="linux_x86_64")
    return [(target, opt, f) for rel in M.torch for opt in torch_options(rel, target, M) if opt.cuda is not None
            for f in M.flash_attn]


PAIRS = _pairs("3.10") + _pairs("3.12")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.sampled_from(PAIRS))
def test_solve_and_check_upgrade_agree_on_sampled_flash_attn_and_torch_pairs(
        pair: tuple[Target, TorchOption, FlashRelease]) -> None:
    said, verdict = _pair_verdicts(*pair)
    assert said == verdict, (pair[1].version, str(pair[2].version), said, verdict)


@pytest.mark.slow
def test_solve_and_check_upgrade_agree_on_every_flash_attn_release_and_torch_build() -> None:
    disagree = [(opt.version, str(f.version), *v) for target, opt, f in PAIRS
                if (v := _pair_verdicts(target, opt, f))[0] != v[1]]
    assert len(PAIRS) > 1000 and disagree == [], disagree[:5]


# --- a hold (matrices/pins.toml) has one answer: plan refuses the set iff check-upgrade calls the move unsafe ---------

NUMPYS = ["1.26.4", "2.0.2", "2.4.6"]
cpu_or_gpu = st.one_of(
    st.builds(lambda python: Target(gpus=(), python=python, platform="linux_x86_64", source="given"),
              st.sampled_from(["3.10", "3.11", "3.12"])),
    st.builds(lambda gpu, driver, python: Target(gpus=(Gpu(*gpu),), python=python, platform="linux_x86_64",
                                                 driver=parse_driver(driver), source="given"),
              st.sampled_from(GPUS), st.sampled_from([d for d in DRIVERS if d]), st.sampled_from(["3.10", "3.11"])))


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cpu_or_gpu, st.sampled_from(TORCHES), st.sampled_from(NUMPYS))
def test_plan_refuses_the_set_iff_check_upgrade_calls_the_move_unsafe(target: Target, torch: str, numpy: str) -> None:
    try:
        stack = solve(target, M, parse_request([], M))
    except NoCompatibleStack:
        return
    current = upgrade.Installed(target, {**{p.name: p.version for p in stack.packages}, "numpy": numpy})
    move = [f"torch=={torch}"]
    report = upgrade.check_upgrade(current, upgrade.proposed_versions(current, move, M), M, requirements=move,
                                   nearest=False)
    pins = [f"{k}=={v.split('+')[0]}" for k, v in report.proposed.items()]  # the same set, asked of plan
    plan_refuses = not feasible(target, M, parse_request(pins, M))
    assert (report.verdict == "unsafe") == plan_refuses, (pins, report.findings)
    if any(f.kind == "hold" for f in report.findings):  # the hold is the reason: without numpy, plan takes it
        assert feasible(target, M, parse_request([p for p in pins if not p.startswith("numpy==")], M)), pins
