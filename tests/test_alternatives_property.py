"""Every alternative a refusal prints solves: over targets and requests drawn from the shipped matrices, each
alternative is re-asked of the solver with exactly the change it carries (issue 9 items 3 and 4).

An alternative is a value (``resolver.refusal.Alternative``): its change is data, applied by
``resolver.refusal.apply``, the same function the producers use before printing it. No text is read back.
Bounded (derandomized, max_examples) to stay a few seconds on 2 cores.
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import Version

from resolver.errors import NoCompatibleStack
from resolver.matrix import load
from resolver.models import Gpu, Target, parse_driver
from resolver.refusal import Alternative, apply
from resolver.request import Request, parse_request
from resolver.solve import feasible, solve

M = load()
# One GPU per compute capability, so every architecture is drawn as often as the others.
GPUS = sorted({g.compute_capability: (g.name, g.compute_capability) for g in M.gpus
               if not g.integrated and g.compute_capability.major >= 5}.values(), key=lambda g: g[1])
DRIVERS = ["470.256.02", "535.104.05", "550.54.15", "570.86.15", "580.65.06", None]
ASKS = [(["torch<2.7", "xformers<0.0.30"], []), (["torch<2.7"], []), (["flash-attn"], []), (["flash-attn>=3"], []),
        (["torch==2.1.0", "flash-attn-3"], []), (["xformers==0.0.22", "flash-attn"], []), ([], ["audiocraft"]),
        (["xformers>=0.0.34"], ["fairseq"]), (["torch==2.15.0"], []), (["torch<2.7", "flash-attn<2.7"], []),
        (["sageattention>=2"], []), (["torch==2.11.0+cu130", "flash-attn"], []), (["xformers", "torch<2.4"], []),
        (["torch==1.13.1"], []), (["torch==2.13.0+cpu", "xformers"], []), (["torch==2.13.0+cu126"], [])]

targets = st.builds(
    lambda gpus, driver, python, glibc, nvcc: Target(
        gpus=tuple(Gpu(n, cc) for n, cc in gpus), python=python, platform="linux_x86_64",
        driver=parse_driver(driver) if driver else None, cpu_count=8, memory_gib=32.0, source="given",
        glibc=Version(glibc), nvcc=Version(nvcc) if nvcc else None),
    st.lists(st.sampled_from(GPUS), min_size=1, max_size=2, unique=True),
    st.sampled_from(DRIVERS), st.sampled_from(["3.9", "3.11", "3.12", "3.13"]), st.sampled_from(["2.17", "2.28", "2.35"]),
    st.sampled_from([None, "12.8"]))


# The alternatives that name no change (advice without versions to solve): each has an empty ``changes``, and
# these are the only forms allowed to. Anything else printed must carry the change that makes it solve.
ADVICE = (
    "ask for a torch in ",                      # no torch release matches (a change only where the range solves)
    "plan each group of GPUs separately",       # no one torch has code for every GPU: one plan per group
    "install torch from NVIDIA's Jetson wheels",  # Jetson: outside the indexes gpustack plans from
    "a plan names only packages that exist",    # an unknown pass-through requirement: check the spelling
    "torch's scaled_dot_product_attention runs on the CPU",  # CPU target asked for a GPU-only kernel
    "plan for a GPU machine with --gpu NAME",
    "add the image row to matrices/docker.toml",  # maintainer advice (dockerfile)
    "pass --per-class",                         # fleets: one plan per class
    "leave the class's nodes out of the fleet file",
)


def _solves(alt: Alternative, target: Target, request: Request) -> bool:
    """Each change the alternative names, applied with ``resolver.refusal.apply`` (the producers' own reading),
    solves on the whole target; an alternative without one is one of the ``ADVICE`` forms."""
    if not alt.changes:
        return alt.text.startswith(ADVICE)
    return all(feasible(t, M, r) for t, r in (apply(c, target, request) for c in alt.changes))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(targets, st.sampled_from(ASKS))
def test_every_printed_alternative_solves(target: Target, ask: tuple[list[str], list[str]]) -> None:
    lines, profiles = ask
    request = parse_request(lines, M, profiles=profiles)
    try:
        solve(target, M, request)
    except NoCompatibleStack as refusal:
        for alt in refusal.alternatives:
            assert _solves(alt, target, request), f"printed but does not solve: {alt.to_dict()}"
        for r in refusal.refusals:  # a refusal's own alternative is one of them
            assert r.alternative is None or r.alternative in refusal.alternatives, r.to_dict()


def test_every_change_field_is_produced_and_each_solves() -> None:
    """Not vacuous: over a small fixed grid (an old GPU, a new one on an old driver, glibc 2.17, a wrong-major nvcc,
    a Jetson, a kept installed torch, a requirement against a known-bad pin), the refusals' alternatives carry every
    target and request field a change may set, and each applied change solves."""
    from resolver.models import ComputeCapability
    from resolver.refusal import REQUEST_FIELDS, TARGET_FIELDS

    grid = [("V100", ComputeCapability(7, 0), "580.65.06", "3.12", "2.35", None, "linux_x86_64"),
            ("H100", ComputeCapability(9, 0), "580.65.06", "3.12", "2.35", "12.8", "linux_x86_64"),
            ("H100", ComputeCapability(9, 0), "440.33", "3.10", "2.35", None, "linux_x86_64"),
            ("H100", ComputeCapability(9, 0), "580.65.06", "3.11", "2.35", None, "linux_x86_64"),
            ("RTX 5090", ComputeCapability(12, 0), "570.86.15", "3.12", "2.35", None, "linux_x86_64"),
            ("A100", ComputeCapability(8, 0), "580.65.06", "3.13", "2.17", None, "linux_x86_64"),
            ("Jetson AGX Orin", ComputeCapability(8, 7), None, "3.10", "2.35", None, "linux_aarch64")]
    asks = [*ASKS, (["torch==2.11.0+cu130", "flash-attn"], []), (["torch>=2.7"], []),
            (["torch==2.1.0", "numpy==2.0"], [])]  # the numpy<2 hold (pins.toml): numpy inside it, or a newer torch
    seen: set[str] = set()
    for (name, cc, driver, python, glibc, nvcc, platform), (lines, profiles) in [(t, a) for t in grid for a in asks]:
        target = Target(gpus=(Gpu(name, cc),), python=python, platform=platform,
                        driver=parse_driver(driver) if driver else None, glibc=Version(glibc),
                        nvcc=Version(nvcc) if nvcc else None)
        requests = [parse_request(lines, M, profiles=profiles)]
        if lines == ["torch==2.1.0", "flash-attn-3"]:  # the installed torch is kept: the kernel's torch drops it
            requests.append(dataclasses.replace(requests[0], keep_torch="2.1.0+cu121"))
        for request in requests:
            try:
                solve(target, M, request)
            except NoCompatibleStack as refusal:
                for alt in refusal.alternatives:
                    assert _solves(alt, target, request), f"printed but does not solve: {alt.to_dict()}"
                    seen.update(k for c in alt.changes for k in (*c.target, *c.request))
    assert seen == set(TARGET_FIELDS) | set(REQUEST_FIELDS), sorted((set(TARGET_FIELDS) | set(REQUEST_FIELDS)) - seen)
