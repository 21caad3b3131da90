"""Properties over targets and requests drawn from the shipped matrices: the commands agree because they ask one
compatibility layer (resolver.compat).

* whatever plan calls feasible, check-upgrade calls safe for the same set and target;
* every ``torch==X+tag`` / ``xformers X works with torch Y`` alternative of a refusal solves;
* plan and Dockerfile agree on versions, indexes, arch lists and build env (MAX_JOBS included);
* solve and check-upgrade agree on every (flash-attn release x torch build) pair.

Bounded (max_examples, no deadline per example) so the file stays well under a minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from resolver import compat, upgrade
from resolver.candidates import TorchOption, torch_options
from resolver.dockerfile import render
from resolver.errors import NoCompatibleStack
from resolver.matrix import load
from resolver.matrix_types import FlashRelease
from resolver.models import ComputeCapability, Gpu, Target, parse_driver
from resolver.plan import make_plan
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


def _alternative_solves(alt: str, target: Target, request: Request) -> bool:
    m = re.match(r"torch==([\w.]+)\+(\w+) runs on", alt)
    if m:
        req = dataclasses.replace(request, torch=SpecifierSet(f"=={m.group(1)}"), torch_variant=m.group(2))
        return feasible(target, M, req)
    m = re.match(r"xformers ([\w.]+) works with torch ([\w.]+)", alt)
    if m:
        req = dataclasses.replace(request, xformers=SpecifierSet(f"=={m.group(1)}"),
                                  torch=SpecifierSet(f"=={m.group(2)}"))
        return feasible(target, M, req)
    return True  # advice without versions (update the driver, use Python X): nothing to solve


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
            assert _alternative_solves(alt, target, request), f"printed but does not solve: {alt}"
        return
    versions = {p.name: p.version for p in stack.packages}
    source = frozenset(p.name for p in stack.packages if p.method == "source")
    current = upgrade.Installed(target, versions, source_built=source)
    report = upgrade.check_upgrade(current, versions, M, original=lines, profiles=profiles)
    assert report.verdict == "safe", (versions, report.findings)
    plan = make_plan(stack, matrix=M)
    text = render(plan, M)
    for p in stack.packages:  # versions, indexes, arch lists and build env agree
        assert p.version in text
        if p.method == "source":
            step = next(s for s in plan.steps if s.package == p.name)
            jobs = step.env["MAX_JOBS"]
            assert jobs == str(compat.max_jobs(p.name, M, target.cpu_count, target.memory_gib))
            assert re.search(rf"ARG \w+_MAX_JOBS={jobs}\n", text)
            if p.arch_list:
                assert p.arch_list in text
    for s in plan.steps:
        if s.index_url and not s.url and s.action == "install":
            assert s.index_url in text


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
