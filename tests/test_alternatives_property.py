"""Every alternative a refusal prints solves: over targets and requests drawn from the shipped matrices, each
alternative is re-asked of the solver with exactly the change it carries (issue 9 items 3 and 4).

An alternative is a value (``resolver.refusal.Alternative``): its change is data, applied by
``resolver.refusal.apply``, the same function the producers use before printing it. No text is read back.
Bounded (derandomized, max_examples) to stay a few seconds on 2 cores.
"""

from __future__ import annotations

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
        (["torch==1.13.1"], [])]

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
    "ask for a torch in ",                      # the request names no torch release gpustack knows
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
